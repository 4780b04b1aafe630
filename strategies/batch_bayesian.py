"""Batch Bayesian strategies over K Monte-Carlo predictive samples ``mc_log_probs_N_K_C``.

`batchbald` chooses the B picks jointly; `epig` scores each sample by the information
it carries about predictions on a random target sample of the pool.
"""

from __future__ import annotations

import torch

from kernels import batchbald as batchbald_kernels
from kernels import bayesian as bayesian_kernels
from kernels import epig as epig_kernels
from strategies.params import require_int
from strategies.pool_view import PoolView, Selection
from strategies.registry import register_strategy
from strategies.selectors import select_top, topk, uniform_sampling

#: Target inputs x* drawn when ``target_size`` is not given (fewer if the pool is smaller).
DEFAULT_TARGET_SIZE = 100


def _check_batchbald(params, pool_size, key_prefix):
    require_int("batchbald", key_prefix + "num_samples", params["num_samples"], 1)
    require_int(
        "batchbald", key_prefix + "max_exact_configurations", params["max_exact_configurations"], 1, optional=True
    )


def _check_epig(params, pool_size, key_prefix):
    # larger than the pool is an error rather than clamped: more distinct targets than exist were asked for
    require_int(
        "epig", key_prefix + "target_size", params["target_size"], 1, maximum=pool_size, optional=True,
        maximum_means=" (N: the smallest pool it is called on)" if pool_size is not None else "",
    )


@register_strategy(
    name="batchbald",
    version="1.0",
    needs=("mc_log_probs",),
    batch_aware=True,
    paper="Kirsch, van Amersfoort & Gal 2019, arXiv:1906.08158 (BatchBALD); checked against BlackHC/batchbald_redux",
    check_params=_check_batchbald,
)
def batchbald(
    pool: PoolView,
    query_size: int,
    *,
    generator: torch.Generator,
    num_samples: int = 10_000,
    max_exact_configurations: int | None = None,
) -> Selection:
    """Greedy batch maximising the joint mutual information I(y_1..y_B; w).

    The joint entropy of the batch is exact while the batch's C^n configurations number
    at most ``max_exact_configurations`` (default: ``num_samples``, batchbald_redux's
    rule), and estimated from ``num_samples`` (M) configurations sampled with
    ``generator`` beyond; see `kernels.batchbald.batchbald` for where this differs
    from batchbald_redux. ``indices_B`` are in greedy order; ``scores_N`` are the first
    pick's scores, i.e. BALD. With B >= N the whole pool is returned, ordered by BALD,
    without running the greedy search (its order would cost N picks and change nothing
    that is labelled).
    """
    mc_log_probs_N_K_C = pool.mc_log_probs_N_K_C
    if query_size >= pool.size:
        bald_N = bayesian_kernels.bald(mc_log_probs_N_K_C)
        return Selection(topk(bald_N, pool.size, generator), bald_N)
    indices_B, _, bald_N = batchbald_kernels.batchbald(
        mc_log_probs_N_K_C,
        query_size,
        num_samples=num_samples,
        generator=generator,
        max_exact_configurations=max_exact_configurations,
    )
    return Selection(indices_B, bald_N)


@register_strategy(
    name="epig",
    version="1.0",
    needs=("mc_log_probs",),
    batch_aware=False,
    paper="Bickford Smith, Kirsch, Farquhar, Gal, Foster & Rainforth 2023, arXiv:2304.08151 (EPIG)",
    check_params=_check_epig,
)
def epig(pool: PoolView, query_size: int, *, generator: torch.Generator, target_size: int | None = None) -> Selection:
    """Top-B of the expected predictive information gain about a random target sample of the pool.

    The targets x* are ``target_size`` pool samples drawn uniformly without replacement
    with ``generator`` (null: min(100, N)). A ``target_size`` larger than the pool is an
    error rather than clamped: the caller asked for more distinct targets than exist.
    """
    num_targets = min(DEFAULT_TARGET_SIZE, pool.size) if target_size is None else target_size
    mc_log_probs_N_K_C = pool.mc_log_probs_N_K_C
    targets = uniform_sampling(pool.size, num_targets, generator, mc_log_probs_N_K_C.device)
    scores_N = epig_kernels.epig(mc_log_probs_N_K_C, mc_log_probs_N_K_C[targets])
    return select_top(scores_N, query_size, generator)
