"""Scores over MC samples mc_log_probs_N_K_C."""

from __future__ import annotations

import torch

from benchmarks.harness import Case
from kernels import bayesian
from tests.kernels import references


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    pool, samples, classes = max(int(100_000 * scale), 64), 20, 10
    mc_log_probs = torch.log_softmax(2 * torch.randn(pool, samples, classes, generator=generator), dim=2).to(device)
    return [
        Case(
            name="bald kernel", size=f"N={pool}, K={samples}, C={classes}",
            run=lambda: bayesian.bald(mc_log_probs), reference=lambda: references.bald(mc_log_probs),
            bytes_read=mc_log_probs.numel() * 4, logs=mc_log_probs.numel(),
        ),
    ]
