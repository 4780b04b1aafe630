"""Scores from K Monte-Carlo predictive samples ``mc_log_probs_N_K_C``.

The K samples are MC-dropout masks or ensemble members; inputs are
log-softmax outputs so that tiny probabilities keep their precision.
"""

from __future__ import annotations

import torch

from kernels.uncertainty import entropy_rows, rowwise


#: log p is clamped here in p log p, so that p = 0 (log p = -inf) contributes 0 * finite = 0, not NaN.
_LOG_FLOOR = -1e4


def _bald_rows(log_probs_n_K_C: torch.Tensor) -> torch.Tensor:
    probs_n_K_C = log_probs_n_K_C.exp()
    entropy_of_mean = entropy_rows(probs_n_K_C.mean(dim=1))
    mean_of_entropies = -(probs_n_K_C * log_probs_n_K_C.clamp(min=_LOG_FLOOR)).sum(dim=2).mean(dim=1)
    # both terms are non-negative and I >= 0 in exact arithmetic; float32 rounding can dip below
    return (entropy_of_mean - mean_of_entropies).clamp(min=0.0)


def bald(mc_log_probs_N_K_C: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Mutual information I(y; w | x) = H(mean_k p_k) - mean_k H(p_k), in nats.

    Houlsby et al. 2011, arXiv:1112.5745; Gal, Islam & Ghahramani 2017, arXiv:1703.02910.

    Args:
        mc_log_probs_N_K_C: log-probabilities under K posterior samples.
    Returns:
        scores_N (float32), in [0, log C].
    """
    return rowwise(_bald_rows, mc_log_probs_N_K_C, chunk_size)
