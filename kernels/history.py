"""Streaming statistics over the time series of past INFER steps.

The history is P in [T, N, C] (pool probabilities of every recorded round)
with a mask M in {0, 1}^{T x N} of which rounds scored which sample. The
scores here are computed in ONE pass over T: `HistoryStatistics.update` is fed
each round's rows in chronological order (in chunks along N), keeping O(N*C)
state, and the score functions read only that state. The state could be
persisted between AL rounds so that a long history is never re-read.

Fallback: a score that needs two observations is undefined for a sample
observed fewer than twice (n_i < 2). Such samples get the normalised entropy
H(p_last) / log C of their latest observed prediction, a value in [0, 1] like
the scores it replaces, and 1.0 (maximal uncertainty) if never observed.
Never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.uncertainty import normalised_entropy


@dataclass
class HistoryStatistics:
    """Per-sample streaming state after any number of rounds.

    Attributes:
        n_observed_N: n_i = sum_t M_ti, rounds that scored sample i (float32).
        last_probs_N_C: P at the latest round that observed i.
        prev_probs_N_C: P at the observed round before that.
        last_label_N: argmax_c of ``last_probs_N_C``.
        label_changes_N: consecutive observed rounds whose argmax differs.
    """

    n_observed_N: torch.Tensor
    last_probs_N_C: torch.Tensor
    prev_probs_N_C: torch.Tensor
    last_label_N: torch.Tensor
    label_changes_N: torch.Tensor

    @classmethod
    def empty(cls, pool_size: int, num_classes: int, device: torch.device | str = "cpu") -> HistoryStatistics:
        """State before any round: nothing observed."""
        zeros_N_C = torch.zeros(pool_size, num_classes, dtype=torch.float32, device=device)
        return cls(
            n_observed_N=torch.zeros(pool_size, dtype=torch.float32, device=device),
            last_probs_N_C=zeros_N_C,
            prev_probs_N_C=zeros_N_C.clone(),
            last_label_N=torch.zeros(pool_size, dtype=torch.int64, device=device),
            label_changes_N=torch.zeros(pool_size, dtype=torch.float32, device=device),
        )

    def update(self, start: int, probs_n_C: torch.Tensor, observed_n: torch.Tensor) -> None:
        """Fold one round's predictions for pool rows ``start .. start + n`` into the state.

        Rounds must arrive in chronological order. Rows with ``observed_n`` False are left untouched.
        """
        rows = slice(start, start + probs_n_C.shape[0])
        device = self.n_observed_N.device
        probs = probs_n_C.to(device=device, dtype=torch.float32)
        observed = observed_n.to(device=device, dtype=torch.bool)
        observed_col = observed.unsqueeze(1)
        label = probs.argmax(dim=1)

        seen_before = self.n_observed_N[rows] > 0
        changed = observed & seen_before & (label != self.last_label_N[rows])
        self.label_changes_N[rows] += changed.float()
        self.prev_probs_N_C[rows] = torch.where(observed_col, self.last_probs_N_C[rows], self.prev_probs_N_C[rows])
        self.last_probs_N_C[rows] = torch.where(observed_col, probs, self.last_probs_N_C[rows])
        self.last_label_N[rows] = torch.where(observed, label, self.last_label_N[rows])
        self.n_observed_N[rows] += observed.float()

    def fallback_scores(self) -> torch.Tensor:
        """Score for samples with n < 2: H(p_last)/log C if n = 1, else 1.0. Shape [N]."""
        fallback_N = normalised_entropy(self.last_probs_N_C)
        return torch.where(self.n_observed_N > 0, fallback_N, torch.ones_like(fallback_N))


def temporal_output_discrepancy(stats: HistoryStatistics) -> torch.Tensor:
    """½‖P_last − P_prev‖² between each sample's two latest observed rounds; in [0, 1].

    Huang et al., "Semi-Supervised Active Learning with Temporal Output
    Discrepancy", ICCV 2021 (siyuhuang/TOD), applied across AL rounds.
    Samples with n < 2 get `HistoryStatistics.fallback_scores`.
    """
    discrepancy_N = 0.5 * (stats.last_probs_N_C - stats.prev_probs_N_C).square().sum(dim=1)
    return torch.where(stats.n_observed_N >= 2, discrepancy_N, stats.fallback_scores())


def flip_rate(stats: HistoryStatistics, prior_a: float = 1.0, prior_b: float = 1.0) -> torch.Tensor:
    """Posterior-mean rate of argmax changes between consecutive observed rounds; in (0, 1).

    (changes + a) / (n − 1 + a + b) under a Beta(a, b) prior on the per-transition
    flip probability (switch events: Benkert et al. 2023). Samples with n < 2 get
    `HistoryStatistics.fallback_scores`.
    """
    rate_N = (stats.label_changes_N + prior_a) / (stats.n_observed_N - 1.0 + prior_a + prior_b)
    return torch.where(stats.n_observed_N >= 2, rate_N, stats.fallback_scores())
