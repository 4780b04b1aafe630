"""Float64 reference implementations of every kernel: plain, obviously-correct tensor code.

The tests compare the float32, chunked kernels against these; the benchmarks
(benchmarks/bench_kernels.py) time the kernels against them.
"""

from __future__ import annotations

import math

import torch


def entropy(probs_N_C: torch.Tensor) -> torch.Tensor:
    p = probs_N_C.double()
    return -(p * p.clamp(min=1e-12).log()).sum(dim=1)


def _top_two(probs_N_C: torch.Tensor) -> torch.Tensor:
    return probs_N_C.double().sort(dim=1, descending=True).values[:, :2]


def least_confidence(probs_N_C: torch.Tensor) -> torch.Tensor:
    return 1.0 - _top_two(probs_N_C)[:, 0]


def margin(probs_N_C: torch.Tensor) -> torch.Tensor:
    top = _top_two(probs_N_C)
    return -(top[:, 0] - top[:, 1])


def ratio(probs_N_C: torch.Tensor) -> torch.Tensor:
    top = _top_two(probs_N_C)
    return top[:, 1] / top[:, 0]


UNCERTAINTY = {"entropy": entropy, "least_confidence": least_confidence, "margin": margin, "ratio": ratio}


def uncertainty_scores(probs_N_C: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: reference(probs_N_C) for name, reference in UNCERTAINTY.items()}


def bald(mc_log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    p = mc_log_probs_N_K_C.double().exp()
    mean = p.mean(dim=1)
    entropy_of_mean = -(mean * mean.clamp(min=1e-12).log()).sum(dim=1)
    mean_entropy = -(p * p.clamp(min=1e-12).log()).sum(dim=2).mean(dim=1)
    return entropy_of_mean - mean_entropy


def k_center(emb_N_D: torch.Tensor, labelled_L_D: torch.Tensor, num_picks: int, first_pick: int = 0) -> list[int]:
    """Greedy k-center recomputing all distances to all centres at every pick."""
    emb = emb_N_D.double()
    centres = labelled_L_D.double()
    picks: list[int] = []
    for b in range(min(num_picks, emb.shape[0])):
        if b == 0 and centres.shape[0] == 0:
            pick = first_pick
        else:
            distances = torch.cdist(emb, centres).min(dim=1).values
            distances[picks] = -1.0
            pick = int(distances.argmax())
        picks.append(pick)
        centres = torch.cat([centres, emb[pick : pick + 1]])
    return picks


def history_scores(
    hist_T_N_C: torch.Tensor, observed_T_N: torch.Tensor, prior_a: float = 1.0, prior_b: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tod, flip_rate) from the dense history, sample by sample, with the n < 2 fallback."""
    hist = hist_T_N_C.double()
    _, pool_size, num_classes = hist.shape
    tod = torch.empty(pool_size, dtype=torch.float64)
    flips = torch.empty(pool_size, dtype=torch.float64)
    for i in range(pool_size):
        series = hist[observed_T_N[:, i], i]  # [n_i, C], chronological
        n = series.shape[0]
        if n >= 2:
            tod[i] = 0.5 * (series[-1] - series[-2]).square().sum()
            labels = series.argmax(dim=1)
            changes = (labels[1:] != labels[:-1]).sum()
            flips[i] = (changes + prior_a) / (n - 1 + prior_a + prior_b)
        elif n == 1:
            tod[i] = flips[i] = entropy(series[-1:])[0] / math.log(num_classes)
        else:
            tod[i] = flips[i] = 1.0
    return tod, flips


# --- Bayesian scores over mc_log_probs_N_K_C (mean_std, variation_ratio, predictive entropy) ---


def predictive_entropy(mc_log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    return entropy(mc_log_probs_N_K_C.double().exp().mean(dim=1))


def mean_std(mc_log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    return mc_log_probs_N_K_C.double().exp().std(dim=1, correction=0).mean(dim=1)


def variation_ratio(mc_log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """1 - mode count / K, counted with a plain per-class comparison."""
    votes = mc_log_probs_N_K_C.double().argmax(dim=2)  # [N, K]
    num_classes = mc_log_probs_N_K_C.shape[2]
    counts = torch.stack([(votes == c).sum(dim=1) for c in range(num_classes)], dim=1).double()
    return 1.0 - counts.max(dim=1).values / votes.shape[1]


BAYESIAN = {"bald": bald, "predictive_entropy": predictive_entropy, "mean_std": mean_std, "variation_ratio": variation_ratio}


# --- k-center: a plain torch float64 greedy with a min-distance vector (fast enough for the benchmark sizes) ---


def k_center_plain_torch(emb_N_D: torch.Tensor, labelled_L_D: torch.Tensor, num_picks: int, first_pick: int = 0) -> list[int]:
    """The textbook greedy: exact float64 distances, min-distance vector, one [N] block per pick."""
    emb = emb_N_D.double()
    labelled = labelled_L_D.double()
    min_dist = torch.full((emb.shape[0],), math.inf, dtype=torch.float64, device=emb.device)
    for start in range(0, emb.shape[0], 8192):  # chunks keep the [n, L] block small
        if labelled.shape[0]:
            min_dist[start : start + 8192] = torch.cdist(emb[start : start + 8192], labelled).square().min(dim=1).values
    picks: list[int] = []
    for b in range(min(num_picks, emb.shape[0])):
        pick = first_pick if b == 0 and labelled.shape[0] == 0 else int(min_dist.argmax())
        picks.append(pick)
        min_dist = torch.minimum(min_dist, (emb - emb[pick]).square().sum(dim=1))
        min_dist[pick] = -1.0
    return picks
