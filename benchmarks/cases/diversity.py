"""Diversity kernels over embeddings emb_N_D (k-center, ...)."""

from __future__ import annotations

import torch

from benchmarks.harness import Case
from kernels import kcenter
from tests.kernels import references


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    # issue 5 target: N = 100k, D = 128, L = 1000, B = 1000 in <= 3 s on 2 CPU cores
    pool, labelled, picks, dim = max(int(100_000 * scale), 64), max(int(1_000 * scale), 4), max(int(1_000 * scale), 4), 128
    emb = torch.randn(pool, dim, generator=generator).to(device)
    labelled_emb = torch.randn(labelled, dim, generator=generator).to(device)
    return [
        Case(
            name="k-center greedy", size=f"N={pool}, L={labelled}, D={dim}, B={picks}",
            run=lambda: kcenter.greedy_k_center(emb, labelled_emb, picks)[0].tolist(),
            reference=lambda: references.k_center_plain_torch(emb, labelled_emb, picks),
            disagreement=lambda got, expected: 1.0 - len(set(got) & set(expected)) / max(1, len(set(got) | set(expected))),
            flops=2.0 * pool * dim * (labelled + picks), bytes_read=4.0 * pool * dim * picks,
            target_s=3.0, repeats=1,
            notes="reference: plain torch, float64, one min-distance vector (not a loop over samples); disagreement = 1 - Jaccard of picks",
        ),
    ]
