"""Greedy k-center against a float64 brute-force reference."""

from __future__ import annotations

import pytest
import torch

from kernels.kcenter import greedy_k_center, min_squared_distances
from tests.kernels.references import k_center as reference_k_center


def test_min_squared_distances_matches_float64_in_blocks():
    generator = torch.Generator().manual_seed(0)
    emb = torch.randn(1000, 16, generator=generator)
    centres = torch.randn(300, 16, generator=generator)
    expected = torch.cdist(emb.double(), centres.double()).min(dim=1).values.square()
    got = min_squared_distances(emb, centres, chunk_size=97, centre_chunk_size=41)
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-4)


def test_min_squared_distances_is_infinite_without_centres():
    assert torch.isinf(min_squared_distances(torch.randn(5, 3), torch.empty(0, 3))).all()


def test_greedy_picks_match_reference_with_and_without_labelled_set():
    generator = torch.Generator().manual_seed(1)
    emb = torch.randn(600, 8, generator=generator)
    labelled = torch.randn(25, 8, generator=generator)
    picks, initial = greedy_k_center(emb, labelled, 20, chunk_size=64)
    assert picks.tolist() == reference_k_center(emb, labelled, 20, first_pick=0)
    torch.testing.assert_close(initial.double(), torch.cdist(emb.double(), labelled.double()).min(1).values.square(), atol=1e-4, rtol=1e-4)
    picks_empty, _ = greedy_k_center(emb, torch.empty(0, 8), 15, first_pick=42)
    assert picks_empty.tolist() == reference_k_center(emb, torch.empty(0, 8), 15, first_pick=42)


def test_hand_made_line_picks_extremes_first():
    # points on a line at 0..10; labelled at 0: farthest is 10, then 5
    emb = torch.arange(11, dtype=torch.float32).unsqueeze(1)
    picks, _ = greedy_k_center(emb, torch.zeros(1, 1), 2)
    assert picks.tolist() == [10, 5]


def test_duplicates_never_repeat_a_pick():
    emb = torch.zeros(10, 4)  # all identical: every distance is 0 after the first pick
    picks, _ = greedy_k_center(emb, torch.zeros(1, 4), 10)
    assert sorted(picks.tolist()) == list(range(10))


def test_query_larger_than_pool_returns_whole_pool():
    picks, _ = greedy_k_center(torch.randn(7, 2), torch.randn(3, 2), 50)
    assert sorted(picks.tolist()) == list(range(7))


def offset_embeddings(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Post-ReLU-like features: a common offset of 10, median squared distance ~0.1 (issue 5)."""
    generator = torch.Generator().manual_seed(seed)
    emb = 10.0 + 0.025 * torch.rand(3000, 64, generator=generator, dtype=torch.float64).sub(0.5).mul(4)
    return emb[:2950].float(), emb[2950:].float()


def clustered_embeddings(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight clusters far apart: within-cluster distances tiny against the norms."""
    generator = torch.Generator().manual_seed(seed)
    centres = 50.0 * torch.randn(6, 32, generator=generator, dtype=torch.float64)
    emb = centres.repeat_interleave(500, dim=0) + 0.03 * torch.randn(3000, 32, generator=generator, dtype=torch.float64)
    order = torch.randperm(3000, generator=generator)
    emb = emb[order].float()
    return emb[:2960], emb[2960:]


@pytest.mark.parametrize("make", [offset_embeddings, clustered_embeddings])
def test_picks_match_float64_on_offset_and_clustered_embeddings(make):
    # the ||x||² + ||y||² − 2x·y form matched 11 of 30 float64 picks on offset embeddings
    emb, labelled = make(0)
    picks, initial = greedy_k_center(emb, labelled, 30)
    assert picks.tolist() == reference_k_center(emb, labelled, 30)
    expected = torch.cdist(emb.double(), labelled.double()).min(1).values.square()
    torch.testing.assert_close(initial.double(), expected, rtol=1e-5, atol=0)


def test_exact_min_distances_with_few_candidates_and_many_centres():
    # more centres than the candidate count, all nearly equidistant: the rounding-bound fallback must run
    emb, labelled = clustered_embeddings(1)
    expected = torch.cdist(emb.double(), labelled.double()).min(1).values.square()
    got = min_squared_distances(emb, labelled, chunk_size=129, centre_chunk_size=7)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=0)


def test_no_labelled_set_gives_finite_scores_from_the_first_pick():
    emb = torch.randn(50, 3, generator=torch.Generator().manual_seed(2))
    picks, scores = greedy_k_center(emb, torch.empty(0, 3), 5, first_pick=7)
    assert picks[0] == 7 and torch.isfinite(scores).all()
    torch.testing.assert_close(scores.double(), (emb.double() - emb[7].double()).square().sum(1), rtol=1e-5, atol=1e-6)


def test_empty_pool_picks_nothing():
    picks, scores = greedy_k_center(torch.empty(0, 4), torch.randn(3, 4), 5)
    assert picks.shape == (0,) and scores.shape == (0,)


def test_plain_torch_reference_agrees_with_the_brute_force_one():
    generator = torch.Generator().manual_seed(3)
    emb, labelled = torch.randn(400, 5, generator=generator), torch.randn(7, 5, generator=generator)
    from tests.kernels.references import k_center_plain_torch

    assert k_center_plain_torch(emb, labelled, 25) == reference_k_center(emb, labelled, 25)
    assert k_center_plain_torch(emb, torch.empty(0, 5), 25, first_pick=9) == reference_k_center(emb, torch.empty(0, 5), 25, first_pick=9)
