"""What a strategy sees (`PoolView`), what it returns (`Selection`), and their checks.

INFER fills a `PoolView` once per round with exactly the fields that the
strategy's spec ``needs``; every consumer (strategy, metrics, history) shares
it. The validation here runs at the strategy boundary, so malformed input
fails with a one-line message naming the field, the expected form and what was
given, e.g. ``bald: 'mc_log_probs' must have shape (N, K, C) with K >= 2; got (512, 10).``
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from kernels.chunking import DEFAULT_CHUNK_SIZE, chunk_slices, rows_per_chunk
from strategies.errors import StrategyInputError

#: The inputs a strategy can declare in ``needs``, and the `PoolView` field each fills.
NEED_FIELDS: dict[str, str] = {
    "probs": "probs_N_C",
    "mc_log_probs": "mc_log_probs_N_K_C",
    "emb": "emb_N_D",
    "labelled_emb": "labelled_emb_L_D",
    "history": "history",
}


@dataclass(frozen=True)
class HistoryChunk:
    """One round's predictions for a contiguous block of pool positions.

    ``probs_n_C`` holds rows ``start .. start + n`` of the current pool;
    ``observed_n`` is True where that round scored the sample (rows that were
    not scored hold arbitrary values and must be ignored).
    """

    round_index: int
    start: int
    probs_n_C: torch.Tensor
    observed_n: torch.Tensor


@runtime_checkable
class HistoryView(Protocol):
    """Read access to all past rounds' pool predictions, aligned to the current pool.

    The history is P in [T, N, C] with a mask M in {0, 1}^{T x N}; it is
    exposed as a stream so that strategies make ONE pass over T with O(N*C)
    state, never holding [T, N, C] in memory.
    """

    @property
    def num_rounds(self) -> int:
        """T, the number of recorded rounds."""
        ...

    @property
    def num_classes(self) -> int:
        """C."""
        ...

    @property
    def pool_size(self) -> int:
        """N, the number of current pool positions the view is aligned to."""
        ...

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE, first_round: int = 0) -> Iterator[HistoryChunk]:
        """Rounds ``first_round ..`` in chronological order; within a round, chunks in pool order."""
        ...

    # Optional, found with getattr by the history strategies:
    #   covers_pool(round_index) -> bool: did that round score every pool sample (lets `tod`
    #       read only the last two rounds);
    #   ready_statistics(keep, ema_decay, trend_window) -> (HistoryStatistics, rows_N) | None:
    #       streaming state already kept up to date (the AL loop's), so no round is re-read.


class TensorHistory:
    """An in-memory `HistoryView` over a dense ``hist_T_N_C`` tensor.

    For direct use of history strategies on tensors (and for tests); the AL
    loop uses the on-disk store of `experiments.history_store` instead.

    Args:
        hist_T_N_C: past rounds' pool probabilities (any float dtype).
        observed_T_N: bool mask of which rounds scored which sample; all True if None.
    """

    def __init__(self, hist_T_N_C: torch.Tensor, observed_T_N: torch.Tensor | None = None):
        if hist_T_N_C.ndim != 3:
            raise StrategyInputError(
                f"history: 'hist_T_N_C' must have shape (T, N, C); got {tuple(hist_T_N_C.shape)}"
            )
        if not hist_T_N_C.is_floating_point():
            raise StrategyInputError(f"history: 'hist_T_N_C' must be a floating-point tensor; got dtype {hist_T_N_C.dtype}")
        if hist_T_N_C.shape[2] < 2:
            raise StrategyInputError(f"history: 'hist_T_N_C' must have C >= 2 classes; got shape {tuple(hist_T_N_C.shape)}")
        if observed_T_N is None:
            observed_T_N = torch.ones(hist_T_N_C.shape[:2], dtype=torch.bool, device=hist_T_N_C.device)
        if tuple(observed_T_N.shape) != tuple(hist_T_N_C.shape[:2]):
            raise StrategyInputError(
                f"history: 'observed_T_N' must have shape {tuple(hist_T_N_C.shape[:2])} (T, N); "
                f"got {tuple(observed_T_N.shape)}"
            )
        self.hist_T_N_C = hist_T_N_C
        self.observed_T_N = observed_T_N.to(torch.bool)

    @property
    def num_rounds(self) -> int:
        return self.hist_T_N_C.shape[0]

    @property
    def num_classes(self) -> int:
        return self.hist_T_N_C.shape[2]

    @property
    def pool_size(self) -> int:
        return self.hist_T_N_C.shape[1]

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE, first_round: int = 0) -> Iterator[HistoryChunk]:
        for t in range(first_round, self.num_rounds):
            for rows in chunk_slices(self.pool_size, chunk_size):
                yield HistoryChunk(t, rows.start, self.hist_T_N_C[t, rows], self.observed_T_N[t, rows])

    def covers_pool(self, round_index: int) -> bool:
        """True if round ``round_index`` scored every pool sample."""
        return bool(self.observed_T_N[round_index].all())


@dataclass(frozen=True)
class PoolView:
    """Everything INFER produced for this round's pool; unused fields stay None.

    Attributes:
        pool_ids_N: int64 global dataset indices of the N pool samples (always set).
        probs_N_C: softmax class probabilities of the deterministic (eval-mode) model.
        mc_log_probs_N_K_C: log-softmax outputs under K MC-dropout masks / ensemble members.
        emb_N_D: penultimate-layer embeddings of the pool.
        labelled_emb_L_D: embeddings of the L labelled samples (L may be 0).
        history: all past rounds' pool predictions, aligned to ``pool_ids_N``.
        strategy_state: what this strategy returned as ``Selection.strategy_state`` in the
            previous round of the same run (None in the first round and outside a loop). The
            loop persists it in the run's round state, so a stateful strategy (e.g. clusters
            computed once per run) stays a pure function of its inputs.
    """

    pool_ids_N: torch.Tensor
    probs_N_C: torch.Tensor | None = None
    mc_log_probs_N_K_C: torch.Tensor | None = None
    emb_N_D: torch.Tensor | None = None
    labelled_emb_L_D: torch.Tensor | None = None
    history: HistoryView | None = None
    strategy_state: dict | None = None

    @property
    def size(self) -> int:
        """N."""
        return int(self.pool_ids_N.shape[0])

    @property
    def device(self) -> torch.device:
        return self.pool_ids_N.device


@dataclass(frozen=True)
class Selection:
    """A strategy's choice: ``indices_B`` are positions in the pool (not dataset ids).

    ``scores_N`` is the per-sample acquisition score where the strategy has one
    (higher = more worth labelling); None for e.g. `random`. ``strategy_state`` is
    what a stateful strategy wants back as ``PoolView.strategy_state`` next round:
    a dict of tensors and plain values, keyed by dataset index where it is per-sample
    (pool positions change between rounds).
    """

    indices_B: torch.Tensor
    scores_N: torch.Tensor | None = None
    strategy_state: dict | None = None


def _fail(strategy: str, message: str) -> StrategyInputError:
    return StrategyInputError(f"{strategy}: {message}")


def _check_finite_floats(strategy: str, need: str, tensor: torch.Tensor, allow_neg_inf: bool = False) -> None:
    if not tensor.is_floating_point():
        raise _fail(strategy, f"'{need}' must be a floating-point tensor; got dtype {tensor.dtype}")
    for rows in chunk_slices(tensor.shape[0]):
        block = tensor[rows]
        bad = torch.isnan(block) | (block == math.inf)
        if not allow_neg_inf:
            bad |= block == -math.inf
        if bool(bad.any()):
            first = int(bad.reshape(bad.shape[0], -1).any(dim=1).nonzero()[0, 0]) + rows.start
            raise _fail(strategy, f"'{need}' contains NaN or infinite values (first at pool row {first})")


def _normalisation_tolerance(dtype: torch.dtype) -> float:
    return 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-3


def _check_rows_sum_to_one(strategy: str, need: str, sums_n: torch.Tensor, dtype: torch.dtype, start: int) -> None:
    """``sums_n`` is [n] or [n, K]: the class sums of each row (of each MC sample)."""
    sums_n_flat = sums_n.reshape(sums_n.shape[0], -1)
    deviation_n = (sums_n_flat - 1.0).abs().amax(dim=1)
    if deviation_n.numel() and float(deviation_n.max()) > _normalisation_tolerance(dtype):
        row = int(deviation_n.argmax())
        worst = sums_n_flat[row, int((sums_n_flat[row] - 1.0).abs().argmax())]
        raise _fail(
            strategy,
            f"'{need}' must be normalised over classes (each row sums to 1); "
            f"pool row {row + start} sums to {float(worst):.6g}",
        )


def _sums_normalised(sums: torch.Tensor, dtype: torch.dtype, minimum: torch.Tensor | None = None) -> bool:
    """The one host sync of a fused check; NaN anywhere (a NaN or inf input) reads as a failure."""
    if sums.numel() == 0:
        return True
    low, high = torch.aminmax(sums)
    worst = torch.maximum(high - 1.0, 1.0 - low)
    if minimum is not None:
        # a negative entry counts as a deviation larger than any tolerance
        worst = torch.maximum(worst, -2.0 * minimum.float())
    return bool(worst <= _normalisation_tolerance(dtype))


def validate_probs(strategy: str, probs_N_C: torch.Tensor, pool_size: int) -> None:
    """Shape (N, C) with C >= 2, finite, non-negative, rows summing to 1.

    One fused pass: per chunk, the row sums (NaN or inf anywhere makes them non-finite)
    go into one [N] buffer; with the minimum entry they are reduced on the device, and
    the host reads one bool at the end. Only a failing input pays for the second pass that names the first bad row.
    """
    if probs_N_C.ndim != 2 or probs_N_C.shape[0] != pool_size or probs_N_C.shape[1] < 2:
        raise _fail(strategy, f"'probs' must have shape (N={pool_size}, C) with C >= 2; got {tuple(probs_N_C.shape)}")
    if not probs_N_C.is_floating_point():
        raise _fail(strategy, f"'probs' must be a floating-point tensor; got dtype {probs_N_C.dtype}")
    # per chunk one reduction into a preallocated [N] buffer: few ops, because on a shared CPU
    # every op's thread fork/join costs more than its arithmetic
    row_sums_N = torch.empty(pool_size, dtype=torch.float32, device=probs_N_C.device)
    for rows in chunk_slices(pool_size, rows_per_chunk(probs_N_C)):
        torch.sum(probs_N_C[rows], dim=1, dtype=torch.float32, out=row_sums_N[rows])
    minimum = probs_N_C.amin() if pool_size else None
    if _sums_normalised(row_sums_N, probs_N_C.dtype, minimum):
        return
    _check_finite_floats(strategy, "probs", probs_N_C)
    for rows in chunk_slices(pool_size):
        block = probs_N_C[rows].float()
        if bool((block < 0).any()):
            raise _fail(strategy, "'probs' must be non-negative; got negative entries")
        _check_rows_sum_to_one(strategy, "probs", block.sum(dim=1), probs_N_C.dtype, rows.start)


def validate_mc_log_probs(strategy: str, mc_log_probs_N_K_C: torch.Tensor, pool_size: int) -> None:
    """Shape (N, K, C) with K >= 2 and C >= 2; log-probabilities that normalise over C.

    One fused pass of exp and a class sum per chunk (log-probabilities are <= 0, so the
    max-shift of logsumexp is not needed; a positive entry that overflows fails the check,
    as it should); NaN or +inf make a sum non-finite, −inf (p = 0) is allowed.
    """
    shape = tuple(mc_log_probs_N_K_C.shape)
    if len(shape) != 3 or shape[0] != pool_size or shape[1] < 2 or shape[2] < 2:
        raise _fail(strategy, f"'mc_log_probs' must have shape (N={pool_size}, K, C) with K >= 2; got {shape}")
    if not mc_log_probs_N_K_C.is_floating_point():
        raise _fail(strategy, f"'mc_log_probs' must be a floating-point tensor; got dtype {mc_log_probs_N_K_C.dtype}")
    class_sums_N_K = torch.empty(shape[:2], dtype=torch.float32, device=mc_log_probs_N_K_C.device)
    for rows in chunk_slices(pool_size, rows_per_chunk(mc_log_probs_N_K_C)):
        torch.sum(mc_log_probs_N_K_C[rows].float().exp(), dim=2, out=class_sums_N_K[rows])
    if _sums_normalised(class_sums_N_K, mc_log_probs_N_K_C.dtype):
        return
    _check_finite_floats(strategy, "mc_log_probs", mc_log_probs_N_K_C, allow_neg_inf=True)
    for rows in chunk_slices(pool_size):
        block = mc_log_probs_N_K_C[rows].float()
        _check_rows_sum_to_one(
            strategy, "mc_log_probs", block.logsumexp(dim=2).exp(), mc_log_probs_N_K_C.dtype, rows.start
        )


def _check_finite_fused(strategy: str, need: str, tensor: torch.Tensor) -> None:
    """Finite everywhere: one float64 sum per chunk (NaN/inf propagate), one host sync."""
    if not tensor.is_floating_point():
        raise _fail(strategy, f"'{need}' must be a floating-point tensor; got dtype {tensor.dtype}")
    if tensor.numel() == 0:
        return
    sums = [tensor[rows].sum(dtype=torch.float64) for rows in chunk_slices(tensor.shape[0], rows_per_chunk(tensor))]
    if not math.isfinite(float(torch.stack(sums).sum())):
        _check_finite_floats(strategy, need, tensor)


def validate_embeddings(strategy: str, pool: PoolView, needs: tuple[str, ...]) -> None:
    """``emb`` is (N, D); ``labelled_emb`` is (L, D) with the same D (L may be 0)."""
    emb = pool.emb_N_D
    if "emb" in needs:
        if emb.ndim != 2 or emb.shape[0] != pool.size or emb.shape[1] < 1:
            raise _fail(strategy, f"'emb' must have shape (N={pool.size}, D); got {tuple(emb.shape)}")
        _check_finite_fused(strategy, "emb", emb)
    if "labelled_emb" in needs:
        labelled = pool.labelled_emb_L_D
        dim = emb.shape[1] if emb is not None and emb.ndim == 2 else None
        if labelled.ndim != 2 or (dim is not None and labelled.shape[1] != dim):
            raise _fail(
                strategy, f"'labelled_emb' must have shape (L, D={dim}); got {tuple(labelled.shape)}"
            )
        _check_finite_fused(strategy, "labelled_emb", labelled)


def validate_history(strategy: str, history: HistoryView, pool_size: int) -> None:
    """A `HistoryView` over at least one round, aligned to the current pool."""
    if not isinstance(history, HistoryView):
        raise _fail(strategy, f"'history' must be a HistoryView; got {type(history).__name__}")
    if history.num_rounds < 1:
        raise _fail(strategy, "'history' must hold at least one recorded round; got 0 rounds")
    if history.num_classes < 2:
        raise _fail(strategy, f"'history' must have C >= 2 classes; got C={history.num_classes}")
    if history.pool_size != pool_size:
        raise _fail(strategy, f"'history' must be aligned to the pool (N={pool_size}); got N={history.pool_size}")


def validate_pool(strategy: str, pool: PoolView, needs: tuple[str, ...]) -> None:
    """Check that every field in ``needs`` is present and well-formed; raise StrategyInputError."""
    if not isinstance(pool, PoolView):
        raise _fail(strategy, f"'pool' must be a PoolView; got {type(pool).__name__}")
    ids = pool.pool_ids_N
    if not isinstance(ids, torch.Tensor) or ids.ndim != 1 or ids.dtype not in (torch.int64, torch.int32):
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise _fail(strategy, f"'pool_ids_N' must be a 1-D integer tensor; got {shape}")
    for need in needs:
        if getattr(pool, NEED_FIELDS[need]) is None:
            raise _fail(strategy, f"needs '{need}' but PoolView.{NEED_FIELDS[need]} is None")
    if "probs" in needs:
        validate_probs(strategy, pool.probs_N_C, pool.size)
    if "mc_log_probs" in needs:
        validate_mc_log_probs(strategy, pool.mc_log_probs_N_K_C, pool.size)
    if "emb" in needs or "labelled_emb" in needs:
        validate_embeddings(strategy, pool, needs)
    if "history" in needs:
        validate_history(strategy, pool.history, pool.size)


def validate_query_size(strategy: str, query_size: object) -> int:
    """B must be a positive integer (B > N is allowed: the whole pool is returned)."""
    if isinstance(query_size, bool) or not isinstance(query_size, int) or query_size <= 0:
        raise _fail(strategy, f"'query_size' must be a positive integer; got {query_size!r}")
    return query_size


def validate_selection(strategy: str, selection: Selection, pool_size: int, query_size: int) -> None:
    """The contract every strategy's output meets: min(B, N) unique positions in [0, N)."""
    if not isinstance(selection, Selection):
        raise TypeError(f"{strategy}: must return a Selection; returned {type(selection).__name__}")
    indices = selection.indices_B
    expected = min(query_size, pool_size)
    if indices.ndim != 1 or indices.shape[0] != expected:
        raise RuntimeError(f"{strategy}: returned {tuple(indices.shape)} indices; expected ({expected},)")
    if expected and (int(indices.min()) < 0 or int(indices.max()) >= pool_size):
        raise RuntimeError(f"{strategy}: returned pool positions outside [0, {pool_size})")
    if torch.unique(indices).numel() != expected:
        raise RuntimeError(f"{strategy}: returned duplicate pool positions")
