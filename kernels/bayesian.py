"""Scores from K Monte-Carlo predictive samples ``mc_log_probs_N_K_C``.

The K samples are MC-dropout masks or ensemble members; inputs are
log-softmax outputs so that tiny probabilities keep their precision.
"""

from __future__ import annotations

import math

import torch

from kernels.chunking import DEFAULT_CHUNK_SIZE
from kernels.uncertainty import entropy_rows, rowwise


def _bald_rows(log_probs_n_K_C: torch.Tensor) -> torch.Tensor:
    num_samples = log_probs_n_K_C.shape[1]
    # log of the mean probability, computed in log space: log (1/K) sum_k exp(log p_k)
    log_mean_n_C = log_probs_n_K_C.logsumexp(dim=1) - math.log(num_samples)
    entropy_of_mean = entropy_rows(log_mean_n_C.exp())
    probs_n_K_C = log_probs_n_K_C.exp()
    # p log p with p = 0 (log p = -inf) must contribute 0, not NaN
    plogp = torch.where(probs_n_K_C > 0, probs_n_K_C * log_probs_n_K_C, torch.zeros_like(probs_n_K_C))
    mean_of_entropies = -plogp.sum(dim=2).mean(dim=1)
    # both terms are non-negative and I >= 0 in exact arithmetic; float32 rounding can dip below
    return (entropy_of_mean - mean_of_entropies).clamp(min=0.0)


def bald(mc_log_probs_N_K_C: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Mutual information I(y; w | x) = H(mean_k p_k) - mean_k H(p_k), in nats.

    Houlsby et al. 2011, arXiv:1112.5745; Gal, Islam & Ghahramani 2017, arXiv:1703.02910.

    Args:
        mc_log_probs_N_K_C: log-probabilities under K posterior samples.
    Returns:
        scores_N (float32), in [0, log C].
    """
    return rowwise(_bald_rows, mc_log_probs_N_K_C, chunk_size)
