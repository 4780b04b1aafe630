"""Streaming statistics over the time series of past INFER steps.

The history is P in [T, N, C] (pool probabilities of every recorded round)
with a mask M in {0, 1}^{T x N} of which rounds scored which sample;
n_i = sum_t M_ti. Every score here reads only a `HistoryStatistics`: O(N*C)
per-sample state that `HistoryStatistics.update` folds one round at a time
(chronologically, in chunks along N). The state is persisted between AL
rounds, so a long history is never re-read.

Masked semantics, the same for every score: a sample uses only the rounds
that observed it, in order; "consecutive" means consecutive observations, the
EMA advances once per observation, and bias correction uses n_i.

Fallback: a score that needs two observations is undefined for n_i < 2. Such
samples get the normalised entropy H(p_last) / log C of their latest observed
prediction, a value in [0, 1], and 1.0 (maximal uncertainty) if never
observed. It is computed only for those samples. Never NaN.

A state holds only the fields its scores need (`FIELDS_BY_SCORE`), so a round
update for `tod` touches two [N, C] tensors, not ten.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields

import torch

from kernels import backend as kernel_backend
from kernels import cupy_kernels
from kernels.chunking import rows_fitting_free_memory
from kernels.uncertainty import normalised_entropy

#: Rows per update block on the CPU: [32768, 10] fp32 = 1.3 MB stays in L2 across the ~20 ops of
#: an update; a GPU takes up to 4M rows (launch overhead dominates there), fewer when its free
#: memory is short (`rows_per_block`).
HISTORY_CHUNK_ROWS = {"cpu": 32_768, "cuda": 2**22}


def rows_per_block(stats: HistoryStatistics) -> int:
    """Rows per block of a torch update or scoring pass over ``stats``: cache-sized on a CPU; on a GPU
    sized from the free memory (the state's row plus ~8 [C] float32 temporaries per row)."""
    device = stats.n_observed_N.device
    upper = HISTORY_CHUNK_ROWS.get(device.type, HISTORY_CHUNK_ROWS["cuda"])
    if device.type != "cuda":
        return upper
    state_row_bytes = sum(t[0].numel() * t.element_size() for t in stats.tensors().values()) if stats.pool_size else 0
    return rows_fitting_free_memory(device, state_row_bytes + 8 * 4 * stats.num_classes, upper)

_LOG_CLAMP = 1e-12

#: Which optional state fields each score reads (``last_probs_N_C`` and ``n_observed_N`` always exist).
FIELDS_BY_SCORE: dict[str, frozenset[str]] = {
    "tod": frozenset({"prev_probs_N_C"}),
    "tod_cumulative": frozenset({"sq_diff_sum_N"}),
    "flip_rate": frozenset({"label_changes_N", "last_label_N"}),
    "temporal_variation_ratio": frozenset({"votes_N_C"}),
    "temporal_bald": frozenset({"probs_sum_N_C", "entropy_sum_N"}),
    "teacher_student_kl": frozenset({"probs_sum_N_C", "log_probs_sum_N_C"}),
    "cartography_variability": frozenset({"probs_sum_N_C", "probs_m2_N_C"}),
    "ema_uncertainty": frozenset({"entropy_ema_N", "entropy_sum_N", "entropy_m2_N"}),
    "uncertainty_trend": frozenset({"entropy_ema_N", "trend_entropy_N_W", "trend_round_N_W"}),
}
ALL_FIELDS = frozenset().union(*FIELDS_BY_SCORE.values())


class HistoryInputError(ValueError):
    """A history value or shape the state cannot take (wrong C, non-finite, not normalised)."""


@dataclass
class HistoryStatistics:
    """Per-sample streaming state after any number of rounds; optional fields are None when not kept.

    Attributes:
        n_observed_N: n_i, rounds that scored sample i (float32).
        last_probs_N_C: P at the latest round that observed i (fp16 if the history is fp16: exact).
        prev_probs_N_C: P at the observed round before that (`tod`).
        sq_diff_sum_N: sum over consecutive observations of ½‖P_t − P_prev‖² (`tod_cumulative`).
        label_changes_N: consecutive observations whose argmax differs (`flip_rate`).
        last_label_N: argmax of ``last_probs_N_C`` (kept: an argmax over C costs more than the rest of an update).
        votes_N_C: int32 count of observations whose argmax is c (`temporal_variation_ratio`).
        probs_sum_N_C: Σ_t P_t; the running mean is this / n (Welford's mean).
        probs_m2_N_C: Welford's M2 of P_t, per class (`cartography_variability`).
        log_probs_sum_N_C: Σ_t log max(P_t, 1e-12) (`teacher_student_kl`).
        entropy_sum_N: Σ_t H(P_t); entropy_m2_N: Welford's M2 of H(P_t).
        entropy_ema_N: EMA of H(P_t) with ``ema_decay``, started at 0 (bias-corrected when read).
        trend_entropy_N_W, trend_round_N_W: ring buffers of the last W = ``trend_window`` entropies and
            the round indices they were observed at (slot n mod W is written next).
        ema_decay, trend_window: the parameters the EMA and ring buffers were built with.
    """

    n_observed_N: torch.Tensor
    last_probs_N_C: torch.Tensor
    prev_probs_N_C: torch.Tensor | None = None
    sq_diff_sum_N: torch.Tensor | None = None
    label_changes_N: torch.Tensor | None = None
    last_label_N: torch.Tensor | None = None
    votes_N_C: torch.Tensor | None = None
    probs_sum_N_C: torch.Tensor | None = None
    probs_m2_N_C: torch.Tensor | None = None
    log_probs_sum_N_C: torch.Tensor | None = None
    entropy_sum_N: torch.Tensor | None = None
    entropy_m2_N: torch.Tensor | None = None
    entropy_ema_N: torch.Tensor | None = None
    trend_entropy_N_W: torch.Tensor | None = None
    trend_round_N_W: torch.Tensor | None = None
    ema_decay: float = 0.8
    trend_window: int = 5
    rounds_seen: int = field(default=0)

    @classmethod
    def empty(
        cls,
        pool_size: int,
        num_classes: int,
        device: torch.device | str = "cpu",
        keep: frozenset[str] | set[str] | None = None,
        ema_decay: float = 0.8,
        trend_window: int = 5,
        probs_dtype: torch.dtype = torch.float32,
    ) -> HistoryStatistics:
        """State before any round. ``keep``: the optional fields to maintain (None: all)."""
        if num_classes < 2:
            raise HistoryInputError(f"must have C >= 2 classes; got C={num_classes}")
        keep = ALL_FIELDS if keep is None else frozenset(keep)
        unknown = sorted(keep - ALL_FIELDS)
        if unknown:
            raise ValueError(f"history: unknown state field '{unknown[0]}'; allowed: {', '.join(sorted(ALL_FIELDS))}")
        N, C, W = pool_size, num_classes, trend_window

        def zeros(*shape, dtype=torch.float32):
            return torch.zeros(*shape, dtype=dtype, device=device)

        optional = {
            "prev_probs_N_C": lambda: zeros(N, C, dtype=probs_dtype),
            "sq_diff_sum_N": lambda: zeros(N),
            "label_changes_N": lambda: zeros(N),
            "last_label_N": lambda: zeros(N, dtype=torch.int64),
            "votes_N_C": lambda: zeros(N, C, dtype=torch.int32),
            "probs_sum_N_C": lambda: zeros(N, C),
            "probs_m2_N_C": lambda: zeros(N, C),
            "log_probs_sum_N_C": lambda: zeros(N, C),
            "entropy_sum_N": lambda: zeros(N),
            "entropy_m2_N": lambda: zeros(N),
            "entropy_ema_N": lambda: zeros(N),
            "trend_entropy_N_W": lambda: zeros(N, W),
            "trend_round_N_W": lambda: zeros(N, W),
        }
        return cls(
            n_observed_N=zeros(N),
            last_probs_N_C=zeros(N, C, dtype=probs_dtype),
            ema_decay=float(ema_decay),
            trend_window=int(trend_window),
            **{name: make() for name, make in optional.items() if name in keep},
        )

    # ---- shape and persistence -------------------------------------------------------------

    @property
    def pool_size(self) -> int:
        return int(self.n_observed_N.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.last_probs_N_C.shape[1])

    @property
    def kept(self) -> frozenset[str]:
        """The optional fields this state maintains."""
        return frozenset(name for name in ALL_FIELDS if getattr(self, name) is not None)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every per-sample tensor held, by field name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A dict of tensors (for ``torch.save(weights_only=True)``); `from_state_dict` inverts it."""
        return {
            **self.tensors(),
            "ema_decay": torch.tensor(self.ema_decay, dtype=torch.float64),
            "trend_window": torch.tensor(self.trend_window),
            "rounds_seen": torch.tensor(self.rounds_seen),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> HistoryStatistics:
        tensor_names = {f.name for f in fields(cls)} - {"ema_decay", "trend_window", "rounds_seen"}
        return cls(
            **{name: value.to(device) for name, value in state.items() if name in tensor_names},
            ema_decay=float(state["ema_decay"]),
            trend_window=int(state["trend_window"]),
            rounds_seen=int(state["rounds_seen"]),
        )

    def slice_rows(self, rows: slice) -> HistoryStatistics:
        """Rows ``rows`` of the state as views (no copy)."""
        return HistoryStatistics(
            **{name: tensor[rows] for name, tensor in self.tensors().items()},
            ema_decay=self.ema_decay, trend_window=self.trend_window, rounds_seen=self.rounds_seen,
        )

    def select_rows(self, rows_N: torch.Tensor) -> HistoryStatistics:
        """The state of samples ``rows_N`` (a gather: a new state, this one untouched)."""
        gathered = {name: tensor[rows_N] for name, tensor in self.tensors().items()}
        return HistoryStatistics(
            **gathered, ema_decay=self.ema_decay, trend_window=self.trend_window, rounds_seen=self.rounds_seen
        )

    def with_rows(self, total_rows: int, rows_M: torch.Tensor) -> HistoryStatistics:
        """A state over ``total_rows`` samples where row ``rows_M[m]`` is this state's row m and the rest are empty."""
        grown = {}
        for name, tensor in self.tensors().items():
            fresh = torch.zeros((total_rows, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
            fresh[rows_M] = tensor
            grown[name] = fresh
        return HistoryStatistics(
            **grown, ema_decay=self.ema_decay, trend_window=self.trend_window, rounds_seen=self.rounds_seen
        )

    # ---- the update ------------------------------------------------------------------------

    def update(
        self,
        start: int,
        probs_n_C: torch.Tensor,
        observed_n: torch.Tensor | None = None,
        round_index: int | None = None,
        check: bool = True,
    ) -> None:
        """Fold one round's predictions for rows ``start .. start + n`` into the state.

        Rounds must arrive in chronological order. Rows with ``observed_n`` False are left untouched
        (None: all observed, the fast path). ``round_index`` is the x of the `uncertainty_trend`
        slope; without it, ``rounds_seen`` (advanced by `finish_round` after a round's last block).
        ``check`` rejects non-finite or non-normalised observed rows (HistoryInputError).
        """
        if probs_n_C.ndim != 2 or probs_n_C.shape[1] != self.num_classes:
            raise HistoryInputError(
                f"rounds must agree on C={self.num_classes} classes; got a round of shape {tuple(probs_n_C.shape)}"
            )
        if round_index is None:
            round_index = self.rounds_seen
        device = self.n_observed_N.device
        rows = slice(start, start + probs_n_C.shape[0])
        if observed_n is not None:
            observed_n = observed_n.to(device=device, dtype=torch.bool)
            if bool(observed_n.all()):
                observed_n = None
        if observed_n is None:
            if self._fused(probs_n_C):
                self._update_fused(probs_n_C.to(device), None, start, round_index, check)
                return
            block_rows = rows_per_block(self)
            for offset in range(0, probs_n_C.shape[0], block_rows):
                stop = min(offset + block_rows, probs_n_C.shape[0])
                block = probs_n_C[offset:stop].to(device=device)
                sub = slice(rows.start + offset, rows.start + stop)
                self._update_rows({name: t[sub] for name, t in self.tensors().items()}, block, round_index, check)
            return
        positions = observed_n.nonzero().squeeze(1)
        self.update_at(positions + rows.start, probs_n_C.to(device=device)[positions], round_index, check)

    def update_at(
        self, rows_n: torch.Tensor, probs_n_C: torch.Tensor, round_index: int | None = None, check: bool = True
    ) -> None:
        """Fold observed predictions ``probs_n_C`` of state rows ``rows_n`` (unique) into the state.

        Gathers those rows, updates them as a dense block, scatters them back: a round that scored
        only part of the pool costs O(n * C), not O(N * C).
        """
        if probs_n_C.ndim != 2 or probs_n_C.shape[1] != self.num_classes:
            raise HistoryInputError(
                f"rounds must agree on C={self.num_classes} classes; got a round of shape {tuple(probs_n_C.shape)}"
            )
        if rows_n.numel() == 0:
            return
        device = self.n_observed_N.device
        rows_n = rows_n.to(device)
        round_index = self.rounds_seen if round_index is None else round_index
        if self._fused(probs_n_C):
            # the kernel reads and writes the state rows in place: no gather/scatter
            self._update_fused(probs_n_C.to(device), rows_n, 0, round_index, check)
            return
        block_rows = rows_per_block(self)
        for start in range(0, rows_n.shape[0], block_rows):
            rows_b = rows_n[start : start + block_rows]
            gathered = {name: t[rows_b] for name, t in self.tensors().items()}
            self._update_rows(gathered, probs_n_C[start : start + block_rows].to(device), round_index, check)
            for name, tensor in gathered.items():
                getattr(self, name)[rows_b] = tensor

    def _fused(self, probs_n_C: torch.Tensor) -> bool:
        """Whether the fused CuPy update runs (see `kernels.backend`): a CUDA state, fp16/fp32 rows."""
        fusable = probs_n_C.dtype in (torch.float16, torch.float32) and self.last_probs_N_C.dtype in (
            torch.float16, torch.float32
        ) and self.num_classes <= cupy_kernels.MAX_FUSED_CLASSES
        return kernel_backend.resolve("history_update", self.n_observed_N, fusable=fusable) == "cupy"

    def _update_fused(
        self, probs_n_C: torch.Tensor, rows_n: torch.Tensor | None, start: int, round_index: int, check: bool
    ) -> None:
        if probs_n_C.dtype not in (torch.float16, torch.float32):
            probs_n_C = probs_n_C.float()  # an explicit kernels.backend=cupy with bf16/fp64 rows
        if check:
            flags, deviation = cupy_kernels.history_check(probs_n_C)
            _raise_for_problems(flags, deviation)
        cupy_kernels.history_update(
            self.tensors(), probs_n_C, rows_n, start, self.ema_decay, self.trend_window, float(round_index)
        )

    def finish_round(self) -> None:
        """Mark the end of one round (the default x of the trend slope)."""
        self.rounds_seen += 1

    def _update_rows(self, s: dict[str, torch.Tensor], block_n_C: torch.Tensor, round_index: int, check: bool) -> None:
        """Update the (view or gathered) rows ``s`` with fully observed predictions, in place."""
        p = block_n_C.float()
        if check:
            _check_block(p)
        n_old = s["n_observed_N"]
        seen_before_n = n_old > 0
        n_new = n_old + 1.0
        last = s["last_probs_N_C"]
        needs_label = "label_changes_N" in s or "votes_N_C" in s
        # max().indices is the first maximal class, as argmax, and ~25% faster on a CPU
        label_n = p.max(dim=1).indices if needs_label else None
        if "label_changes_N" in s:
            changed = (label_n != s["last_label_N"]) & seen_before_n
            s["label_changes_N"] += changed
            s["last_label_N"].copy_(label_n)
        if "sq_diff_sum_N" in s:
            step_n = 0.5 * _row_sums((p - last.float()).square_())
            s["sq_diff_sum_N"] += step_n * seen_before_n
        if "prev_probs_N_C" in s:
            s["prev_probs_N_C"].copy_(last)
        last.copy_(p)
        if "votes_N_C" in s:
            s["votes_N_C"].scatter_add_(1, label_n.unsqueeze(1), torch.ones_like(label_n, dtype=torch.int32).unsqueeze(1))
        needs_log = "log_probs_sum_N_C" in s or "entropy_sum_N" in s or "entropy_ema_N" in s
        if needs_log:
            log_p = p.clamp_min(_LOG_CLAMP).log_()
            if "log_probs_sum_N_C" in s:
                s["log_probs_sum_N_C"] += log_p
            entropy_n = -_row_sums(p * log_p) if ("entropy_sum_N" in s or "entropy_ema_N" in s) else None
        if "probs_sum_N_C" in s:
            total = s["probs_sum_N_C"]
            if "probs_m2_N_C" in s:
                # Welford: the mean is the running sum / n, so only M2 needs a state of its own
                delta = p - total / n_old.clamp_min(1.0).unsqueeze(1)
                total += p
                s["probs_m2_N_C"] += delta * (p - total / n_new.unsqueeze(1))
            else:
                total += p
        if "entropy_sum_N" in s:
            entropy_total = s["entropy_sum_N"]
            if "entropy_m2_N" in s:
                delta_n = entropy_n - entropy_total / n_old.clamp_min(1.0)
                entropy_total += entropy_n
                s["entropy_m2_N"] += delta_n * (entropy_n - entropy_total / n_new)
            else:
                entropy_total += entropy_n
        if "entropy_ema_N" in s:
            ema = s["entropy_ema_N"]
            ema.mul_(self.ema_decay).add_(entropy_n, alpha=1.0 - self.ema_decay)
        if "trend_entropy_N_W" in s:
            slot_n1 = torch.remainder(n_old, self.trend_window).long().unsqueeze(1)
            s["trend_entropy_N_W"].scatter_(1, slot_n1, entropy_n.unsqueeze(1))
            s["trend_round_N_W"].scatter_(1, slot_n1, torch.full_like(entropy_n, float(round_index)).unsqueeze(1))
        n_old.copy_(n_new)  # last: the updates above read the old count

    # ---- fallback --------------------------------------------------------------------------

    def with_fallback(self, scores_N: torch.Tensor) -> torch.Tensor:
        """``scores_N`` with samples observed fewer than twice replaced by the fallback (in place)."""
        few_N = self.n_observed_N < 2
        if bool(few_N.any()):
            rows = few_N.nonzero().squeeze(1)
            fallback = normalised_entropy(self.last_probs_N_C[rows].float())
            fallback = torch.where(self.n_observed_N[rows] > 0, fallback, torch.ones_like(fallback))
            scores_N[rows] = fallback.to(scores_N.dtype)
        return scores_N


def _raise_for_problems(flags: int, deviation: float) -> None:
    """The HistoryInputError for bad rows, from problem bits: 1 non-finite, 2 a row sum off 1 by
    ``deviation``, 4 a negative entry (the fused check's bits; `_check_block` uses the same)."""
    if flags & 1:
        raise HistoryInputError("probabilities must be finite; got NaN or infinite values")
    if flags & 2:
        raise HistoryInputError(f"probabilities must sum to 1 over classes; a row deviates by {deviation:.3g}")
    if flags & 4:
        raise HistoryInputError("probabilities must be non-negative; got negative entries")


def _check_block(p_n_C: torch.Tensor) -> None:
    """Observed history rows must be finite probabilities that sum to 1 (fp16 tolerance)."""
    if p_n_C.numel() == 0:
        return
    sums_n = _row_sums(p_n_C)
    worst = float((sums_n - 1.0).abs().max())  # NaN and inf rows propagate into the max
    if not worst <= 1e-2:
        _raise_for_problems(2 if bool(torch.isfinite(p_n_C).all()) else 1, worst)
    if float(p_n_C.amin()) < 0:
        _raise_for_problems(4, worst)


def _require(stats: HistoryStatistics, score: str) -> None:
    missing = sorted(FIELDS_BY_SCORE[score] - stats.kept)
    if missing:
        raise ValueError(f"{score}: the history state does not keep '{missing[0]}'; build it with keep ⊇ FIELDS_BY_SCORE['{score}']")


def _entropy(p_N_C: torch.Tensor) -> torch.Tensor:
    return -_row_sums(p_N_C * p_N_C.clamp_min(_LOG_CLAMP).log())


def _row_sums(values_n_C: torch.Tensor) -> torch.Tensor:
    """Σ_c as a matrix-vector product: on a CPU, 5-8x faster than ``sum(dim=1)`` over a short last dim."""
    return torch.mv(values_n_C, torch.ones(values_n_C.shape[1], dtype=values_n_C.dtype, device=values_n_C.device))


# ---- scores (higher = queried); each [N] float32, fallback for n < 2 ----------------------------


def _blockwise(score: str):
    """Evaluate a score on cache-sized row blocks of the state (views), into one [N] output.

    Whole-pool temporaries ([N, C] float32 per op) would each be fresh memory the OS must fault
    in; blocks keep the temporaries small and reused.
    """

    def decorator(score_block):
        @functools.wraps(score_block)
        def scores(stats: HistoryStatistics, *args, **kwargs) -> torch.Tensor:
            _require(stats, score)
            device = stats.n_observed_N.device
            out_N = torch.empty(stats.pool_size, dtype=torch.float32, device=device)
            block_rows = rows_per_block(stats)
            for start in range(0, stats.pool_size, block_rows):
                rows = slice(start, min(start + block_rows, stats.pool_size))
                block = stats.slice_rows(rows)
                out_N[rows] = block.with_fallback(score_block(block, *args, **kwargs))
            return out_N

        return scores

    return decorator


@_blockwise("tod")
def temporal_output_discrepancy(stats: HistoryStatistics) -> torch.Tensor:
    """½‖P_last − P_prev‖² between each sample's two latest observations; in [0, 1].

    Huang et al., "Semi-Supervised Active Learning with Temporal Output Discrepancy", ICCV 2021
    (siyuhuang/TOD), applied across AL rounds.
    """
    scores_N = 0.5 * _row_sums((stats.last_probs_N_C.float() - stats.prev_probs_N_C.float()).square_())
    return scores_N


@_blockwise("tod_cumulative")
def cumulative_output_discrepancy(stats: HistoryStatistics) -> torch.Tensor:
    """Mean over consecutive observation pairs of ½‖P_t − P_prev‖²; in [0, 1] (`tod_cumulative`)."""
    scores_N = stats.sq_diff_sum_N / (stats.n_observed_N - 1.0).clamp_min(1.0)
    return scores_N


@_blockwise("flip_rate")
def flip_rate(stats: HistoryStatistics, prior_a: float = 1.0, prior_b: float = 1.0) -> torch.Tensor:
    """(argmax changes + a) / (n − 1 + a + b): posterior-mean flip rate under Beta(a, b); in (0, 1).

    Switch events: Benkert et al. 2023; prediction-change active learning.
    """
    scores_N = (stats.label_changes_N + prior_a) / (stats.n_observed_N - 1.0 + prior_a + prior_b)
    return scores_N


@_blockwise("temporal_variation_ratio")
def temporal_variation_ratio(stats: HistoryStatistics) -> torch.Tensor:
    """1 − max_c #{t: y_t = c} / n, label dispersion over the observations; in [0, 1 − 1/C].

    Variation ratio over past rounds' predictions (Bengar et al. 2021).
    """
    modal_N = stats.votes_N_C.amax(dim=1).float()
    scores_N = 1.0 - modal_N / stats.n_observed_N.clamp_min(1.0)
    return scores_N


@_blockwise("temporal_bald")
def temporal_bald(stats: HistoryStatistics) -> torch.Tensor:
    """H(p̄) − mean_t H(P_t) with p̄ = mean_t P_t: past rounds' models as a committee; in [0, log C].

    Snapshot ensembles across rounds (Jung et al., ICLR 2023).
    """
    count_N = stats.n_observed_N.clamp_min(1.0)
    mean_N_C = stats.probs_sum_N_C / count_N.unsqueeze(1)
    scores_N = _entropy(mean_N_C) - stats.entropy_sum_N / count_N
    return scores_N


@_blockwise("teacher_student_kl")
def teacher_student_kl(stats: HistoryStatistics, tau: float = 0.5) -> torch.Tensor:
    """mean_t KL(q ‖ P_t) with the sharpened teacher q = normalise(p̄^{1/τ}); >= 0.

    Σ_c q_c log q_c − Σ_c q_c · mean_t log P_t,c, so only Σ_t log P_t is kept. ST-CoNAL
    (Baik et al., ECCV 2022), with past rounds as the students.
    """
    count_N1 = stats.n_observed_N.clamp_min(1.0).unsqueeze(1)
    mean_N_C = stats.probs_sum_N_C / count_N1
    log_q_N_C = torch.log_softmax(mean_N_C.clamp_min(_LOG_CLAMP).log() / tau, dim=1)
    q_N_C = log_q_N_C.exp()
    scores_N = _row_sums(q_N_C * (log_q_N_C - stats.log_probs_sum_N_C / count_N1))
    return scores_N


@_blockwise("cartography_variability")
def cartography_variability(stats: HistoryStatistics) -> torch.Tensor:
    """Population std over the observations of P_t[ŷ], ŷ = argmax of the latest prediction; in [0, ½].

    Dataset Cartography (Swayamdipta et al., EMNLP 2020), with pseudo-labels instead of gold labels.
    """
    label_N1 = stats.last_probs_N_C.float().argmax(dim=1, keepdim=True)
    m2_N = stats.probs_m2_N_C.gather(1, label_N1).squeeze(1)
    scores_N = (m2_N / stats.n_observed_N.clamp_min(1.0)).clamp_min(0.0).sqrt()
    return scores_N


def _bias_corrected_ema(stats: HistoryStatistics) -> torch.Tensor:
    return stats.entropy_ema_N / (1.0 - torch.pow(stats.ema_decay, stats.n_observed_N)).clamp_min(1e-12)


@_blockwise("ema_uncertainty")
def ema_uncertainty(stats: HistoryStatistics, lam: float = 1.0) -> torch.Tensor:
    """Bias-corrected EMA of u_t = H(P_t) plus λ · population std of u_t over the observations.

    Yao et al., "Looking back on the past: active learning with historical evaluation results", TKDE.
    The decay is the state's ``ema_decay``.
    """
    std_N = (stats.entropy_m2_N / stats.n_observed_N.clamp_min(1.0)).clamp_min(0.0).sqrt()
    scores_N = _bias_corrected_ema(stats) + lam * std_N
    return scores_N


@_blockwise("uncertainty_trend")
def uncertainty_trend(stats: HistoryStatistics, gamma: float = 1.0) -> torch.Tensor:
    """Bias-corrected EMA of u_t plus γ · max(0, least-squares slope of u_t against the round index t
    over the last W = ``trend_window`` observations): uncertainty that is not going away.
    """
    W = stats.trend_window
    kept_N = stats.n_observed_N.clamp(max=float(W))
    valid_N_W = torch.arange(W, device=kept_N.device).unsqueeze(0) < kept_N.unsqueeze(1)
    count_N = kept_N.clamp_min(1.0)
    t_N_W = torch.where(valid_N_W, stats.trend_round_N_W, 0.0)
    u_N_W = torch.where(valid_N_W, stats.trend_entropy_N_W, 0.0)
    t_mean_N = _row_sums(t_N_W) / count_N
    u_mean_N = _row_sums(u_N_W) / count_N
    t_centred_N_W = torch.where(valid_N_W, t_N_W - t_mean_N.unsqueeze(1), 0.0)
    covariance_N = _row_sums(t_centred_N_W * (u_N_W - u_mean_N.unsqueeze(1)))
    variance_N = _row_sums(t_centred_N_W.square())
    slope_N = covariance_N / variance_N.clamp_min(1e-12)
    scores_N = _bias_corrected_ema(stats) + gamma * slope_N.clamp_min(0.0)
    return scores_N


#: The score function of each history strategy, by strategy name.
SCORES = {
    "tod": temporal_output_discrepancy,
    "tod_cumulative": cumulative_output_discrepancy,
    "flip_rate": flip_rate,
    "temporal_variation_ratio": temporal_variation_ratio,
    "temporal_bald": temporal_bald,
    "teacher_student_kl": teacher_student_kl,
    "cartography_variability": cartography_variability,
    "ema_uncertainty": ema_uncertainty,
    "uncertainty_trend": uncertainty_trend,
}

