"""Scores from K Monte-Carlo predictive samples ``mc_log_probs_N_K_C``.

The K samples are MC-dropout masks or ensemble members; inputs are
log-softmax outputs so that tiny probabilities keep their precision.
"""

from __future__ import annotations

import math

import torch

from kernels import backend as kernel_backend
from kernels import cupy_kernels
from kernels.uncertainty import entropy_rows, rowwise

#: log p is clamped here, so that p = 0 (log p = -inf) gives finite differences and 0 * finite = 0, not NaN.
_LOG_FLOOR = -1e4


def _fused(mc_log_probs_N_K_C: torch.Tensor, kernel: str, backend: str | None) -> bool:
    """Whether this call runs the fused CuPy kernel (see `kernels.backend`): float32, C <= its limit."""
    shape = mc_log_probs_N_K_C.shape
    fusable = (
        mc_log_probs_N_K_C.dtype == torch.float32 and len(shape) == 3 and shape[2] <= cupy_kernels.MAX_FUSED_CLASSES
    )
    return kernel_backend.resolve(kernel, mc_log_probs_N_K_C, backend, fusable=fusable) == "cupy"


def _bald_rows(log_probs_n_K_C: torch.Tensor) -> torch.Tensor:
    # I = H(p̄) − mean_k H(p_k) subtracts two numbers close to log C, and a confident network's
    # I ~ 1e-6 drowns in float32 rounding of ~1e-7 * log C. The same quantity written as
    # mean_k KL(p_k ‖ p̄) = Σ_c p̄_c · mean_k g(u_kc), with u = log p_kc − log p̄_c and
    # g(u) = u·e^u − (e^u − 1) ≥ 0, sums only non-negative terms; g(u) ≈ u²/2 comes out of terms of
    # size u (not 1), so its relative error is ~eps/|u| (1e-4 at I ~ 1e-6) instead of eps·log C / I.
    # The −(e^u − 1) terms sum to Σ p̄ − mean_k Σ p_k = 0 exactly, so this is the KL form for any input.
    log_probs = log_probs_n_K_C.clamp(min=_LOG_FLOOR)
    num_samples = log_probs.shape[1]
    mean_n_C = log_probs.exp().mean(dim=1)
    u = log_probs.sub_(mean_n_C.log().unsqueeze(1))
    # u <= log K in exact arithmetic; the clamp only guards p̄ underflowing to 0 (log p̄ = -inf)
    u.clamp_(max=math.log(num_samples))
    expm1_u = torch.expm1(u)
    # g = u·e^u − expm1(u) = u·expm1(u) + u − expm1(u): e^u − 1 is never formed from e^u
    g = u.addcmul_(u, expm1_u).sub_(expm1_u)
    information_n = (mean_n_C * g.mean(dim=1)).sum(dim=1)
    return information_n.clamp_(min=0.0)


def bald(mc_log_probs_N_K_C: torch.Tensor, chunk_size: int | None = None, backend: str | None = None) -> torch.Tensor:
    """Mutual information I(y; w | x) = H(mean_k p_k) - mean_k H(p_k), in nats.

    Computed as mean_k KL(p_k ‖ mean_k p_k), which is the same number without the
    float32 cancellation of the difference of entropies (top-B matches float64 at I ~ 1e-6).
    Houlsby et al. 2011, arXiv:1112.5745; Gal, Islam & Ghahramani 2017, arXiv:1703.02910.

    Args:
        mc_log_probs_N_K_C: log-probabilities under K posterior samples.
    Returns:
        scores_N (float32), in [0, min(log C, log K)].
    """
    if _fused(mc_log_probs_N_K_C, "bald", backend):
        return cupy_kernels.mc_scores(mc_log_probs_N_K_C)[0]
    return rowwise(_bald_rows, mc_log_probs_N_K_C, chunk_size)


def _predictive_entropy_rows(log_probs_n_K_C: torch.Tensor) -> torch.Tensor:
    return entropy_rows(log_probs_n_K_C.exp().mean(dim=1))


def predictive_entropy(mc_log_probs_N_K_C: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """H(mean_k p_k), the entropy of the MC-averaged prediction, in nats; in [0, log C].

    The score that PowerEntropy samples from (Kirsch et al. 2023, arXiv:2106.12059).
    """
    return rowwise(_predictive_entropy_rows, mc_log_probs_N_K_C, chunk_size)


def _mean_std_rows(log_probs_n_K_C: torch.Tensor) -> torch.Tensor:
    probs = log_probs_n_K_C.exp()
    # two-pass (mean first) variance: E[p²] − E[p]² would cancel for nearly agreeing samples
    deviation = probs.sub_(probs.mean(dim=1, keepdim=True))
    return deviation.square_().mean(dim=1).sqrt_().mean(dim=1)


def mean_std(mc_log_probs_N_K_C: torch.Tensor, chunk_size: int | None = None, backend: str | None = None) -> torch.Tensor:
    """mean_c std_k p_kc: the class-averaged standard deviation of the K predictions.

    Population standard deviation (divide by K), as in Kampffmeyer et al. 2016,
    "Semantic Segmentation of Small Objects and Modeling of Uncertainty in Urban
    Remote Sensing Images Using Deep Convolutional Neural Networks", CVPR Workshops,
    and Gal et al. 2017's "mean STD" baseline (arXiv:1703.02910).

    Returns:
        scores_N (float32), in [0, 0.5].
    """
    if _fused(mc_log_probs_N_K_C, "mean_std", backend):
        return cupy_kernels.mc_scores(mc_log_probs_N_K_C)[1]
    return rowwise(_mean_std_rows, mc_log_probs_N_K_C, chunk_size)


def _variation_ratio_rows(log_probs_n_K_C: torch.Tensor) -> torch.Tensor:
    num_samples, num_classes = log_probs_n_K_C.shape[1], log_probs_n_K_C.shape[2]
    votes_n_K = log_probs_n_K_C.argmax(dim=2)
    counts_n_C = torch.zeros(votes_n_K.shape[0], num_classes, dtype=torch.float32, device=votes_n_K.device)
    counts_n_C.scatter_add_(1, votes_n_K, torch.ones_like(votes_n_K, dtype=torch.float32))
    return 1.0 - counts_n_C.amax(dim=1) / num_samples


def variation_ratio(mc_log_probs_N_K_C: torch.Tensor, chunk_size: int | None = None, backend: str | None = None) -> torch.Tensor:
    """1 − (votes for the modal class) / K, where each of the K samples votes for its argmax.

    Freeman 1965, "Elementary Applied Statistics"; as an acquisition function over MC
    dropout samples in Gal, Islam & Ghahramani 2017, arXiv:1703.02910. A sample whose
    argmax ties between classes votes for the lowest class index (torch.argmax).

    Returns:
        scores_N (float32), in [0, 1 − 1/C]; multiples of 1/K, so scores tie often.
    """
    if _fused(mc_log_probs_N_K_C, "variation_ratio", backend):
        return cupy_kernels.mc_scores(mc_log_probs_N_K_C)[2]
    return rowwise(_variation_ratio_rows, mc_log_probs_N_K_C, chunk_size)
