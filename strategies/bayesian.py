"""Bayesian strategies over K Monte-Carlo predictive samples ``mc_log_probs_N_K_C``."""

from __future__ import annotations

import torch

from kernels import bayesian as kernels
from strategies.pool_view import PoolView, Selection
from strategies.registry import register_strategy
from strategies.selectors import select_top


@register_strategy(
    name="bald",
    version="2.0",
    needs=("mc_log_probs",),
    batch_aware=False,
    paper="Houlsby et al. 2011, arXiv:1112.5745; Gal et al. 2017, arXiv:1703.02910",
)
def bald(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of the mutual information between prediction and weights, H(mean_k p_k) − mean_k H(p_k)."""
    scores_N = kernels.bald(pool.mc_log_probs_N_K_C)
    return select_top(scores_N, query_size, generator)
