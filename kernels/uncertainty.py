"""Uncertainty scores from class probabilities ``probs_N_C`` (higher = more uncertain).

Each kernel reads the pool in chunks of rows, computes in float32 whatever the
input dtype, and returns ``scores_N`` (float32) on the input's device.
References: Settles 2009, "Active Learning Literature Survey" (least
confidence, margin, entropy); ratio of confidences as in scikit-activeml.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from kernels import backend as kernel_backend
from kernels import cupy_kernels
from kernels.chunking import chunk_slices, rows_per_chunk

#: Probabilities are clamped here before taking logs, so p = 0 contributes 0 to H(p).
LOG_CLAMP = 1e-12


def _fused(probs_N_C: torch.Tensor, kernel: str, backend: str | None) -> bool:
    """Whether this call runs the fused CuPy kernel (see `kernels.backend`); it takes float32 rows."""
    fusable = probs_N_C.dtype == torch.float32 and probs_N_C.ndim == 2
    return kernel_backend.resolve(kernel, probs_N_C, backend, fusable=fusable) == "cupy"


def rowwise(
    score_rows: Callable[[torch.Tensor], torch.Tensor], values_N: torch.Tensor, chunk_size: int | None = None
) -> torch.Tensor:
    """Apply ``score_rows`` (a float32 [n, ...] -> [n] map) chunk by chunk along N.

    ``chunk_size`` is rows per chunk; None sizes chunks by the device's element budget.
    """
    scores_N = torch.empty(values_N.shape[0], dtype=torch.float32, device=values_N.device)
    for rows in chunk_slices(values_N.shape[0], rows_per_chunk(values_N, chunk_size)):
        scores_N[rows] = score_rows(values_N[rows].float())
    return scores_N


def entropy_rows(probs_n_C: torch.Tensor) -> torch.Tensor:
    """H(p) = -sum_c p_c log p_c over the last dimension."""
    return -(probs_n_C * probs_n_C.clamp(min=LOG_CLAMP).log()).sum(dim=-1)


def entropy(probs_N_C: torch.Tensor, chunk_size: int | None = None, backend: str | None = None) -> torch.Tensor:
    """Predictive entropy H(p), in nats; in [0, log C]."""
    if _fused(probs_N_C, "entropy", backend):
        return cupy_kernels.uncertainty_scores(probs_N_C, "entropy")
    return rowwise(entropy_rows, probs_N_C, chunk_size)


def normalised_entropy(probs_N_C: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """H(p) / log C, in [0, 1]."""
    return entropy(probs_N_C, chunk_size) / math.log(probs_N_C.shape[1])


def least_confidence(probs_N_C: torch.Tensor, chunk_size: int | None = None, backend: str | None = None) -> torch.Tensor:
    """1 - max_c p_c."""
    if _fused(probs_N_C, "least_confidence", backend):
        return cupy_kernels.uncertainty_scores(probs_N_C, "least_confidence")
    return rowwise(lambda p: 1.0 - p.amax(dim=1), probs_N_C, chunk_size)


def _top_two(probs_n_C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """p_(1), p_(2). Max, mask, max: 2.5x faster than torch.topk(k=2) on a CPU; a tie gives p_(2) = p_(1)."""
    first, first_index = probs_n_C.max(dim=1, keepdim=True)
    second = probs_n_C.scatter(1, first_index, float("-inf")).amax(dim=1)
    return first.squeeze(1), second


def margin(probs_N_C: torch.Tensor, chunk_size: int | None = None, backend: str | None = None) -> torch.Tensor:
    """-(p_(1) - p_(2)): the smaller the gap between the two top classes, the higher the score."""
    if _fused(probs_N_C, "margin", backend):
        return cupy_kernels.uncertainty_scores(probs_N_C, "margin")

    def negative_gap(p: torch.Tensor) -> torch.Tensor:
        first, second = _top_two(p)
        return second - first

    return rowwise(negative_gap, probs_N_C, chunk_size)


def ratio(probs_N_C: torch.Tensor, chunk_size: int | None = None, backend: str | None = None) -> torch.Tensor:
    """p_(2) / p_(1), in [0, 1]."""
    if _fused(probs_N_C, "ratio", backend):
        return cupy_kernels.uncertainty_scores(probs_N_C, "ratio")

    def top_two_ratio(p: torch.Tensor) -> torch.Tensor:
        first, second = _top_two(p)
        return second / first.clamp(min=LOG_CLAMP)

    return rowwise(top_two_ratio, probs_N_C, chunk_size)
