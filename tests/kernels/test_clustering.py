"""k-means++ seeding, Lloyd iterations and kNN typicality against float64 references."""

from __future__ import annotations

import torch

from kernels.clustering import (
    assign_to_centres,
    centred,
    kmeans_plus_plus,
    knn_typicality,
    lloyd,
    nearest_member_per_cluster,
)
from tests.kernels import references


def blobs(num_per_blob: int, centres: torch.Tensor, spread: float, seed: int, offset: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = spread * torch.randn(num_per_blob * centres.shape[0], centres.shape[1], generator=generator)
    return centres.repeat_interleave(num_per_blob, dim=0) + noise + offset


def test_kmeans_plus_plus_matches_float64_reference_on_offset_embeddings():
    emb = torch.randn(500, 16, generator=torch.Generator().manual_seed(0)).relu() + 10.0  # ReLU-like offset
    for seed in range(3):
        got = kmeans_plus_plus(emb, 30, torch.Generator().manual_seed(seed)).tolist()
        assert got == references.kmeans_plus_plus(emb, 30, torch.Generator().manual_seed(seed))


def test_kmeans_plus_plus_never_repeats_even_on_duplicates():
    emb = torch.zeros(12, 3)
    picks = kmeans_plus_plus(emb, 12, torch.Generator().manual_seed(0))
    assert sorted(picks.tolist()) == list(range(12))


def test_lloyd_matches_float64_iterations():
    generator = torch.Generator().manual_seed(1)
    emb = torch.randn(800, 8, generator=generator) + 5.0
    initial = emb[torch.randperm(800, generator=generator)[:12]]
    centres, assignment, sq_dist = lloyd(emb, initial, max_iter=6, tol=0.0)
    expected_centres, expected_assignment = references.lloyd(emb, initial, 6)
    assert torch.equal(assignment, expected_assignment)
    torch.testing.assert_close(centres.double(), expected_centres, atol=1e-4, rtol=1e-4)
    expected_sq = (emb.double() - expected_centres[expected_assignment]).square().sum(dim=1)
    torch.testing.assert_close(sq_dist.double(), expected_sq, atol=1e-3, rtol=1e-4)


def test_lloyd_recovers_separated_blobs_and_nearest_members_match_reference():
    truth = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    emb = blobs(50, truth, 0.5, seed=2, offset=100.0)
    initial = emb[torch.tensor([0, 50, 100, 150])] + 0.3
    centres, assignment, sq_dist = lloyd(emb, initial, max_iter=20)
    torch.testing.assert_close(centres - 100.0, truth, atol=0.3, rtol=0)
    assert torch.equal(assignment, torch.arange(4).repeat_interleave(50))
    got = nearest_member_per_cluster(assignment, sq_dist, 4).tolist()
    assert got == references.nearest_member_per_cluster(emb, centres, assignment)


def test_empty_cluster_is_reseeded_at_the_farthest_point():
    emb = torch.tensor([[0.0], [0.1], [0.2], [50.0]])
    # two centres start on top of each other left: one of them stays empty after assignment
    centres, assignment, _ = lloyd(emb, torch.tensor([[0.1], [0.1]]), max_iter=5)
    assert sorted(torch.bincount(assignment, minlength=2).tolist()) == [1, 3]
    torch.testing.assert_close(centres.squeeze(1).sort().values, torch.tensor([0.1, 50.0]), atol=1e-5, rtol=0)


def test_assignment_blocks_match_cdist():
    generator = torch.Generator().manual_seed(3)
    x, sq_norm = centred(torch.randn(3000, 5, generator=generator))
    centres = torch.randn(700, 5, generator=generator)
    assignment, sq_dist = assign_to_centres(x, sq_norm, centres)  # 3000 x 700 > one block: several blocks
    expected = torch.cdist(x.double(), centres.double())
    assert torch.equal(assignment, expected.argmin(dim=1))
    torch.testing.assert_close(sq_dist.double(), expected.min(dim=1).values.square(), atol=1e-3, rtol=1e-4)


def test_typicality_matches_reference_in_blocks_and_hand_made_line():
    points = torch.randn(2500, 6, generator=torch.Generator().manual_seed(4)) + 3.0
    torch.testing.assert_close(knn_typicality(points, 20).double(), references.knn_typicality(points, 20), rtol=1e-4, atol=1e-6)
    line = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    # k=1: nearest distances 1, 1, 1, 8
    torch.testing.assert_close(knn_typicality(line, 1), torch.tensor([1.0, 1.0, 1.0, 0.125]), rtol=1e-6, atol=1e-6)
    assert knn_typicality(torch.ones(1, 3), 20).tolist() == [1.0]
