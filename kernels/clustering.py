"""Chunked clustering kernels on embeddings: k-means++ seeding, Lloyd's k-means, kNN typicality.

Used by the ``kmeans`` and ``typiclust`` strategies (and ``probcover``'s δ=auto rule).
Every distance computation is chunked along the pool N, so no N x N (or N x B
larger than a cache-sized block) matrix is ever held. Data are centred on their
mean before the ||x||² + ||c||² − 2x·c expansion: distances do not change under
translation, and embeddings after a ReLU carry a large common offset that would
otherwise cancel in float32.

References:
    Arthur & Vassilvitskii 2007, "k-means++: The Advantages of Careful Seeding" (SODA).
    Lloyd 1982, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 28(2).
    Hacohen, Dekel & Weinshall 2022, "Active Learning on a Budget: Opposite Strategies
    Suit High and Low Budgets", arXiv:2202.02794 (typicality).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from kernels.chunking import chunk_slices

#: Elements of one [n, m] distance block: 2^20 float32 = 4 MB, small enough to stay in
#: a 2-core machine's cache and far below glibc's mmap threshold growth (see
#: ECOSYSTEM.md on page faults from large per-iteration temporaries).
BLOCK_ELEMENTS = 2**20


def block_rows(columns: int, elements: int = BLOCK_ELEMENTS) -> int:
    """Rows of an [n, columns] block that fit the element budget (at least 1)."""
    return max(1, elements // max(1, columns))


def centred(emb_N_D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(emb − mean, squared row norms of the centred rows), float32; one copy of the input."""
    x_N_D = emb_N_D.float()
    x_N_D = x_N_D - x_N_D.mean(dim=0, dtype=torch.float64).float()
    return x_N_D, x_N_D.square().sum(dim=1)


def draw_from_weights(weights_N: torch.Tensor, uniform: torch.Tensor) -> int:
    """Index i drawn with P(i) ∝ weights_N[i] by inverting the float64 CDF at ``uniform`` in [0, 1).

    One uniform draw per pick (not N): the caller owns the generator. Returns -1 when all weights are 0.
    """
    cdf_N = torch.cumsum(weights_N.double(), dim=0)
    total = cdf_N[-1]
    if not bool(total > 0):
        return -1
    index = int(torch.searchsorted(cdf_N, uniform.to(cdf_N.device) * total, right=True))
    return min(index, weights_N.shape[0] - 1)


def draw_unpicked(picked_N: torch.Tensor, uniform: torch.Tensor) -> int:
    """Uniform draw among the rows not yet picked (used when every remaining weight is 0)."""
    return draw_from_weights((~picked_N).double(), uniform)


def seed_by_squared_distance(
    num_rows: int,
    num_picks: int,
    first_pick: Callable[[torch.Tensor], int],
    sq_distances_to: Callable[[int], torch.Tensor],
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """The D² sampling loop of k-means++ seeding, over any squared distance.

    ``first_pick(uniform)`` chooses the first row; each next row is drawn with P(i) ∝ the
    squared distance min_j d²(i, pick_j) to the picks so far (one float64 uniform from
    ``generator`` per pick, inverted through the CDF). ``sq_distances_to(pick)`` returns
    d²(·, pick) as an [N] float32 tensor (it may reuse one buffer). Identical rows have weight
    0 and are never picked twice; if every remaining weight is 0, the pick is uniform over
    the unpicked rows.

    Returns:
        picks_M int64 [num_picks] rows, in pick order, on ``device``.
    """
    min_sq_N = torch.full((num_rows,), math.inf, dtype=torch.float32, device=device)
    picked_N = torch.zeros(num_rows, dtype=torch.bool, device=device)
    uniforms = torch.rand(num_picks, generator=generator, device=generator.device, dtype=torch.float64).cpu()
    picks = []
    for m in range(num_picks):
        if m == 0:
            pick = first_pick(uniforms[0])
        else:
            pick = draw_from_weights(min_sq_N, uniforms[m])
            if pick < 0 or bool(picked_N[pick]):
                pick = draw_unpicked(picked_N, uniforms[m])
        picks.append(pick)
        picked_N[pick] = True
        torch.minimum(min_sq_N, sq_distances_to(pick), out=min_sq_N)
        # a pick's own distance can round above 0; pinning it keeps it out of later draws (minima never rise)
        min_sq_N[pick] = 0.0
    return torch.tensor(picks, dtype=torch.int64, device=device)


def kmeans_plus_plus(
    emb_N_D: torch.Tensor, num_centres: int, generator: torch.Generator
) -> torch.Tensor:
    """k-means++ seeding: the first centre uniform, each next one drawn with P ∝ D(x)² (Arthur & Vassilvitskii 2007).

    State is one min-distance vector [N], updated with one [N] block per pick (a
    matrix-vector product on the centred data); the draws are `seed_by_squared_distance`'s.

    Returns:
        picks_M int64 [min(M, N)] pool rows, in pick order.
    """
    num_rows = emb_N_D.shape[0]
    x_N_D, sq_norm_N = centred(emb_N_D)
    # feature-major: each pick's product is a gemv over contiguous columns, 3-4x faster on a CPU
    x_D_N = x_N_D.T.contiguous()
    del x_N_D
    dots_N = torch.empty(num_rows, dtype=torch.float32, device=x_D_N.device)  # reused by every pick

    def sq_distances_to(pick: int) -> torch.Tensor:
        torch.mv(x_D_N.T, x_D_N[:, pick].contiguous(), out=dots_N)
        # ||x||² + ||c||² − 2 x·c on centred data, written into the reused buffer
        return dots_N.mul_(-2.0).add_(sq_norm_N).add_(sq_norm_N[pick]).clamp_(min=0.0)

    return seed_by_squared_distance(
        num_rows, min(num_centres, num_rows), lambda uniform: min(int(uniform * num_rows), num_rows - 1),
        sq_distances_to, generator, emb_N_D.device,
    )


def assign_to_centres(
    x_N_D: torch.Tensor, sq_norm_N: torch.Tensor, centres_M_D: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of every row, in [n, M] blocks.

    ``x_N_D`` and ``centres_M_D`` must be in the same (centred) frame; ``sq_norm_N`` is ||x||².

    Returns:
        (assignment_N int64, sq_dist_N float32 to the assigned centre).
    """
    num_rows = x_N_D.shape[0]
    half_sq_norm_M = 0.5 * centres_M_D.square().sum(dim=1)
    assignment_N = torch.empty(num_rows, dtype=torch.int64, device=x_N_D.device)
    sq_dist_N = torch.empty(num_rows, dtype=torch.float32, device=x_N_D.device)
    step = block_rows(centres_M_D.shape[0])
    block = torch.empty(min(step, num_rows), centres_M_D.shape[0], dtype=torch.float32, device=x_N_D.device)
    for rows in chunk_slices(num_rows, step):
        out = block[: rows.stop - rows.start]
        # ½||c||² − x·c has the same argmin as ||x − c||²; one addmm into a reused buffer
        torch.addmm(half_sq_norm_M, x_N_D[rows], centres_M_D.T, beta=1.0, alpha=-1.0, out=out)
        values, indices = out.min(dim=1)
        assignment_N[rows] = indices
        sq_dist_N[rows] = (2.0 * values + sq_norm_N[rows]).clamp_(min=0.0)
    return assignment_N, sq_dist_N


def lloyd(
    emb_N_D: torch.Tensor,
    initial_centres_M_D: torch.Tensor,
    max_iter: int = 10,
    tol: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lloyd's k-means from given centres, chunked along N.

    Each iteration assigns every row to its nearest centre ([n, M] blocks) and moves
    each centre to the mean of its rows. An empty cluster is re-seeded at the row
    farthest from its current centre (as scikit-learn does), so M clusters survive
    while there are M distinct rows. Stops after ``max_iter`` iterations or when the
    largest centre shift² falls below ``tol`` x the mean per-dimension variance.

    Returns:
        (centres_M_D in the input frame, assignment_N int64, sq_dist_N float32 to the assigned centre).
    """
    x_N_D, sq_norm_N = centred(emb_N_D)
    mean_D = emb_N_D.float().mean(dim=0, dtype=torch.float64).float()
    centres_M_D = initial_centres_M_D.float().to(x_N_D.device) - mean_D
    num_centres = centres_M_D.shape[0]
    threshold = tol * float(sq_norm_N.mean()) / max(1, x_N_D.shape[1])
    assignment_N, sq_dist_N = assign_to_centres(x_N_D, sq_norm_N, centres_M_D)
    for _ in range(max_iter):
        sums_M_D = torch.zeros_like(centres_M_D).index_add_(0, assignment_N, x_N_D)
        counts_M = torch.bincount(assignment_N, minlength=num_centres)
        new_centres_M_D = torch.where(
            (counts_M > 0).unsqueeze(1), sums_M_D / counts_M.clamp(min=1).unsqueeze(1).float(), centres_M_D
        )
        empty_M = counts_M == 0
        if bool(empty_M.any()):
            num_empty = int(empty_M.sum())
            far_rows = torch.topk(sq_dist_N, min(num_empty, x_N_D.shape[0])).indices
            new_centres_M_D[empty_M.nonzero().squeeze(1)[: far_rows.shape[0]]] = x_N_D[far_rows]
        shift = float((new_centres_M_D - centres_M_D).square().sum(dim=1).max()) if num_centres else 0.0
        centres_M_D = new_centres_M_D
        assignment_N, sq_dist_N = assign_to_centres(x_N_D, sq_norm_N, centres_M_D)
        if shift <= threshold:
            break
    return centres_M_D + mean_D, assignment_N, sq_dist_N


def nearest_member_per_cluster(assignment_N: torch.Tensor, sq_dist_N: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """For each non-empty cluster, the member row closest to its centre (lowest row on ties).

    Members of different clusters are different rows, so the result holds distinct rows.

    Returns:
        rows_M' int64, one per non-empty cluster, ordered by cluster index.
    """
    num_rows = assignment_N.shape[0]
    best_M = torch.full((num_clusters,), math.inf, dtype=sq_dist_N.dtype, device=sq_dist_N.device)
    best_M.scatter_reduce_(0, assignment_N, sq_dist_N, reduce="amin")
    is_best_N = sq_dist_N == best_M[assignment_N]
    row_ids_N = torch.arange(num_rows, device=assignment_N.device)
    first_M = torch.full((num_clusters,), num_rows, dtype=torch.int64, device=assignment_N.device)
    first_M.scatter_reduce_(0, assignment_N, torch.where(is_best_N, row_ids_N, num_rows), reduce="amin")
    return first_M[first_M < num_rows]


def knn_typicality(points_n_D: torch.Tensor, num_neighbours: int) -> torch.Tensor:
    """Typicality 1 / (mean Euclidean distance to the k nearest other points), in row blocks.

    k = min(``num_neighbours``, n − 1); a single point has typicality 1 by definition here
    (it is the only candidate of its cluster). Memory: one [rows, n] block of at most
    ``BLOCK_ELEMENTS`` elements (at least one row), never n x n.

    Returns:
        typicality_n float32.
    """
    count = points_n_D.shape[0]
    k = min(num_neighbours, count - 1)
    if k < 1:
        return torch.ones(count, dtype=torch.float32, device=points_n_D.device)
    x_n_D, sq_norm_n = centred(points_n_D)
    typicality_n = torch.empty(count, dtype=torch.float32, device=points_n_D.device)
    for rows in chunk_slices(count, block_rows(count)):
        sq_dist = torch.addmm(sq_norm_n, x_n_D[rows], x_n_D.T, alpha=-2.0).add_(sq_norm_n[rows].unsqueeze(1))
        # the k+1 smallest include the row itself (distance 0): drop the smallest
        nearest = torch.topk(sq_dist.clamp_(min=0.0), k + 1, dim=1, largest=False, sorted=True).values[:, 1:]
        typicality_n[rows] = 1.0 / (nearest.sqrt().mean(dim=1) + 1e-8)
    return typicality_n
