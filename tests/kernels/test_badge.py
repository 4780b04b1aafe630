"""BADGE seeding against a float64 reference that materialises the gradient embeddings."""

from __future__ import annotations

import torch

from kernels.badge import badge_seeding, gradient_factors
from tests.conftest import random_probs
from tests.kernels import references


def test_picks_match_float64_materialised_gradient_embeddings():
    for seed in range(3):
        probs = random_probs(400, 7, seed)
        emb = torch.randn(400, 12, generator=torch.Generator().manual_seed(seed)).relu() + 0.5
        picks, sq_norm = badge_seeding(probs, emb, 40, torch.Generator().manual_seed(seed))
        assert picks.tolist() == references.badge(probs, emb, 40, torch.Generator().manual_seed(seed))
        expected_sq_norm = references.gradient_embeddings(probs, emb).square().sum(dim=1)
        torch.testing.assert_close(sq_norm.double(), expected_sq_norm, rtol=1e-5, atol=1e-6)


def test_gradient_factor_is_p_minus_onehot_of_argmax():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    torch.testing.assert_close(gradient_factors(probs), torch.tensor([[-0.3, 0.2, 0.1], [0.1, 0.3, -0.4]]))


def test_hand_made_first_pick_is_largest_gradient_norm_then_never_a_duplicate():
    # rows 0-2 are confident (tiny gradients); row 3 is uncertain with a long embedding
    probs = torch.tensor([[0.98, 0.02], [0.98, 0.02], [0.98, 0.02], [0.5, 0.5]])
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    picks, _ = badge_seeding(probs, emb, 4, torch.Generator().manual_seed(0))
    assert picks[0] == 3
    # rows 0-2 are identical: after one of them is picked the others weigh 0, then uniform among unpicked
    assert sorted(picks.tolist()) == [0, 1, 2, 3]


def test_far_point_is_drawn_second_with_overwhelming_probability():
    probs = torch.tensor([[0.6, 0.4]] * 50 + [[0.6, 0.4]])
    emb = torch.cat([torch.ones(50, 3) + 1e-3 * torch.randn(50, 3, generator=torch.Generator().manual_seed(1)),
                     torch.full((1, 3), 100.0)])
    for seed in range(5):
        picks, _ = badge_seeding(probs, emb, 2, torch.Generator().manual_seed(seed))
        assert picks.tolist() == [50, picks[1].item()] and picks[1] != 50
        assert picks[0] == 50  # the long embedding has the largest gradient norm


def test_b_larger_than_pool_gives_every_row_once():
    probs = random_probs(9, 3, 0)
    picks, _ = badge_seeding(probs, torch.randn(9, 4), 50, torch.Generator().manual_seed(0))
    assert sorted(picks.tolist()) == list(range(9))
