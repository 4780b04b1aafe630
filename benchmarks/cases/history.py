"""Streaming statistics over the prediction history hist_T_N_C."""

from __future__ import annotations

import torch

from benchmarks.harness import Case
from kernels import history
from tests.kernels import references


def cases(scale: float, device: torch.device) -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    rounds, pool, classes = 8, max(int(4_000 * scale), 64), 10  # the reference loops over samples in Python
    hist = torch.softmax(2 * torch.randn(rounds, pool, classes, generator=generator), dim=2).half()
    observed = torch.rand(rounds, pool, generator=generator) < 0.8

    def streamed():
        stats = history.HistoryStatistics.empty(pool, classes, device)
        for t in range(rounds):
            stats.update(0, hist[t].to(device), observed[t].to(device))
        return torch.stack([history.temporal_output_discrepancy(stats), history.flip_rate(stats)])

    return [
        Case(
            name="history tod+flip_rate", size=f"T={rounds}, N={pool}, C={classes}",
            run=streamed, reference=lambda: torch.stack(references.history_scores(hist, observed)),
            bytes_read=hist.numel() * 2,
        ),
    ]
