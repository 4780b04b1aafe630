"""EPIG: expected predictive information gain about predictions on a target set.

Bickford Smith, Kirsch, Farquhar, Gal, Foster & Rainforth 2023, "Prediction-oriented
Bayesian active learning", AISTATS, arXiv:2304.08151; the "EPIG from samples"
estimator (their eq. 9), with x* drawn from the target inputs.

Besides the project's shape letters, ``Nt`` is the number of target inputs x*
(a sample of the pool, drawn by the caller).

For a pool sample x and a target x*, with p_k the K posterior samples' predictions,

    p(y, y*) = mean_k p_k(y) p_k(y*),
    I(y; y* | x, x*) = H(y) + H(y*) - H(y, y*),

which is the paper's sum_{y,y*} p(y, y*) log[p(y, y*) / (p(y) p(y*))] written so that
the [C, C] joint of every (x, x*) pair needs only p log p, one pass: the joint
of a block of pool rows with a block of targets is the single matmul
[n*C, K] x [K, t*C]. EPIG(x) = mean over x* of that information, in nats.
"""

from __future__ import annotations

import torch

from kernels.batchbald import plogp_into
from kernels.chunking import chunk_slices

#: Elements per [n*C, t*C] block of joint probabilities; the same work per element as the
#: batchbald blocks (a K-deep matmul, then p log p), so the same sizes (see kernels/batchbald.py).
BLOCK_ELEMENTS = {"cpu": 2**20, "cuda": 2**26}


def _marginal_entropies(mc_log_probs_N_K_C: torch.Tensor, rows_per_block: int) -> torch.Tensor:
    """H(mean_k p_k) per row, chunked: [N] float32."""
    entropies_N = torch.empty(mc_log_probs_N_K_C.shape[0], device=mc_log_probs_N_K_C.device)
    for rows in chunk_slices(mc_log_probs_N_K_C.shape[0], rows_per_block):
        mean_n_C = mc_log_probs_N_K_C[rows].float().exp().mean(dim=1)
        entropies_N[rows] = torch.special.entr(mean_n_C).sum(dim=1)
    return entropies_N


def epig(
    mc_log_probs_N_K_C: torch.Tensor,
    target_mc_log_probs_Nt_K_C: torch.Tensor,
    block_elements: int | None = None,
) -> torch.Tensor:
    """EPIG(x) = mean_{x*} I(y; y* | x, x*) for every pool sample: scores_N (float32, nats).

    Args:
        mc_log_probs_N_K_C: the pool's log-probabilities under K posterior samples.
        target_mc_log_probs_Nt_K_C: the target inputs' log-probabilities under the same K samples.
        block_elements: elements per [n*C, t*C] joint block (default: per device).
    Returns:
        scores_N in [0, log C], clamped at 0 against float32 rounding.
    """
    pool_size, num_samples_K, num_classes = mc_log_probs_N_K_C.shape
    num_targets = target_mc_log_probs_Nt_K_C.shape[0]
    if target_mc_log_probs_Nt_K_C.shape[1:] != mc_log_probs_N_K_C.shape[1:]:
        raise ValueError(
            f"target_mc_log_probs_Nt_K_C must have shape (Nt, K={num_samples_K}, C={num_classes}); "
            f"got {tuple(target_mc_log_probs_Nt_K_C.shape)}"
        )
    device = mc_log_probs_N_K_C.device
    if pool_size == 0 or num_targets == 0:
        return torch.zeros(pool_size, device=device)
    budget = block_elements or BLOCK_ELEMENTS.get(device.type, BLOCK_ELEMENTS["cuda"])
    targets_per_block = max(1, min(num_targets, budget // (num_classes * num_classes)))
    pool_rows_per_block = max(1, min(pool_size, budget // (num_classes * targets_per_block * num_classes)))

    pool_entropies_N = _marginal_entropies(mc_log_probs_N_K_C, pool_rows_per_block)
    mean_target_entropy = _marginal_entropies(target_mc_log_probs_Nt_K_C, pool_rows_per_block).mean()
    # the targets' [K, t*C] blocks are reused by every pool block, so they are built once
    target_blocks = [
        target_mc_log_probs_Nt_K_C[targets].float().exp().permute(1, 0, 2).reshape(num_samples_K, -1)
        for targets in chunk_slices(num_targets, targets_per_block)
    ]
    block_size = pool_rows_per_block * num_classes * targets_per_block * num_classes
    joint_buffer = torch.empty(block_size, device=device)
    log_buffer = torch.empty(block_size, device=device)
    joint_negentropy_sums_N = torch.zeros(pool_size, device=device)
    for rows in chunk_slices(pool_size, pool_rows_per_block):
        # [n, K, C] -> [n*C, K], with the 1/K of the mean over samples folded in
        pool_X_K = (mc_log_probs_N_K_C[rows].float().exp() / num_samples_K).transpose(1, 2).reshape(-1, num_samples_K)
        for target_K_Y in target_blocks:
            used = pool_X_K.shape[0] * target_K_Y.shape[1]
            joint_X_Y = torch.mm(pool_X_K, target_K_Y, out=joint_buffer[:used].view(pool_X_K.shape[0], -1))
            plogp_X_Y = plogp_into(joint_X_Y, log_buffer[:used].view_as(joint_X_Y))
            joint_negentropy_sums_N[rows] += plogp_X_Y.sum(dim=1).view(-1, num_classes).sum(dim=1)
    scores_N = pool_entropies_N + mean_target_entropy + joint_negentropy_sums_N / num_targets
    return scores_N.clamp_(min=0.0)
