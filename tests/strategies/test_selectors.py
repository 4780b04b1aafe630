"""Selectors: top-k tie handling and sampling without replacement in the right proportions."""

from __future__ import annotations

import torch

from strategies.selectors import power_sampling, sample_without_replacement, softmax_sampling, topk


def test_topk_best_first_and_clamped():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7])
    assert topk(scores, 2).tolist() == [1, 3]
    assert topk(scores, 10).tolist() == [1, 3, 2, 0]


def test_topk_breaks_ties_at_random_but_reproducibly():
    scores = torch.zeros(100)
    first = topk(scores, 5, torch.Generator().manual_seed(0))
    again = topk(scores, 5, torch.Generator().manual_seed(0))
    other = topk(scores, 5, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert topk(torch.tensor([0.0, 1.0, 0.0]), 1, torch.Generator().manual_seed(5)).tolist() == [1]


def test_sampling_frequencies_follow_the_weights():
    weights = torch.tensor([1.0, 2.0, 4.0, 0.0])
    counts = torch.zeros(4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4000):
        counts[sample_without_replacement(weights.log(), 1, generator)] += 1
    assert counts[3] == 0
    torch.testing.assert_close(counts[:3] / 4000, torch.tensor([1 / 7, 2 / 7, 4 / 7]), atol=0.03, rtol=0)


def test_power_and_softmax_sampling_are_without_replacement_and_seeded():
    scores = torch.rand(50, generator=torch.Generator().manual_seed(0))
    for select in (power_sampling, softmax_sampling):
        picks = select(scores, 20, 2.0, torch.Generator().manual_seed(3))
        assert torch.unique(picks).numel() == 20
        assert torch.equal(picks, select(scores, 20, 2.0, torch.Generator().manual_seed(3)))
    # beta -> large: power sampling becomes top-k
    assert set(power_sampling(scores, 5, 200.0, torch.Generator().manual_seed(0)).tolist()) == set(topk(scores, 5).tolist())


def test_power_sampling_with_beta_zero_is_uniform_even_over_zero_scores():
    # beta * log(0) was 0 * -inf = NaN: the Gumbel keys were NaN and the picks arbitrary
    scores = torch.tensor([0.0, 0.0, 0.5, 1.0])
    counts = torch.zeros(4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4000):
        counts[power_sampling(scores, 1, 0.0, generator)] += 1
    torch.testing.assert_close(counts / 4000, torch.full((4,), 0.25), atol=0.03, rtol=0)


def test_topk_ties_at_the_boundary_are_a_uniform_draw():
    # 2 clear winners, then 6 tied: the third pick is uniform over the 6 tied samples
    scores = torch.tensor([0.0, 5.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0, 0.5])
    counts = torch.zeros(10)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3000):
        picks = topk(scores, 3, generator)
        assert picks[:2].tolist() == [4, 1]
        counts[picks[2]] += 1
    tied = torch.tensor([2, 3, 5, 6, 7, 8])
    torch.testing.assert_close(counts[tied] / 3000, torch.full((6,), 1 / 6), atol=0.03, rtol=0)
    assert counts.sum() == counts[tied].sum()


def test_topk_orders_ties_inside_the_top_b_at_random():
    scores = torch.tensor([3.0, 2.0, 2.0, 2.0, 1.0])
    orders = {tuple(topk(scores, 5, torch.Generator().manual_seed(seed)).tolist()) for seed in range(40)}
    assert all(order[0] == 0 and order[4] == 4 for order in orders)
    assert len(orders) == 6  # every order of the three tied samples occurs
