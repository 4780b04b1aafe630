"""Uncertainty scores over probs_N_C: the kernels and the public strategy calls (validation + kernel + top-B)."""

from __future__ import annotations

import torch

from benchmarks.harness import Case
from kernels import uncertainty
from strategies import PoolView, get_strategy
from tests.kernels import references

#: Issue 5, section 3: top-1000 at N = 1M on 2 CPU cores.
TARGET_S = {"entropy": 0.02, "margin": 0.01, "least_confidence": 0.005}
QUERY_SIZE = 1000


def top_b_disagreement(result: object, reference: object) -> float:
    """1 − Jaccard of two top-B index sets."""
    got, expected = set(torch.as_tensor(result).tolist()), set(torch.as_tensor(reference).tolist())
    return 1.0 - len(got & expected) / max(1, len(got | expected))


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    pool, classes = max(int(1_000_000 * scale), 64), 10
    query_size = min(QUERY_SIZE, pool)
    probs = torch.softmax(2 * torch.randn(pool, classes, generator=generator), dim=1).to(device)
    view = PoolView(pool_ids_N=torch.arange(pool, device=device), probs_N_C=probs)
    size = f"N={pool}, C={classes}"
    result = []
    for name in ("entropy", "least_confidence", "margin", "ratio"):
        kernel = getattr(uncertainty, name)
        result.append(Case(
            name=f"{name} kernel", size=size, run=lambda kernel=kernel: kernel(probs),
            reference=lambda name=name: references.UNCERTAINTY[name](probs),
            bytes_read=probs.numel() * probs.element_size(),
            logs=probs.numel() if name == "entropy" else 0,
            target_s=TARGET_S.get(name),
            notes="scores only",
        ))
        strategy = get_strategy(name)
        result.append(Case(
            name=f"{name} public call", size=f"{size}, B={query_size}",
            run=lambda strategy=strategy: strategy(view, query_size, generator=torch.Generator().manual_seed(0)).indices_B,
            reference=lambda name=name: torch.topk(references.UNCERTAINTY[name](probs), query_size).indices,
            disagreement=top_b_disagreement,
            bytes_read=probs.numel() * probs.element_size(),
            logs=probs.numel() if name == "entropy" else 0,
            target_s=TARGET_S.get(name),
            notes="get_strategy(name)(PoolView, B, generator=...): validation + kernel + top-B; disagreement = 1 - Jaccard vs float64 top-B",
        ))
    return result
