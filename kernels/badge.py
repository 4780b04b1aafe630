"""BADGE: k-means++ seeding on last-layer gradient embeddings, without materialising them.

Ash, Zhang, Krishnamurthy, Langford & Agarwal 2020, "Deep Batch Active Learning by
Diverse, Uncertain Gradient Lower Bounds", ICLR, arXiv:1906.03671.

The gradient embedding of pool sample i (cross-entropy w.r.t. the last linear layer,
at the hypothesised label ŷ_i = argmax p_i) is g_i = (p_i − e_ŷi) ⊗ h_i, of dimension
C·D. Writing a_i = p_i − e_ŷi,

    ⟨g_i, g_j⟩ = ⟨a_i, a_j⟩ · ⟨h_i, h_j⟩,   ||g_i||² = ||a_i||² · ||h_i||²,

so one pick costs one [N, C] and one [N, D] matrix-vector product instead of an
[N, C·D] one, and memory stays O(N·(C + D)). The sign of g does not matter for distances.
"""

from __future__ import annotations


import torch

from kernels.clustering import seed_by_squared_distance


def gradient_factors(probs_N_C: torch.Tensor) -> torch.Tensor:
    """a_N_C = p − onehot(argmax p), float32: the class factor of the gradient embedding."""
    a_N_C = probs_N_C.float().clone()
    a_N_C.scatter_add_(1, a_N_C.argmax(dim=1, keepdim=True), torch.full((a_N_C.shape[0], 1), -1.0, device=a_N_C.device))
    return a_N_C


def badge_seeding(
    probs_N_C: torch.Tensor, emb_N_D: torch.Tensor, num_picks: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means++ seeding on g_i = (p_i − e_ŷi) ⊗ h_i.

    As in the authors' code, the first pick is the largest gradient norm ||g_i||; each
    next pick is drawn with P(i) ∝ min_j ||g_i − g_j||² over the picks so far (one
    float64 uniform from ``generator`` per pick, inverted through the CDF). Identical
    embeddings have weight 0 and are never picked twice; if every remaining weight is
    0, the pick is uniform over the unpicked rows.

    Args:
        probs_N_C: class probabilities.
        emb_N_D: penultimate-layer embeddings h.
        num_picks: B.
    Returns:
        (picks_B int64 in pick order, sq_norm_N float32 = ||g_i||²).
    """
    num_rows = probs_N_C.shape[0]
    a_N_C = gradient_factors(probs_N_C)
    h_N_D = emb_N_D.float()
    sq_norm_N = a_N_C.square().sum(dim=1) * h_N_D.square().sum(dim=1)
    # class- and feature-major copies: each pick's products are then gemvs over contiguous
    # columns, 3-4x faster on a CPU than over [N, D] rows (see kernels.kcenter._PickUpdater)
    h_D_N = h_N_D.T.contiguous()
    a_C_N = a_N_C.T.contiguous()
    # two reused [N] buffers: no per-pick allocation of pool-sized temporaries
    h_dots_N = torch.empty(num_rows, dtype=torch.float32, device=h_N_D.device)
    a_dots_N = torch.empty(num_rows, dtype=torch.float32, device=h_N_D.device)

    def sq_distances_to(pick: int) -> torch.Tensor:
        torch.mv(h_D_N.T, h_D_N[:, pick].contiguous(), out=h_dots_N)
        torch.mv(a_C_N.T, a_C_N[:, pick].contiguous(), out=a_dots_N)
        # ||g_i − g_c||² = ||g_i||² + ||g_c||² − 2 ⟨a_i, a_c⟩⟨h_i, h_c⟩
        return h_dots_N.mul_(a_dots_N).mul_(-2.0).add_(sq_norm_N).add_(sq_norm_N[pick]).clamp_(min=0.0)

    picks_B = seed_by_squared_distance(
        num_rows, min(num_picks, num_rows), lambda uniform: int(sq_norm_N.argmax()), sq_distances_to, generator,
        h_N_D.device,
    )
    return picks_B.to(probs_N_C.device), sq_norm_N
