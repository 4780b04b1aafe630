"""Batch Bayesian kernels over MC samples mc_log_probs_N_K_C: batchbald, epig.

The batchbald floors count, per greedy pick, the [M, K] x [K, N*C] matmul (2 N M K C
FLOPs) and the N M C logarithms of p log p, with M = C^(picks so far) while exact and
the sampled M beyond: the work the algorithm cannot skip.
"""

from __future__ import annotations

import torch

from benchmarks.harness import Case
from kernels import batchbald, epig
from tests.kernels import references


def configurations_per_pick(picks: int, classes: int, samples_K: int, num_samples: int) -> list[int]:
    """M at each greedy pick: C^n while C^n <= num_samples (exact), then K * max(1, num_samples // K)."""
    sampled = samples_K * max(1, num_samples // samples_K)
    return [classes**n if classes**n <= num_samples else sampled for n in range(picks)]


def batchbald_case(pool: int, picks: int, num_samples: int, classes: int, samples_K: int, target_s: float | None,
                   device: torch.device, seed: int, repeats: int | None = 1) -> Case:
    generator = torch.Generator().manual_seed(seed)
    mc_log_probs = torch.log_softmax(2 * torch.randn(pool, samples_K, classes, generator=generator), dim=2).to(device)
    picks = min(picks, pool)
    per_pick = configurations_per_pick(picks, classes, samples_K, num_samples)
    return Case(
        name="batchbald kernel", size=f"N={pool}, B={picks}, M={num_samples}, K={samples_K}, C={classes}",
        run=lambda: batchbald.batchbald(
            mc_log_probs, picks, num_samples=num_samples, generator=torch.Generator(device=device).manual_seed(0)
        )[0],
        flops=sum(2.0 * pool * m * samples_K * classes for m in per_pick),
        logs=sum(float(pool) * m * classes for m in per_pick),
        target_s=target_s, repeats=repeats,
        notes=f"{sum(m != classes**n for n, m in enumerate(per_pick))} of {picks} picks on sampled configurations",
    )


def cases(scale: float, device: torch.device) -> list[Case]:
    samples_K, classes = 20, 10
    small, large = max(int(1_000 * scale), 40), max(int(5_000 * scale), 40)
    num_samples = max(int(10_000 * scale), samples_K)
    rows = [
        batchbald_case(small, 10, num_samples, classes, samples_K, 1.0, device, seed=0),
        batchbald_case(large, 50, num_samples, classes, samples_K, 15.0, device, seed=1),
    ]

    # exact regime (C^3 = 1000 configurations at the last pick): picks must equal the float64 greedy
    exact_pool, exact_picks = max(int(1_000 * scale), 40), 4
    generator = torch.Generator().manual_seed(2)
    exact_log_probs = torch.log_softmax(2 * torch.randn(exact_pool, samples_K, classes, generator=generator), dim=2)
    exact_log_probs = exact_log_probs.to(device)
    per_pick = configurations_per_pick(exact_picks, classes, samples_K, 10_000)
    rows.append(Case(
        name="batchbald kernel, exact regime", size=f"N={exact_pool}, B={exact_picks}, K={samples_K}, C={classes}",
        run=lambda: batchbald.batchbald(
            exact_log_probs, exact_picks, num_samples=10_000, generator=torch.Generator(device=device).manual_seed(0)
        )[0].tolist(),
        reference=lambda: _exact_greedy_float64(exact_log_probs.cpu(), exact_picks),
        disagreement=lambda picks, expected: float(sum(a != b for a, b in zip(picks, expected))),
        flops=sum(2.0 * exact_pool * m * samples_K * classes for m in per_pick),
        logs=sum(float(exact_pool) * m * classes for m in per_pick),
        repeats=3, notes="disagreement = picks that differ from float64",
    ))

    pool, targets = max(int(20_000 * scale), 64), max(int(100 * scale), 8)
    generator = torch.Generator().manual_seed(3)
    pool_log_probs = torch.log_softmax(2 * torch.randn(pool, samples_K, classes, generator=generator), dim=2).to(device)
    target_log_probs = pool_log_probs[torch.randperm(pool, generator=generator)[:targets].to(device)]
    rows.append(Case(
        name="epig kernel", size=f"N={pool}, Nt={targets}, K={samples_K}, C={classes}",
        run=lambda: epig.epig(pool_log_probs, target_log_probs),
        reference=lambda: torch.cat([
            references.epig(block, target_log_probs.cpu()) for block in pool_log_probs.cpu().split(2_000)
        ]).clamp(min=0),
        flops=2.0 * pool * classes * targets * classes * samples_K, logs=float(pool) * classes * targets * classes,
        repeats=3,
    ))
    return rows


def _exact_greedy_float64(mc_log_probs_N_K_C: torch.Tensor, num_picks: int) -> list[int]:
    """Plain torch, float64: exact joint probabilities, every candidate scored by one einsum per pick."""
    p = mc_log_probs_N_K_C.double().exp()
    conditional_N = references.conditional_entropies(mc_log_probs_N_K_C)
    picks: list[int] = []
    joint_M_K = torch.ones(1, p.shape[1], dtype=torch.float64)
    for _ in range(num_picks):
        joint_N_M_C = torch.einsum("mk,nkc->nmc", joint_M_K, p) / p.shape[1]
        scores = torch.special.entr(joint_N_M_C).sum(dim=(1, 2)) - conditional_N - conditional_N[picks].sum()
        scores[picks] = -torch.inf
        picks.append(int(scores.argmax()))
        joint_M_K = (joint_M_K[:, None, :] * p[picks[-1]].t()[None]).reshape(-1, p.shape[1])
    return picks
