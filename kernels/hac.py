"""Average-linkage hierarchical agglomerative clustering (HAC) for Cluster-Margin.

Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh & Kumar 2021,
"Batch Active Learning at Scale", NeurIPS, arXiv:2107.14263 (HAC with average linkage).

HAC needs all pairwise distances of the points it clusters: O(n²) memory and time. The
caller clusters a bounded subsample (n ≤ a few thousand) and assigns every other pool
point to the nearest cluster centre with `nearest_centre`, chunked along N.

The merge loop keeps, per active cluster, its nearest active cluster (a row-min cache).
With average linkage the distance to a merged cluster is a weighted mean of the
distances to its parts, never below their minimum, so only the rows whose nearest
cluster was one of the two merged ones need their minimum recomputed.
"""

from __future__ import annotations

import math

import torch

from kernels.chunking import chunk_slices
from kernels.clustering import block_rows, centred


def pairwise_distances(x_n_D: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [n, n] in float32 (centred expansion, clamped at 0, exact zero diagonal)."""
    x, sq_norm = centred(x_n_D)
    sq = torch.addmm(sq_norm, x, x.T, alpha=-2.0).add_(sq_norm.unsqueeze(1)).clamp_(min=0.0)
    sq.fill_diagonal_(0.0)
    return sq.sqrt_()


def average_linkage(x_n_D: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Merge the two closest clusters (average linkage) until ``num_clusters`` remain.

    Ties in the closest pair go to the lowest row index (deterministic).

    Returns:
        labels_n int64 in [0, min(num_clusters, n)), numbered by each cluster's lowest row.
    """
    count = x_n_D.shape[0]
    if count == 0:
        return torch.empty(0, dtype=torch.int64, device=x_n_D.device)
    dist = pairwise_distances(x_n_D)
    dist.fill_diagonal_(math.inf)
    size = torch.ones(count, dtype=torch.float32, device=dist.device)
    owner = torch.arange(count, device=dist.device)  # each point's cluster, named by a surviving row
    row_min, row_arg = dist.min(dim=1)
    for _ in range(count - max(1, num_clusters)):
        i = int(row_min.argmin())
        j = int(row_arg[i])
        keep, gone = min(i, j), max(i, j)
        merged = (size[keep] * dist[keep] + size[gone] * dist[gone]) / (size[keep] + size[gone])
        dist[keep] = merged
        dist[:, keep] = merged
        dist[keep, keep] = math.inf
        dist[gone] = math.inf
        dist[:, gone] = math.inf
        size[keep] += size[gone]
        owner[owner == gone] = keep
        row_min[gone] = math.inf
        stale = ((row_arg == keep) | (row_arg == gone)).nonzero().squeeze(1)
        stale = torch.cat([stale, torch.tensor([keep], device=dist.device)])
        stale = stale[stale != gone]
        row_min[stale], row_arg[stale] = dist[stale].min(dim=1)
        # a row may now be nearest to the merged cluster only through a tie; the cache stays a valid minimum
    return torch.unique(owner, return_inverse=True)[1]


def cluster_means(x_N_D: torch.Tensor, labels_N: torch.Tensor, num_clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(means_M_D float32, counts_M int64) of the rows of each cluster; empty clusters get a zero mean."""
    counts_M = torch.bincount(labels_N, minlength=num_clusters)
    sums_M_D = torch.zeros(num_clusters, x_N_D.shape[1], dtype=torch.float32, device=x_N_D.device)
    sums_M_D.index_add_(0, labels_N, x_N_D.float())
    return sums_M_D / counts_M.clamp(min=1).unsqueeze(1).float(), counts_M


def nearest_centre(emb_N_D: torch.Tensor, centres_M_D: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre for every row, in [n, M] blocks (no N x M matrix)."""
    mean_D = emb_N_D.float().mean(dim=0)
    x_N_D = emb_N_D.float() - mean_D
    c_M_D = centres_M_D.float() - mean_D
    half_sq_M = 0.5 * c_M_D.square().sum(dim=1)
    labels_N = torch.empty(x_N_D.shape[0], dtype=torch.int64, device=x_N_D.device)
    for rows in chunk_slices(x_N_D.shape[0], block_rows(c_M_D.shape[0])):
        labels_N[rows] = torch.addmm(half_sq_M, x_N_D[rows], c_M_D.T, alpha=-1.0).argmin(dim=1)
    return labels_N
