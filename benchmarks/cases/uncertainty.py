"""Uncertainty scores over probs_N_C: the kernels and the public strategy calls."""

from __future__ import annotations

import torch

from benchmarks.harness import Case
from kernels import uncertainty
from tests.kernels import references


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    pool, classes = max(int(1_000_000 * scale), 64), 10
    probs = torch.softmax(2 * torch.randn(pool, classes, generator=generator), dim=1).to(device)
    size = f"N={pool}, C={classes}"
    result = []
    for name in ("entropy", "least_confidence", "margin", "ratio"):
        kernel = getattr(uncertainty, name)
        result.append(Case(
            name=f"{name} kernel", size=size, run=lambda kernel=kernel: kernel(probs),
            reference=lambda name=name: references.UNCERTAINTY[name](probs),
            bytes_read=probs.numel() * probs.element_size(),
            logs=probs.numel() if name == "entropy" else 0,
        ))
    return result
