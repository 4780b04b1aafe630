"""Uncertainty sampling from the deterministic model's probabilities ``probs_N_C``.

Top-B of a per-sample score; Settles 2009, "Active Learning Literature Survey"
(Computer Sciences TR 1648, University of Wisconsin-Madison), section 3.1.
"""

from __future__ import annotations

import torch

from kernels import uncertainty as kernels
from strategies.pool_view import PoolView, Selection
from strategies.registry import register_strategy
from strategies.selectors import select_top

_SETTLES = "Settles 2009, Active Learning Literature Survey, TR 1648"
# version 1.1: the same top-B set, but ties are now drawn among the samples tied at the
# top-B boundary only (1.0 shuffled the whole pool), so tied picks differ for a seed


@register_strategy(name="least_confidence", version="1.1", needs=("probs",), paper=_SETTLES)
def least_confidence(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of 1 − max_c p_c."""
    return select_top(kernels.least_confidence(pool.probs_N_C), query_size, generator)


@register_strategy(name="margin", version="1.1", needs=("probs",), paper=_SETTLES)
def margin(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of −(p_(1) − p_(2)): the smallest gaps between the two most likely classes."""
    return select_top(kernels.margin(pool.probs_N_C), query_size, generator)


@register_strategy(name="entropy", version="1.1", needs=("probs",), paper=_SETTLES)
def entropy(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of the predictive entropy H(p)."""
    return select_top(kernels.entropy(pool.probs_N_C), query_size, generator)


@register_strategy(name="ratio", version="1.1", needs=("probs",), paper=_SETTLES)
def ratio(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of p_(2) / p_(1) (ratio of confidences)."""
    return select_top(kernels.ratio(pool.probs_N_C), query_size, generator)
