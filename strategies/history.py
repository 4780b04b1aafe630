"""Strategies that read the time series of all past INFER steps (``pool.history``).

Each scores from one `kernels.history.HistoryStatistics` (O(N*C) streaming
state, see there for the masked semantics and the fallback for samples
observed fewer than twice). Where the state comes from:

- inside the AL loop the view carries it ready (`ready_statistics`), kept up
  to date one round at a time, so nothing is re-read;
- otherwise (`TensorHistory`, a store's round files) one pass over the rounds
  builds it (`accumulate_history`). `tod` reads only the last two rounds when
  both scored the whole pool.

``window`` (where a strategy takes it) keeps only each sample's last W
observations; it needs a pass over the rounds (the incremental state cannot
forget), so it is not served from the loop's state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from kernels import history as history_kernels
from kernels.history import FIELDS_BY_SCORE, HistoryInputError, HistoryStatistics
from strategies.errors import StrategyInputError
from strategies.pool_view import HistoryView, PoolView, Selection
from strategies.registry import register_strategy
from strategies.selectors import select_top

#: Rows per block read from a history view; the state update splits them further (cache-sized).
PASS_CHUNK_ROWS = 2**20

DEFAULT_DECAY = 0.8
DEFAULT_TREND_WINDOW = 5


@dataclass(frozen=True)
class HistoryStateSpec:
    """What a history strategy needs kept per sample, and with which parameters.

    ``incremental`` is False where the strategy's parameters need a pass over the rounds
    (a ``window``); the loop then keeps no state for it.
    """

    score: str
    keep: frozenset[str]
    ema_decay: float = DEFAULT_DECAY
    trend_window: int = DEFAULT_TREND_WINDOW
    incremental: bool = True


# ---- parameter checks: one line naming the key ------------------------------------------------


def _number(strategy: str, key: str, value: object) -> float:
    """``key`` is the name shown: the parameter, or its config key (``strategy.params.tau``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StrategyInputError(f"{strategy}: '{key}' must be a finite number; got {value!r}")
    return float(value)


def _check_positive(strategy: str, key: str, value: object, meaning: str) -> float:
    number = _number(strategy, key, value)
    if not number > 0:
        raise StrategyInputError(f"{strategy}: '{key}' must be a number > 0 ({meaning}); got {value!r}")
    return number


def _check_non_negative(strategy: str, key: str, value: object) -> float:
    number = _number(strategy, key, value)
    if number < 0:
        raise StrategyInputError(f"{strategy}: '{key}' must be a number >= 0; got {value!r}")
    return number


def _check_decay(strategy: str, key: str, value: object) -> float:
    number = _number(strategy, key, value)
    if not 0.0 < number < 1.0:
        raise StrategyInputError(f"{strategy}: '{key}' must be in (0, 1) (EMA decay); got {value!r}")
    return number


def _check_window(strategy: str, key: str, value: object, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        allowed = "None or an integer >= 2" if optional else "an integer >= 2"
        raise StrategyInputError(f"{strategy}: '{key}' must be {allowed} (rounds per sample); got {value!r}")
    return value


def check_history_params(strategy: str, params: Mapping[str, object], key_prefix: str = "") -> HistoryStateSpec:
    """Validate a history strategy's parameters (defaults filled in) and say what state it needs.

    Errors name ``key_prefix + key`` (the runner passes ``"strategy.params."``).
    """
    defaults = _DEFAULTS[strategy]
    values = {**defaults, **params}
    window = values.get("window")
    decay, trend_window = DEFAULT_DECAY, DEFAULT_TREND_WINDOW

    def key(name: str) -> str:
        return key_prefix + name

    if strategy == "flip_rate":
        _check_positive(strategy, key("prior_a"), values["prior_a"], "Beta prior")
        _check_positive(strategy, key("prior_b"), values["prior_b"], "Beta prior")
    if strategy == "teacher_student_kl":
        _check_positive(strategy, key("tau"), values["tau"], "temperature")
    if strategy in ("ema_uncertainty", "uncertainty_trend"):
        decay = _check_decay(strategy, key("decay"), values["decay"])
    if strategy == "ema_uncertainty":
        _check_non_negative(strategy, key("lam"), values["lam"])
    if strategy == "uncertainty_trend":
        _check_non_negative(strategy, key("gamma"), values["gamma"])
        trend_window = _check_window(strategy, key("window"), window, optional=False)
        window = None  # W is the slope's window, kept in the state's ring buffer
    elif "window" in values:
        window = _check_window(strategy, key("window"), window)
    return HistoryStateSpec(
        score=strategy, keep=FIELDS_BY_SCORE[strategy], ema_decay=decay, trend_window=trend_window,
        incremental=window is None,
    )


def history_state_spec(strategy: str, params: Mapping[str, object], key_prefix: str = "") -> HistoryStateSpec | None:
    """The state the loop should keep for ``strategy`` with ``params``; None if it reads no history."""
    if strategy not in _DEFAULTS:
        return None
    return check_history_params(strategy, params, key_prefix)


# ---- building the state ----------------------------------------------------------------------


def _window_mask_counts(history: HistoryView, device: torch.device) -> torch.Tensor:
    """n_i over all rounds: a pass over the masks (values are not decoded)."""
    counts_N = torch.zeros(history.pool_size, dtype=torch.int64, device=device)
    for chunk in history.iter_chunks(PASS_CHUNK_ROWS):
        counts_N[chunk.start : chunk.start + chunk.observed_n.shape[0]] += chunk.observed_n.to(device)
    return counts_N


def accumulate_history(
    history: HistoryView,
    device: torch.device | str,
    keep: frozenset[str] | None = None,
    ema_decay: float = DEFAULT_DECAY,
    trend_window: int = DEFAULT_TREND_WINDOW,
    window: int | None = None,
    first_round: int = 0,
) -> HistoryStatistics:
    """One pass over the recorded rounds (from ``first_round``) into streaming state on ``device``.

    ``keep``: the optional state fields to maintain (None: all). ``window``: use only each
    sample's last ``window`` observations (a second pass over the masks finds them).
    Raises HistoryInputError on values the state cannot take.
    """
    device = torch.device(device)
    total_N = _window_mask_counts(history, device) if window is not None else None
    seen_N = torch.zeros_like(total_N) if window is not None else None
    stats = None
    current_round = None
    for chunk in history.iter_chunks(PASS_CHUNK_ROWS, first_round=first_round):
        if stats is None:
            probs_dtype = torch.float16 if chunk.probs_n_C.dtype == torch.float16 else torch.float32
            stats = HistoryStatistics.empty(
                history.pool_size, history.num_classes, device, keep, ema_decay, trend_window, probs_dtype
            )
        current_round = chunk.round_index
        observed_n = chunk.observed_n.to(device)
        if window is not None:
            rows = slice(chunk.start, chunk.start + observed_n.shape[0])
            rank_n = seen_N[rows].clone()
            seen_N[rows] += observed_n
            observed_n = observed_n & (rank_n >= total_N[rows] - window)
        stats.update(chunk.start, chunk.probs_n_C, observed_n, round_index=chunk.round_index)
    if stats is None:
        stats = HistoryStatistics.empty(history.pool_size, history.num_classes, device, keep, ema_decay, trend_window)
    else:
        stats.rounds_seen = current_round + 1
    return stats


def history_statistics(
    history: HistoryView, device: torch.device, spec: HistoryStateSpec, window: int | None = None
) -> tuple[HistoryStatistics, torch.Tensor | None]:
    """The state ``spec`` needs, and the state row of each pool position (None: row i is position i).

    Taken ready from the view when it carries a matching state (the loop's tracker); else built
    in one pass, over only the last two rounds for `tod` when both scored the whole pool.
    """
    ready = getattr(history, "ready_statistics", None)
    if window is None and ready is not None:
        found = ready(spec.keep, spec.ema_decay, spec.trend_window)
        if found is not None:
            return found
    first_round = 0
    covers = getattr(history, "covers_pool", None)
    if spec.score == "tod" and covers is not None and history.num_rounds >= 2:
        if covers(history.num_rounds - 1) and covers(history.num_rounds - 2):
            first_round = history.num_rounds - 2
    stats = accumulate_history(
        history, device, spec.keep, spec.ema_decay, spec.trend_window, window=window, first_round=first_round
    )
    return stats, None


def _scores(name: str, pool: PoolView, params: dict, window: int | None, **score_params) -> torch.Tensor:
    spec = check_history_params(name, params)
    try:
        stats, rows_N = history_statistics(pool.history, pool.device, spec, window)
    except HistoryInputError as error:
        raise StrategyInputError(f"{name}: 'history' {error}") from None
    scores = history_kernels.SCORES[name](stats, **score_params)
    return scores if rows_N is None else scores[rows_N]


_DEFAULTS: dict[str, dict[str, object]] = {}


def _history_strategy(name: str, paper: str, version: str = "1.0"):
    """register_strategy for a history strategy; records its defaults for `check_history_params`."""
    register = register_strategy(
        name=name, version=version, needs=("history",), batch_aware=False, paper=paper,
        check_params=lambda params, pool_size, key_prefix: check_history_params(name, params, key_prefix),
    )

    def decorator(fn):
        wrapped = register(fn)
        _DEFAULTS[name] = dict(wrapped.spec.defaults)
        return wrapped

    return decorator


# ---- the strategies ---------------------------------------------------------------------------


# 1.1: ties at the top-B boundary are broken at random among the tied samples only (selectors.topk)
@_history_strategy("tod", "Huang et al., ICCV 2021, Semi-Supervised Active Learning with Temporal Output Discrepancy", "1.1")
def tod(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of ½‖P_last − P_prev‖² between the two latest rounds that scored each sample."""
    return select_top(_scores("tod", pool, {}, None), query_size, generator)


@_history_strategy("tod_cumulative", "Huang et al., ICCV 2021 (TOD), averaged over all consecutive round pairs")
def tod_cumulative(pool: PoolView, query_size: int, *, generator: torch.Generator, window: int | None = None) -> Selection:
    """Top-B of the mean over consecutive observations of ½‖P_t − P_prev‖²."""
    params = {"window": window}
    return select_top(_scores("tod_cumulative", pool, params, window), query_size, generator)


# 1.1: as tod
@_history_strategy("flip_rate", "Benkert et al. 2023 (switch events); prediction-change active learning", "1.1")
def flip_rate(
    pool: PoolView, query_size: int, *, generator: torch.Generator, prior_a: float = 1.0, prior_b: float = 1.0
) -> Selection:
    """Top-B of (argmax changes + a) / (n − 1 + a + b) over each sample's observed rounds."""
    params = {"prior_a": prior_a, "prior_b": prior_b}
    scores_N = _scores("flip_rate", pool, params, None, prior_a=float(prior_a), prior_b=float(prior_b))
    return select_top(scores_N, query_size, generator)


@_history_strategy("temporal_variation_ratio", "Bengar et al. 2021 (variation ratio over past rounds' predictions)")
def temporal_variation_ratio(
    pool: PoolView, query_size: int, *, generator: torch.Generator, window: int | None = None
) -> Selection:
    """Top-B of 1 − (count of the modal predicted class over the observed rounds) / n."""
    return select_top(_scores("temporal_variation_ratio", pool, {"window": window}, window), query_size, generator)


@_history_strategy("temporal_bald", "Jung et al., ICLR 2023 (past models as a snapshot-ensemble committee); Houlsby et al. 2011")
def temporal_bald(pool: PoolView, query_size: int, *, generator: torch.Generator, window: int | None = None) -> Selection:
    """Top-B of H(mean_t P_t) − mean_t H(P_t) over the observed rounds."""
    return select_top(_scores("temporal_bald", pool, {"window": window}, window), query_size, generator)


@_history_strategy("teacher_student_kl", "Baik et al., ECCV 2022, ST-CoNAL: Student-Teacher Consistency-based Active Learning")
def teacher_student_kl(
    pool: PoolView, query_size: int, *, generator: torch.Generator, tau: float = 0.5, window: int | None = None
) -> Selection:
    """Top-B of mean_t KL(q ‖ P_t), q = normalise(p̄^{1/τ}) the sharpened mean of the observed rounds."""
    params = {"tau": tau, "window": window}
    return select_top(_scores("teacher_student_kl", pool, params, window, tau=float(tau)), query_size, generator)


@_history_strategy("cartography_variability", "Swayamdipta et al., EMNLP 2020, Dataset Cartography (pseudo-labels)")
def cartography_variability(
    pool: PoolView, query_size: int, *, generator: torch.Generator, window: int | None = None
) -> Selection:
    """Top-B of the population std over the observed rounds of P_t[ŷ], ŷ the latest argmax."""
    return select_top(_scores("cartography_variability", pool, {"window": window}, window), query_size, generator)


@_history_strategy("ema_uncertainty", "Yao et al., Looking back on the past: active learning with historical evaluation results, TKDE")
def ema_uncertainty(
    pool: PoolView, query_size: int, *, generator: torch.Generator, decay: float = DEFAULT_DECAY, lam: float = 1.0
) -> Selection:
    """Top-B of the bias-corrected EMA (``decay``) of H(P_t) plus ``lam`` · std_t H(P_t)."""
    params = {"decay": decay, "lam": lam}
    return select_top(_scores("ema_uncertainty", pool, params, None, lam=float(lam)), query_size, generator)


@_history_strategy("uncertainty_trend", "EMA of entropy plus its positive least-squares trend (Yao et al., TKDE; alsweep)")
def uncertainty_trend(
    pool: PoolView, query_size: int, *, generator: torch.Generator, decay: float = DEFAULT_DECAY, gamma: float = 1.0,
    window: int = DEFAULT_TREND_WINDOW,
) -> Selection:
    """Top-B of the bias-corrected EMA of H(P_t) plus ``gamma`` · max(0, slope of H(P_t) against t
    over the last ``window`` observations)."""
    params = {"decay": decay, "gamma": gamma, "window": window}
    return select_top(_scores("uncertainty_trend", pool, params, None, gamma=float(gamma)), query_size, generator)


HISTORY_STRATEGIES = tuple(_DEFAULTS)
