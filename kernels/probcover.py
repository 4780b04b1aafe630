"""ProbCover: greedy maximum coverage of δ-balls on embeddings, over a sparse ball graph.

Yehuda, Dekel, Hacohen & Weinshall 2022, "Active Learning Through a Covering Lens",
NeurIPS, arXiv:2205.11320.

The ball graph has an edge i → j when ||x_i − x_j|| < δ (so i's ball covers j; the graph
is symmetric and every point covers itself). It is built in row blocks as edge lists
(CSR), never as an N x N matrix. Points inside a labelled point's ball start covered.
Each greedy pick is the point whose ball covers the most still-uncovered points; its
ball's points become covered and the out-degrees of their neighbours drop, so the
whole greedy pass touches every edge a bounded number of times.
"""

from __future__ import annotations

import math

import torch

from kernels.chunking import chunk_slices
from kernels.clustering import block_rows, centred


#: Tiles of the N x N distance computations: [1024, 1024] float32 = 4 MB. Both the row block and
#: the column block stay in cache, so each tile is compute-bound; a full-width row block of a
#: 100k pool would re-read all N x D embeddings for every few rows.
TILE_ROWS = 1_024
TILE_COLUMNS = 1_024


class TooManyEdgesError(ValueError):
    """The δ-ball graph would exceed the edge budget (δ too large for this pool)."""


def ball_graph(
    emb_N_D: torch.Tensor, delta: float, max_edges: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR of the δ-ball graph among pool rows (self-loops included).

    Returns:
        (row_ptr_N+1 int64, neighbours_E int64), neighbours of row i in
        ``neighbours_E[row_ptr[i]:row_ptr[i+1]]``, ascending.
    Raises:
        TooManyEdgesError: the graph holds more than ``max_edges`` edges.
    """
    x_N_D, sq_norm_N = centred(emb_N_D)
    num_rows = x_N_D.shape[0]
    sq_delta = float(delta) ** 2
    counts_N = torch.zeros(num_rows, dtype=torch.int64, device=x_N_D.device)
    pieces = []
    total = 0
    blocks = list(chunk_slices(num_rows, TILE_ROWS))
    # Distances are symmetric: only the tiles on and above the diagonal are computed (half the
    # N x N x D FLOPs), and a tile above it also gives the transposed pairs of a later row block.
    # That also makes the graph exactly symmetric, whatever the rounding of the two orientations.
    transposed_pairs: dict[int, list[torch.Tensor]] = {}
    pending_edges = 0  # held for later row blocks: they count against max_edges already
    for block_index, rows in enumerate(blocks):
        row_pairs = transposed_pairs.pop(block_index, [])
        pending_edges -= sum(piece.shape[0] for piece in row_pairs)
        for column_index in range(block_index, len(blocks)):
            cols = blocks[column_index]
            sq_dist = torch.addmm(sq_norm_N[cols], x_N_D[rows], x_N_D[cols].T, alpha=-2.0).add_(sq_norm_N[rows].unsqueeze(1))
            pairs = (sq_dist < sq_delta).nonzero()
            pairs[:, 0] += rows.start
            pairs[:, 1] += cols.start
            if column_index == block_index:
                # within the diagonal tile too, (i, j) decides (j, i)
                pairs = pairs[pairs[:, 0] < pairs[:, 1]]
                row_pairs += [pairs, pairs.flip(1)]
            else:
                row_pairs.append(pairs)
                transposed_pairs.setdefault(column_index, []).append(pairs.flip(1))
                pending_edges += pairs.shape[0]
            if total + pending_edges > max_edges:
                raise TooManyEdgesError(
                    f"the delta-ball graph has more than max_edges={max_edges} edges at delta={delta:g}"
                )
        pairs = torch.cat(row_pairs)
        # the expansion can miss a point's own zero distance by rounding; every ball holds its centre
        own = torch.arange(rows.start, rows.stop, device=x_N_D.device)
        pairs = torch.cat([pairs[pairs[:, 0] != pairs[:, 1]], torch.stack([own, own], dim=1)])
        # CSR order: by row, then by column (the key is unique per pair)
        pairs = pairs[torch.argsort(pairs[:, 0] * num_rows + pairs[:, 1])]
        counts_N[rows] = torch.bincount(pairs[:, 0] - rows.start, minlength=rows.stop - rows.start)
        total += pairs.shape[0]
        if total > max_edges:
            raise TooManyEdgesError(
                f"the delta-ball graph has more than max_edges={max_edges} edges at delta={delta:g}"
            )
        pieces.append(pairs[:, 1])
    neighbours_E = torch.cat(pieces) if pieces else torch.empty(0, dtype=torch.int64, device=x_N_D.device)
    row_ptr = torch.zeros(num_rows + 1, dtype=torch.int64, device=x_N_D.device)
    torch.cumsum(counts_N, dim=0, out=row_ptr[1:])
    return row_ptr, neighbours_E


def covered_by(emb_N_D: torch.Tensor, centres_L_D: torch.Tensor, delta: float) -> torch.Tensor:
    """Which pool rows lie within δ of any labelled point (bool [N]), in [n, L] blocks."""
    num_rows = emb_N_D.shape[0]
    covered_N = torch.zeros(num_rows, dtype=torch.bool, device=emb_N_D.device)
    if centres_L_D.shape[0] == 0 or num_rows == 0:
        return covered_N
    mean_D = emb_N_D.float().mean(dim=0)
    x_N_D = emb_N_D.float() - mean_D
    y_L_D = centres_L_D.float().to(emb_N_D.device) - mean_D
    x_sq_N = x_N_D.square().sum(dim=1)
    y_sq_L = y_L_D.square().sum(dim=1)
    sq_delta = float(delta) ** 2
    for rows in chunk_slices(num_rows, block_rows(y_L_D.shape[0])):
        sq_dist = torch.addmm(y_sq_L, x_N_D[rows], y_L_D.T, alpha=-2.0).add_(x_sq_N[rows].unsqueeze(1))
        covered_N[rows] = (sq_dist < sq_delta).any(dim=1)
    return covered_N


def _gather_neighbours(row_ptr: torch.Tensor, neighbours_E: torch.Tensor, rows_k: torch.Tensor) -> torch.Tensor:
    """The concatenated neighbour lists of ``rows_k`` (vectorised CSR gather)."""
    starts = row_ptr[rows_k]
    lengths = row_ptr[rows_k + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return neighbours_E[:0]
    offsets = torch.repeat_interleave(starts - (torch.cumsum(lengths, 0) - lengths), lengths)
    return neighbours_E[offsets + torch.arange(total, device=row_ptr.device)]


def greedy_cover(
    row_ptr: torch.Tensor,
    neighbours_E: torch.Tensor,
    covered_N: torch.Tensor,
    num_picks: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy max coverage on a symmetric CSR ball graph.

    Each pick is the unpicked row covering the most uncovered rows (lowest index on ties,
    as the authors' argmax). Once every row is covered, the remaining picks are uniform
    over the unpicked rows (from ``generator``), as in the paper.

    Returns:
        (picks_B int64 in pick order, initial_gain_N int64: uncovered rows each ball covered before any pick).
    """
    num_rows = covered_N.shape[0]
    num_picks = min(num_picks, num_rows)
    covered_N = covered_N.clone()
    sources_E = torch.repeat_interleave(torch.arange(num_rows, device=row_ptr.device), row_ptr[1:] - row_ptr[:-1])
    gain_N = torch.zeros(num_rows, dtype=torch.int64, device=row_ptr.device)
    gain_N.index_add_(0, sources_E, (~covered_N[neighbours_E]).long())
    initial_gain_N = gain_N.clone()
    picked_N = torch.zeros(num_rows, dtype=torch.bool, device=row_ptr.device)
    picks = []
    for _ in range(num_picks):
        # a picked row's own ball is then fully covered, so its gain is 0: no mask needed
        pick = int(gain_N.argmax())
        if int(gain_N[pick]) <= 0:
            break
        picks.append(pick)
        picked_N[pick] = True
        ball = _gather_neighbours(row_ptr, neighbours_E, torch.tensor([pick], device=row_ptr.device))
        newly = ball[~covered_N[ball]]
        covered_N[newly] = True
        # each newly covered row no longer counts for any ball holding it (symmetric graph)
        holders = _gather_neighbours(row_ptr, neighbours_E, newly)
        gain_N.index_add_(0, holders, torch.full_like(holders, -1))
    remaining = num_picks - len(picks)
    if remaining:
        unpicked = (~picked_N).nonzero().squeeze(1)
        order = torch.randperm(unpicked.shape[0], generator=generator, device=generator.device).to(unpicked.device)
        picks += unpicked[order[:remaining]].tolist()
    return torch.tensor(picks, dtype=torch.int64, device=row_ptr.device), initial_gain_N


def purity_delta(emb_N_D: torch.Tensor, pseudo_labels_N: torch.Tensor, query_rows_Q: torch.Tensor, alpha: float) -> float:
    """The largest δ whose balls are pure (one pseudo-label) for at least a fraction α of points.

    A ball B_δ(x) = {y: ||x − y|| < δ} is pure iff δ ≤ r(x), the distance from x to the nearest
    point with another pseudo-label. So purity(δ) = #{x: r(x) ≥ δ}/n, and the largest δ with
    purity ≥ α is the ⌈α·n⌉-th largest r(x): exact, where the paper scans a grid of δ.
    r is computed for ``query_rows_Q`` (all rows, or a random sample for large pools) against
    every row, in [q, N] blocks.
    """
    x_N_D, sq_norm_N = centred(emb_N_D)
    num_rows = x_N_D.shape[0]
    radius_Q = torch.empty(query_rows_Q.shape[0], dtype=torch.float32, device=x_N_D.device)
    for part in chunk_slices(query_rows_Q.shape[0], TILE_ROWS):
        rows = query_rows_Q[part]
        nearest_other = torch.full((rows.shape[0],), math.inf, dtype=torch.float32, device=x_N_D.device)
        for cols in chunk_slices(num_rows, TILE_COLUMNS):
            sq_dist = torch.addmm(sq_norm_N[cols], x_N_D[rows], x_N_D[cols].T, alpha=-2.0).add_(sq_norm_N[rows].unsqueeze(1))
            same = pseudo_labels_N[rows].unsqueeze(1) == pseudo_labels_N[cols].unsqueeze(0)
            torch.minimum(nearest_other, sq_dist.masked_fill_(same, math.inf).amin(dim=1), out=nearest_other)
        radius_Q[part] = nearest_other.clamp_(min=0.0).sqrt_()
    keep = min(radius_Q.shape[0], max(1, math.ceil(alpha * radius_Q.shape[0] - 1e-9)))  # ⌈α·q⌉
    delta = float(torch.topk(radius_Q, keep).values[-1])
    return delta
