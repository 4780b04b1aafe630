"""Bayesian strategies over K Monte-Carlo predictive samples ``mc_log_probs_N_K_C``.

Top-B strategies (`bald`, `mean_std`, `variation_ratio`) and the stochastic batch
acquisition of Kirsch et al. 2023 (`power_bald`, `power_entropy`, `softmax_bald`),
which sample B without replacement instead of taking the top-B, so a batch does not
fill up with near-duplicates of one uncertain region.
"""

from __future__ import annotations


import torch

from kernels import bayesian as kernels
from strategies.params import require_number
from strategies.pool_view import PoolView, Selection
from strategies.registry import register_strategy
from strategies.selectors import power_sampling, select_top, softmax_sampling

_GAL_2017 = "Gal, Islam & Ghahramani 2017, Deep Bayesian Active Learning with Image Data, arXiv:1703.02910"
_KIRSCH_2023 = "Kirsch et al. 2023, Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning, TMLR, arXiv:2106.12059"


def _check_beta(strategy: str):
    def check(params, pool_size, key_prefix):
        require_number(
            strategy, key_prefix + "beta", params["beta"], "a finite number >= 0 (0 = uniform sampling)", lambda v: v >= 0
        )

    return check


@register_strategy(
    name="bald",
    version="2.0",
    needs=("mc_log_probs",),
    batch_aware=False,
    paper="Houlsby et al. 2011, arXiv:1112.5745; Gal et al. 2017, arXiv:1703.02910",
)
def bald(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of the mutual information between prediction and weights, H(mean_k p_k) − mean_k H(p_k).

    Version 2.0: computed as mean_k KL(p_k ‖ p̄), float64-exact top-B at low MI; boundary ties drawn locally.
    """
    scores_N = kernels.bald(pool.mc_log_probs_N_K_C)
    return select_top(scores_N, query_size, generator)


@register_strategy(
    name="mean_std",
    version="1.0",
    needs=("mc_log_probs",),
    batch_aware=False,
    paper="Kampffmeyer, Salberg & Jenssen 2016, CVPR Workshops (EarthVision); " + _GAL_2017,
)
def mean_std(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of mean_c std_k p_kc (population std over the K samples)."""
    return select_top(kernels.mean_std(pool.mc_log_probs_N_K_C), query_size, generator)


@register_strategy(
    name="variation_ratio",
    version="1.0",
    needs=("mc_log_probs",),
    batch_aware=False,
    paper="Freeman 1965, Elementary Applied Statistics; " + _GAL_2017,
)
def variation_ratio(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Top-B of 1 − (argmax votes for the modal class) / K; ties (frequent) in random order."""
    return select_top(kernels.variation_ratio(pool.mc_log_probs_N_K_C), query_size, generator)


@register_strategy(
    name="power_bald", version="1.0", needs=("mc_log_probs",), batch_aware=True, paper=_KIRSCH_2023,
    check_params=_check_beta("power_bald"),
)
def power_bald(pool: PoolView, query_size: int, *, generator: torch.Generator, beta: float = 1.0) -> Selection:
    """B samples without replacement, P(i) ∝ BALD_i^β (β = 0: uniform; β → ∞: top-B)."""
    scores_N = kernels.bald(pool.mc_log_probs_N_K_C)
    return Selection(power_sampling(scores_N, query_size, beta, generator), scores_N)


@register_strategy(
    name="power_entropy", version="1.0", needs=("mc_log_probs",), batch_aware=True, paper=_KIRSCH_2023,
    check_params=_check_beta("power_entropy"),
)
def power_entropy(pool: PoolView, query_size: int, *, generator: torch.Generator, beta: float = 1.0) -> Selection:
    """B samples without replacement, P(i) ∝ H(mean_k p_k)_i^β (β = 0: uniform)."""
    scores_N = kernels.predictive_entropy(pool.mc_log_probs_N_K_C)
    return Selection(power_sampling(scores_N, query_size, beta, generator), scores_N)


@register_strategy(
    name="softmax_bald", version="1.0", needs=("mc_log_probs",), batch_aware=True, paper=_KIRSCH_2023,
    check_params=_check_beta("softmax_bald"),
)
def softmax_bald(pool: PoolView, query_size: int, *, generator: torch.Generator, beta: float = 1.0) -> Selection:
    """B samples without replacement, P(i) ∝ exp(β · BALD_i) (β = 0: uniform)."""
    scores_N = kernels.bald(pool.mc_log_probs_N_K_C)
    return Selection(softmax_sampling(scores_N, query_size, beta, generator), scores_N)
