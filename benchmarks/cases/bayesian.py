"""Scores over MC samples mc_log_probs_N_K_C: kernels, public calls, and BALD's exactness at low MI."""

from __future__ import annotations

import torch

from benchmarks.cases.uncertainty import top_b_disagreement
from benchmarks.harness import Case
from kernels import bayesian
from strategies import PoolView, get_strategy
from tests.kernels import references

#: Issue 5, section 3: bald top-1000 at N = 100k, K = 20, C = 10 on 2 CPU cores.
BALD_TARGET_S = 0.04
QUERY_SIZE = 1000


def low_information_log_probs(pool: int, samples: int, classes: int, generator: torch.Generator) -> torch.Tensor:
    """A confident network late in a run: K samples that barely disagree (median MI ~ 1e-6)."""
    base = 4 * torch.randn(pool, 1, classes, generator=generator, dtype=torch.float64)
    spread = 6e-3 * torch.rand(pool, 1, 1, generator=generator, dtype=torch.float64)
    noise = spread * torch.randn(pool, samples, classes, generator=generator, dtype=torch.float64)
    return torch.log_softmax(base + noise, dim=2).float()


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    pool, samples, classes = max(int(100_000 * scale), 64), 20, 10
    query_size = min(QUERY_SIZE, pool)
    size = f"N={pool}, K={samples}, C={classes}"
    mc_log_probs = torch.log_softmax(2 * torch.randn(pool, samples, classes, generator=generator), dim=2).to(device)
    low_mi = low_information_log_probs(pool, samples, classes, generator).to(device)
    view = PoolView(pool_ids_N=torch.arange(pool, device=device), mc_log_probs_N_K_C=mc_log_probs)
    low_view = PoolView(pool_ids_N=torch.arange(pool, device=device), mc_log_probs_N_K_C=low_mi)
    read = mc_log_probs.numel() * 4
    result = [
        Case(
            name="bald kernel", size=size,
            run=lambda: bayesian.bald(mc_log_probs), reference=lambda: references.bald(mc_log_probs),
            bytes_read=read, logs=mc_log_probs.numel(), target_s=BALD_TARGET_S, notes="scores only",
        ),
        Case(
            name="bald public call", size=f"{size}, B={query_size}",
            run=lambda: get_strategy("bald")(view, query_size, generator=torch.Generator().manual_seed(0)).indices_B,
            reference=lambda: torch.topk(references.bald(mc_log_probs), query_size).indices,
            disagreement=top_b_disagreement,
            bytes_read=read, logs=mc_log_probs.numel(), target_s=BALD_TARGET_S,
            notes="validation + kernel + top-B; disagreement = 1 - Jaccard vs float64 top-B",
        ),
        Case(
            name="bald public call, low MI", size=f"{size}, B={query_size}, median MI ~1e-6",
            run=lambda: get_strategy("bald")(low_view, query_size, generator=torch.Generator().manual_seed(0)).indices_B,
            reference=lambda: torch.topk(references.bald(low_mi), query_size).indices,
            disagreement=top_b_disagreement,
            bytes_read=read, logs=low_mi.numel(), target_s=BALD_TARGET_S,
            notes="exactness: disagreement = 1 - Jaccard of the top-B vs float64 (issue: Jaccard >= 0.99)",
        ),
    ]
    for name in ("mean_std", "variation_ratio", "predictive_entropy"):
        kernel = getattr(bayesian, name)
        result.append(Case(
            name=f"{name} kernel", size=size, run=lambda kernel=kernel: kernel(mc_log_probs),
            reference=lambda name=name: references.BAYESIAN[name](mc_log_probs),
            bytes_read=read, logs=mc_log_probs.numel(), notes="scores only",
        ))
    for name in ("mean_std", "variation_ratio", "power_bald", "power_entropy", "softmax_bald"):
        strategy = get_strategy(name)
        result.append(Case(
            name=f"{name} public call", size=f"{size}, B={query_size}",
            run=lambda strategy=strategy: strategy(view, query_size, generator=torch.Generator().manual_seed(0)).indices_B,
            bytes_read=read, logs=mc_log_probs.numel(),
            notes="validation + kernel + selector (power/softmax: Gumbel-top-B sampling, beta = 1)",
        ))
    return result
