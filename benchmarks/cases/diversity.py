"""Diversity kernels over embeddings emb_N_D (k-center, ...)."""

from __future__ import annotations

import torch

from benchmarks.harness import Case
from kernels import kcenter
from tests.kernels import references


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    # the float64 reference is O(N*B) Python-free but slow: keep its size moderate
    pool, labelled, picks, dim = max(int(20_000 * scale), 64), max(int(1_000 * scale), 4), max(int(100 * scale), 4), 64
    emb = torch.randn(pool, dim, generator=generator).to(device)
    labelled_emb = torch.randn(labelled, dim, generator=generator).to(device)
    return [
        Case(
            name="k-center greedy", size=f"N={pool}, L={labelled}, D={dim}, B={picks}",
            run=lambda: kcenter.greedy_k_center(emb, labelled_emb, picks)[0].tolist(),
            reference=lambda: references.k_center(emb.cpu(), labelled_emb.cpu(), picks),
            flops=2.0 * pool * dim * (labelled + picks), bytes_read=4.0 * pool * dim * picks,
        ),
    ]
