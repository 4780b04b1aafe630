"""History kernels: one streaming pass against float64 references over the dense [T, N, C] tensor."""

from __future__ import annotations

import math

import torch

from kernels.history import HistoryStatistics, flip_rate, temporal_output_discrepancy
from tests.conftest import random_probs
from tests.kernels.references import history_scores


def stream(hist_T_N_C: torch.Tensor, observed_T_N: torch.Tensor, chunk_size: int) -> HistoryStatistics:
    num_rounds, pool_size, num_classes = hist_T_N_C.shape
    stats = HistoryStatistics.empty(pool_size, num_classes)
    for t in range(num_rounds):
        for start in range(0, pool_size, chunk_size):
            stop = min(start + chunk_size, pool_size)
            stats.update(start, hist_T_N_C[t, start:stop], observed_T_N[t, start:stop])
    return stats


def test_streaming_matches_reference_with_random_masks():
    generator = torch.Generator().manual_seed(0)
    num_rounds, pool_size, num_classes = 6, 400, 5
    hist = torch.stack([random_probs(pool_size, num_classes, seed=t) for t in range(num_rounds)]).half()
    observed = torch.rand(num_rounds, pool_size, generator=generator) < 0.6
    stats = stream(hist, observed, chunk_size=37)
    expected_tod, expected_flips = history_scores(hist, observed, prior_a=0.5, prior_b=2.0)
    torch.testing.assert_close(temporal_output_discrepancy(stats).double(), expected_tod, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(flip_rate(stats, 0.5, 2.0).double(), expected_flips, atol=1e-5, rtol=1e-4)
    assert (stats.n_observed_N == observed.sum(dim=0)).all()


def test_hand_made_series():
    # sample 0 flips every round; sample 1 never flips; sample 2 seen once; sample 3 never seen
    a, b = torch.tensor([0.9, 0.1]), torch.tensor([0.2, 0.8])
    hist = torch.stack([
        torch.stack([a, a, a, a]),
        torch.stack([b, a, b, a]),
        torch.stack([a, a, a, a]),
    ])  # [T=3, N=4, C=2]
    observed = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    stats = stream(hist, observed, chunk_size=4)
    # sample 0: labels 0,1,0 -> 2 changes over 2 transitions: (2+1)/(2+2)
    # sample 1: labels 0,0,0 -> (0+1)/(2+2)
    entropy_a = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    torch.testing.assert_close(flip_rate(stats), torch.tensor([0.75, 0.25, entropy_a, 1.0]))
    # TOD between the last two observed rounds: sample 0 went b -> a
    torch.testing.assert_close(temporal_output_discrepancy(stats), torch.tensor([0.5 * 2 * 0.7**2, 0.0, entropy_a, 1.0]))


def test_scores_are_never_nan_even_for_empty_history():
    stats = HistoryStatistics.empty(5, 3)
    assert torch.isfinite(temporal_output_discrepancy(stats)).all()
    assert torch.isfinite(flip_rate(stats)).all()
