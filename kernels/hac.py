"""Average-linkage hierarchical agglomerative clustering (HAC) for Cluster-Margin.

Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh & Kumar 2021,
"Batch Active Learning at Scale", NeurIPS, arXiv:2107.14263 (HAC with average linkage).

HAC needs all pairwise distances of the points it clusters: O(n²) memory and time. The
caller clusters a bounded subsample (n ≤ a few thousand) and assigns every other pool
point to the nearest cluster centre with `nearest_centre`, chunked along N.

Merges run in rounds of reciprocal nearest neighbours (see `average_linkage`): one round
costs O(n) per merged pair plus O(n) per row whose nearest cluster was merged, and merges
many pairs at once, instead of one Python step (and a handful of tensor operations) per merge.
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
    """Average-linkage HAC cut at ``num_clusters`` clusters, by reciprocal-nearest-neighbour rounds.

    Each round merges, at once, every pair of clusters that are each other's nearest
    neighbour. Average linkage is reducible (the distance to a merged cluster is never below
    the smaller of the distances to its parts), so these parallel merges build the same
    dendrogram as merging one closest pair at a time (Sumengen et al. 2021, "Scaling
    Hierarchical Agglomerative Clustering to Billion-sized Datasets", arXiv:2105.11653).
    A round is a few [m, m] tensor operations, not a Python step per merge: the sums of
    pairwise distances between clusters of each merged pair are pooled row- and column-wise.
    The cut then applies the n − ``num_clusters`` lowest merges (merge heights of a
    reducible linkage are monotone along the sequential order). Rounds stop as soon as no
    later merge can be lower than the ones the cut needs.

    Returns:
        labels_n int64 in [0, min(num_clusters, n)), numbered by each cluster's lowest row.
    """
    count = x_n_D.shape[0]
    if count == 0:
        return torch.empty(0, dtype=torch.int64, device=x_n_D.device)
    needed = count - max(1, min(num_clusters, count))
    # cluster-to-cluster sums of point distances (float64: they accumulate), and the average linkage
    sums = pairwise_distances(x_n_D).double()
    linkage = sums.clone().fill_diagonal_(math.inf)
    size = torch.ones(count, dtype=torch.float64, device=sums.device)
    alive = torch.ones(count, dtype=torch.bool, device=sums.device)
    ids = torch.arange(count, device=sums.device)
    nearest_val, nearest = linkage.min(dim=1)
    heights, left, right = [], [], []
    while needed and int(alive.sum()) > 1:
        if len(heights) >= needed:
            cut_height = torch.cat(heights).kthvalue(needed).values
            if bool(nearest_val.min() >= cut_height):
                break
        mutual = alive & (nearest[nearest] == ids) & (ids < nearest) & (nearest_val < math.inf)
        first, second = ids[mutual], nearest[mutual]
        heights.append(nearest_val[mutual])
        left.append(first)  # a cluster is named by its lowest row: the lower index of a pair survives
        right.append(second)
        # pool each pair in place: only the 2p touched rows and columns move, nothing is compacted
        sums[first] += sums[second]
        sums[:, first] += sums[:, second]
        size[first] += size[second]
        alive[second] = False
        nearest_val[second] = math.inf
        row = sums[first] / (size[first].unsqueeze(1) * size.unsqueeze(0))
        row.masked_fill_(~alive.unsqueeze(0), math.inf)
        linkage[first] = row
        linkage[:, first] = row.T
        linkage[first, first] = math.inf
        linkage[second] = math.inf
        linkage[:, second] = math.inf
        # average linkage is reducible: only rows whose nearest cluster was merged need a new minimum
        stale = alive & (torch.isin(nearest, torch.cat([first, second])) | mutual)
        stale_rows = ids[stale]
        nearest_val[stale_rows], nearest[stale_rows] = linkage[stale_rows].min(dim=1)
    if not heights:
        return torch.arange(count, device=x_n_D.device)
    all_heights = torch.cat(heights)
    order = torch.argsort(all_heights, stable=True)[:needed].tolist()
    pairs_left, pairs_right = torch.cat(left).tolist(), torch.cat(right).tolist()
    # union-find over the few thousand chosen merges: plain integers, no tensor op per merge
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for merge in order:
        a, b = root(pairs_left[merge]), root(pairs_right[merge])
        parent[max(a, b)] = min(a, b)
    roots = torch.tensor([root(i) for i in range(count)], device=x_n_D.device)
    return torch.unique(roots, return_inverse=True)[1]


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
