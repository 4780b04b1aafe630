"""Average-linkage HAC against a naive float64 reference and SciPy."""

from __future__ import annotations

import torch
from scipy.cluster.hierarchy import fcluster, linkage

from kernels.hac import average_linkage, cluster_means, nearest_centre, pairwise_distances
from tests.kernels import references


def same_partition(a: torch.Tensor, b) -> bool:
    pairs_a = a.unsqueeze(0) == a.unsqueeze(1)
    b = torch.as_tensor(b)
    return torch.equal(pairs_a, b.unsqueeze(0) == b.unsqueeze(1))


def test_matches_naive_float64_reference():
    for seed in range(3):
        x = torch.randn(40, 3, generator=torch.Generator().manual_seed(seed)) + 7.0
        assert torch.equal(average_linkage(x, 6), references.average_linkage(x, 6))


def test_matches_scipy_average_linkage():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(4))
    expected = fcluster(linkage(x.double().numpy(), method="average"), t=12, criterion="maxclust")
    assert same_partition(average_linkage(x, 12), expected)


def test_hand_made_three_groups():
    x = torch.tensor([[0.0], [0.2], [0.1], [5.0], [5.1], [20.0]])
    assert average_linkage(x, 3).tolist() == [0, 0, 0, 1, 1, 2]
    assert average_linkage(x, 1).tolist() == [0] * 6
    assert average_linkage(x, 10).tolist() == [0, 1, 2, 3, 4, 5]


def test_pairwise_distances_and_nearest_centre_in_blocks():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(5)) + 30.0
    torch.testing.assert_close(pairwise_distances(x).double(), torch.cdist(x.double(), x.double()), atol=2e-4, rtol=1e-4)
    emb = torch.randn(5000, 4, generator=torch.Generator().manual_seed(6))
    centres = torch.randn(300, 4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(nearest_centre(emb, centres), torch.cdist(emb.double(), centres.double()).argmin(dim=1))
    means, counts = cluster_means(torch.tensor([[0.0], [2.0], [9.0]]), torch.tensor([0, 0, 2]), 3)
    assert means.squeeze(1).tolist() == [1.0, 0.0, 9.0] and counts.tolist() == [2, 0, 1]
