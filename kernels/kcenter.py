"""Greedy k-center on embeddings (the core-set strategy).

Sener & Savarese 2018, "Active Learning for Convolutional Neural Networks: A
Core-Set Approach", arXiv:1708.00489, Algorithm 1 (k-Center-Greedy).

Never materialises an N x N (or N x L) distance matrix: the state is one
min-distance vector of length N, updated with one [N] distance block per pick,
and the initial distances to the labelled set are reduced block by block.
"""

from __future__ import annotations

import math

import torch

from kernels.chunking import DEFAULT_CHUNK_SIZE, chunk_slices

#: Rows x centres of one [n, m] distance block in `min_squared_distances`:
#: 4,096 x 4,096 float32 = 64 MB at most, whatever N and L are.
DISTANCE_BLOCK_ROWS = 4_096
CENTRE_CHUNK_SIZE = 4_096


def squared_distances(x_n_D: torch.Tensor, y_m_D: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 as an [n, m] float32 block, via ||x||^2 + ||y||^2 - 2 x.y (one matmul)."""
    x = x_n_D.float()
    y = y_m_D.float()
    block = x.square().sum(dim=1, keepdim=True) + y.square().sum(dim=1) - 2.0 * (x @ y.T)
    # the expansion can go slightly negative through cancellation; distances cannot
    return block.clamp_(min=0.0)


def min_squared_distances(
    emb_N_D: torch.Tensor,
    centres_M_D: torch.Tensor,
    chunk_size: int = DISTANCE_BLOCK_ROWS,
    centre_chunk_size: int = CENTRE_CHUNK_SIZE,
) -> torch.Tensor:
    """min_j ||emb_i - centre_j||^2 for each pool row i; +inf everywhere when M = 0.

    Returns:
        min_sq_dist_N, float32, on ``emb_N_D``'s device.
    """
    min_sq_dist_N = torch.full((emb_N_D.shape[0],), math.inf, dtype=torch.float32, device=emb_N_D.device)
    for centres in chunk_slices(centres_M_D.shape[0], centre_chunk_size):
        centre_block = centres_M_D[centres].to(emb_N_D.device)
        for rows in chunk_slices(emb_N_D.shape[0], chunk_size):
            block_min = squared_distances(emb_N_D[rows], centre_block).amin(dim=1)
            torch.minimum(min_sq_dist_N[rows], block_min, out=min_sq_dist_N[rows])
    return min_sq_dist_N


def _distances_to_one(emb_N_D: torch.Tensor, centre_1_D: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """||emb_i - c||^2 computed as a direct difference: exact where the matmul form cancels."""
    out_N = torch.empty(emb_N_D.shape[0], dtype=torch.float32, device=emb_N_D.device)
    centre = centre_1_D.float()
    for rows in chunk_slices(emb_N_D.shape[0], chunk_size):
        out_N[rows] = (emb_N_D[rows].float() - centre).square().sum(dim=1)
    return out_N


def greedy_k_center(
    emb_N_D: torch.Tensor,
    labelled_emb_L_D: torch.Tensor,
    query_size: int,
    first_pick: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``min(B, N)`` pool rows, each the farthest from the labelled set and the rows picked before it.

    Args:
        emb_N_D: pool embeddings.
        labelled_emb_L_D: labelled embeddings (L may be 0).
        query_size: B.
        first_pick: pool row taken first when L = 0 (every distance is then +inf).
    Returns:
        (indices_B int64 in pick order, min_sq_dist_N float32): the squared distance of
        every pool row to the labelled set before any pick (+inf when L = 0).
    """
    num_picks = min(query_size, emb_N_D.shape[0])
    initial_N = min_squared_distances(emb_N_D, labelled_emb_L_D)
    min_sq_dist_N = initial_N.clone()
    nothing_labelled = labelled_emb_L_D.shape[0] == 0
    picks_B = torch.empty(num_picks, dtype=torch.int64, device=emb_N_D.device)
    for b in range(num_picks):
        if b == 0 and nothing_labelled:
            # every row is infinitely far from an empty set: the argmax would be arbitrary
            pick = torch.tensor(first_pick, device=emb_N_D.device)
        else:
            # argmax stays a device tensor: no host sync per pick on a GPU
            pick = min_sq_dist_N.argmax()
        picks_B[b] = pick
        new_N = _distances_to_one(emb_N_D, emb_N_D.index_select(0, pick.view(1)), chunk_size)
        torch.minimum(min_sq_dist_N, new_N, out=min_sq_dist_N)
        # picked rows must never be picked again, even when duplicates leave every distance at 0
        min_sq_dist_N.index_fill_(0, pick.view(1), -math.inf)
    return picks_B, initial_N
