"""ProbCover's ball graph, greedy coverage and purity rule against dense float64 references."""

from __future__ import annotations

import pytest
import torch

from kernels.probcover import TooManyEdgesError, ball_graph, covered_by, greedy_cover, purity_delta
from tests.kernels import references


def dense_from_csr(row_ptr: torch.Tensor, neighbours: torch.Tensor, size: int) -> torch.Tensor:
    dense = torch.zeros(size, size, dtype=torch.bool)
    rows = torch.repeat_interleave(torch.arange(size), row_ptr[1:] - row_ptr[:-1])
    dense[rows, neighbours] = True
    return dense


def test_ball_graph_matches_dense_distances_in_blocks():
    emb = torch.randn(1500, 4, generator=torch.Generator().manual_seed(0)) + 20.0  # offset: centring matters
    row_ptr, neighbours = ball_graph(emb, 0.6, max_edges=10**7)  # 1500 x 1500 > one block
    expected = torch.cdist(emb.double(), emb.double()) < 0.6
    expected.fill_diagonal_(True)
    got = dense_from_csr(row_ptr, neighbours, 1500)
    # points within float32 rounding of the boundary may differ; there are none at this density
    assert torch.equal(got, expected)
    assert torch.equal(got, got.T)


def test_too_many_edges_is_an_error():
    with pytest.raises(TooManyEdgesError, match="more than max_edges=100 edges at delta=10"):
        ball_graph(torch.randn(50, 2), 10.0, max_edges=100)


def test_greedy_cover_matches_dense_reference_with_labelled_points():
    generator = torch.Generator().manual_seed(1)
    emb = torch.randn(600, 3, generator=generator)
    labelled = torch.randn(20, 3, generator=generator)
    row_ptr, neighbours = ball_graph(emb, 0.5, max_edges=10**7)
    covered = covered_by(emb, labelled, 0.5)
    expected_covered = (torch.cdist(emb.double(), labelled.double()) < 0.5).any(dim=1)
    assert torch.equal(covered, expected_covered)
    picks, gain = greedy_cover(row_ptr, neighbours, covered, 30, torch.Generator().manual_seed(0))
    assert picks.tolist() == references.probcover(emb, labelled, 0.5, 30)


def test_hand_made_two_groups_then_random_once_all_covered():
    # a group of 5 close points and a group of 3; delta 1: first pick covers the 5, second the 3
    emb = torch.tensor([[0.0], [0.1], [0.2], [0.3], [0.4], [10.0], [10.1], [10.2]])
    row_ptr, neighbours = ball_graph(emb, 1.0, max_edges=1000)
    picks, gain = greedy_cover(row_ptr, neighbours, torch.zeros(8, dtype=torch.bool), 5, torch.Generator().manual_seed(0))
    assert picks[0] in range(5) and picks[1] in (5, 6, 7)
    assert gain.tolist() == [5, 5, 5, 5, 5, 3, 3, 3]
    # everything is covered after two picks: the other three are uniform over the rest, distinct
    assert len(set(picks.tolist())) == 5


def test_labelled_points_cover_their_balls_first():
    emb = torch.tensor([[0.0], [0.1], [0.2], [0.3], [10.0], [10.1]])
    covered = covered_by(emb, torch.tensor([[0.15]]), 1.0)
    row_ptr, neighbours = ball_graph(emb, 1.0, max_edges=1000)
    picks, _ = greedy_cover(row_ptr, neighbours, covered, 1, torch.Generator().manual_seed(0))
    assert picks.tolist() == [4]  # the big group is already covered by the labelled point


def test_purity_delta_is_the_largest_pure_delta():
    generator = torch.Generator().manual_seed(2)
    points = torch.randn(120, 2, generator=generator)
    labels = (points[:, 0] > 0).long()
    for alpha in (0.5, 0.9, 0.95, 1.0):
        got = purity_delta(points, labels, torch.arange(120), alpha)
        assert got == pytest.approx(references.purity_delta(points, labels, alpha), rel=1e-5)


def test_purity_delta_hand_made():
    # labels 0 at 0 and 1, label 1 at 5: radii 5, 4, 4 -> purity 1.0 needs delta <= 4
    points = torch.tensor([[0.0], [1.0], [5.0]])
    assert purity_delta(points, torch.tensor([0, 0, 1]), torch.arange(3), 1.0) == pytest.approx(4.0)
    assert purity_delta(points, torch.tensor([0, 0, 1]), torch.arange(3), 0.3) == pytest.approx(5.0)
