"""Strategies that read the time series of all past INFER steps (``pool.history``).

Each makes one streaming pass over the recorded rounds (`accumulate_history`)
and scores from the per-sample state; see `kernels.history` for the fallback
given to samples observed fewer than twice.
"""

from __future__ import annotations

import torch

from kernels.chunking import DEFAULT_CHUNK_SIZE
from kernels.history import HistoryStatistics, flip_rate as flip_rate_scores, temporal_output_discrepancy
from strategies.errors import StrategyInputError
from strategies.pool_view import HistoryView, PoolView, Selection
from strategies.registry import register_strategy
from strategies.selectors import select_top


def accumulate_history(
    history: HistoryView, device: torch.device | str, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> HistoryStatistics:
    """One pass over all recorded rounds into O(N*C) streaming state on ``device``."""
    stats = HistoryStatistics.empty(history.pool_size, history.num_classes, device)
    for chunk in history.iter_chunks(chunk_size):
        stats.update(chunk.start, chunk.probs_n_C, chunk.observed_n)
    return stats


@register_strategy(
    name="tod",
    version="1.0",
    needs=("history",),
    batch_aware=False,
    paper="Huang et al., ICCV 2021, Semi-Supervised Active Learning with Temporal Output Discrepancy",
)
def tod(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of ½‖P_last − P_prev‖² between the two latest rounds that scored each sample."""
    scores_N = temporal_output_discrepancy(accumulate_history(pool.history, pool.device))
    return select_top(scores_N, query_size, generator)


@register_strategy(
    name="flip_rate",
    version="1.0",
    needs=("history",),
    batch_aware=False,
    paper="Benkert et al. 2023 (switch events); prediction-change active learning",
)
def flip_rate(
    pool: PoolView, query_size: int, *, generator: torch.Generator, prior_a: float = 1.0, prior_b: float = 1.0
) -> Selection:
    """Top-B of (argmax changes + a) / (n − 1 + a + b) over each sample's observed rounds."""
    for key, value in (("prior_a", prior_a), ("prior_b", prior_b)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise StrategyInputError(f"flip_rate: '{key}' must be a number > 0 (Beta prior); got {value!r}")
    scores_N = flip_rate_scores(accumulate_history(pool.history, pool.device), float(prior_a), float(prior_b))
    return select_top(scores_N, query_size, generator)
