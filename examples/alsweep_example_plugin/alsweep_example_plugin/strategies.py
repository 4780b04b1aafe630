"""``power_margin``: margin scores, B picks drawn by power sampling instead of top-B.

Stochastic batch acquisition (Kirsch et al. 2023, "Stochastic Batch Acquisition: A
Simple Baseline for Deep Active Learning", TMLR): sampling B samples with
P(i) proportional to score_i^beta avoids the redundant top-B batches of a
greedy score. The score is 1 - (p_(1) - p_(2)), in [0, 1], high when the two
most likely classes are close.
"""

from __future__ import annotations

import torch

from kernels import uncertainty
from strategies import PoolView, Selection, StrategyInputError, register_strategy
from strategies.selectors import power_sampling


@register_strategy(
    name="power_margin",
    version="0.1",
    needs=("probs",),
    batch_aware=True,
    paper="Kirsch et al. 2023, Stochastic Batch Acquisition, arXiv:2106.12059",
)
def power_margin(pool: PoolView, query_size: int, *, generator: torch.Generator, beta: float = 1.0) -> Selection:
    """B samples drawn without replacement, P(i) proportional to (1 + margin_score_i)^beta."""
    # beta = 0 would make 0 * log(0) = nan for a sample the model is certain about
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise StrategyInputError(f"power_margin: 'beta' must be a number > 0; got {beta!r}")
    # kernels' margin score is -(p_(1) - p_(2)) in [-1, 0]; shift it into [0, 1] so powers are defined
    scores_N = 1.0 + uncertainty.margin(pool.probs_N_C)
    return Selection(power_sampling(scores_N, query_size, float(beta), generator), scores_N)
