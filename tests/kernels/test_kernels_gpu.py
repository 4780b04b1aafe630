"""Every kernel gives the same answer on CUDA as on the CPU (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from kernels import bayesian, history, kcenter, uncertainty
from tests.conftest import random_probs

pytestmark = pytest.mark.gpu


def test_uncertainty_and_bald_match_cpu():
    probs = random_probs(5000, 10, seed=0)
    for kernel in (uncertainty.entropy, uncertainty.least_confidence, uncertainty.margin, uncertainty.ratio):
        torch.testing.assert_close(kernel(probs.cuda()).cpu(), kernel(probs), atol=1e-6, rtol=1e-5)
    mc = torch.log_softmax(torch.randn(2000, 16, 10, generator=torch.Generator().manual_seed(1)), dim=2)
    torch.testing.assert_close(bayesian.bald(mc.cuda()).cpu(), bayesian.bald(mc), atol=1e-5, rtol=1e-4)


def test_k_center_picks_match_cpu():
    generator = torch.Generator().manual_seed(2)
    emb, labelled = torch.randn(3000, 32, generator=generator), torch.randn(100, 32, generator=generator)
    cpu_picks, cpu_dist = kcenter.greedy_k_center(emb, labelled, 50)
    gpu_picks, gpu_dist = kcenter.greedy_k_center(emb.cuda(), labelled.cuda(), 50)
    assert gpu_picks.cpu().tolist() == cpu_picks.tolist()
    torch.testing.assert_close(gpu_dist.cpu(), cpu_dist, atol=1e-3, rtol=1e-4)


def test_history_statistics_match_cpu():
    hist = torch.stack([random_probs(4000, 10, seed=t) for t in range(6)]).half()
    observed = torch.rand(6, 4000, generator=torch.Generator().manual_seed(3)) < 0.7
    results = []
    for device in ("cpu", "cuda"):
        stats = history.HistoryStatistics.empty(4000, 10, device)
        for t in range(6):
            stats.update(0, hist[t].to(device), observed[t].to(device))
        results.append((history.temporal_output_discrepancy(stats).cpu(), history.flip_rate(stats).cpu()))
    for cpu_scores, gpu_scores in zip(*results):
        torch.testing.assert_close(gpu_scores, cpu_scores, atol=1e-6, rtol=1e-5)
