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


# ----------------------------------------------------------------------------------------------
# Batch Bayesian family (kernels/batchbald.py, kernels/epig.py): batchbald, epig.
# ----------------------------------------------------------------------------------------------


def conditional_entropies(mc_log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """mean_k H(p_k) per sample."""
    p = mc_log_probs_N_K_C.double().exp()
    return torch.special.entr(p).sum(dim=2).mean(dim=1)


def exact_joint_probs(mc_log_probs_N_K_C: torch.Tensor, variables: list[int]) -> torch.Tensor:
    """P(y_v1, ..., y_vn = m | w_k) for all C^n configurations m (in row-major order of the classes): [C^n, K]."""
    p = mc_log_probs_N_K_C.double().exp()
    joint_M_K = torch.ones(1, p.shape[1], dtype=torch.float64)
    for v in variables:
        joint_M_K = (joint_M_K[:, None, :] * p[v].t()[None, :, :]).reshape(-1, p.shape[1])
    return joint_M_K


def exact_joint_entropy(mc_log_probs_N_K_C: torch.Tensor, variables: list[int]) -> float:
    """H(y_v1, ..., y_vn), enumerating every configuration."""
    return float(torch.special.entr(exact_joint_probs(mc_log_probs_N_K_C, variables).mean(dim=1)).sum())


def batchbald_exact(mc_log_probs_N_K_C: torch.Tensor, num_picks: int) -> tuple[list[int], list[float]]:
    """Greedy BatchBALD as batchbald_redux defines it, with exact joint entropies (tiny inputs only).

    Pick b maximises H(y_1..y_{b-1}, y) - sum of the conditional entropies of y_1..y_{b-1}, y;
    ties go to the lowest index (torch.max's rule in redux). Returns the picks and their scores.
    """
    conditional = conditional_entropies(mc_log_probs_N_K_C)
    picks: list[int] = []
    scores: list[float] = []
    for _ in range(min(num_picks, mc_log_probs_N_K_C.shape[0])):
        best, best_score = -1, -math.inf
        for i in range(mc_log_probs_N_K_C.shape[0]):
            if i in picks:
                continue
            score = exact_joint_entropy(mc_log_probs_N_K_C, picks + [i]) - float(conditional[picks + [i]].sum())
            if score > best_score:
                best, best_score = i, score
        picks.append(best)
        scores.append(best_score)
    return picks, scores


def sampled_joint_entropies(
    mc_log_probs_N_K_C: torch.Tensor, variables: list[int], classes_V_M: list[torch.Tensor]
) -> torch.Tensor:
    """batchbald_redux's importance-sampling estimate of H(y_v1..y_vn, y) for every pool sample y.

    Configuration m takes class classes_V_M[j][m] for variable j; its probability under
    w_k is the product over j, q(m) = mean_k of that, and
    H ~ (1/M) sum_m sum_c -p(m, c) log p(m, c) / q(m), p(m, c) = mean_k P(m | w_k) p_k(c).
    """
    p = mc_log_probs_N_K_C.double().exp()  # [N, K, C]
    num_configurations = classes_V_M[0].shape[0]
    joint_M_K = torch.ones(num_configurations, p.shape[1], dtype=torch.float64)
    for v, classes_M in zip(variables, classes_V_M):
        joint_M_K = joint_M_K * p[v].t()[classes_M.cpu()]
    q_M = joint_M_K.mean(dim=1)
    joint_N_M_C = torch.einsum("mk,nkc->nmc", joint_M_K, p) / p.shape[1]
    return (torch.special.entr(joint_N_M_C) / q_M[None, :, None]).sum(dim=(1, 2)) / num_configurations


def epig(mc_log_probs_N_K_C: torch.Tensor, target_mc_log_probs_Nt_K_C: torch.Tensor) -> torch.Tensor:
    """EPIG from samples (Bickford Smith et al. 2023, eq. 9), as written in the paper:

    mean over targets of sum_{y, y*} p(y, y*) [log p(y, y*) - log p(y) p(y*)],
    with p(y, y*) = mean_k p_k(y) p_k(y*).
    """
    p = mc_log_probs_N_K_C.double().exp()  # [N, K, C]
    q = target_mc_log_probs_Nt_K_C.double().exp()  # [Nt, K, C]
    joint = torch.einsum("nkc,tkd->ntcd", p, q) / p.shape[1]
    independent = p.mean(dim=1)[:, None, :, None] * q.mean(dim=1)[None, :, None, :]
    terms = torch.where(joint > 0, joint * (joint.log() - independent.log()), torch.zeros_like(joint))
    return terms.sum(dim=(2, 3)).mean(dim=1)

# ---- history family: every score of strategies.history, sample by sample in float64 ----------


def _history_fallback(series: torch.Tensor, num_classes: int) -> float:
    """n = 1: H(p_last) / log C; n = 0: 1.0."""
    if series.shape[0] == 0:
        return 1.0
    return float(entropy(series[-1:])[0] / math.log(num_classes))


def _entropy64(p: torch.Tensor) -> float:
    return float(-(p * p.clamp_min(1e-12).log()).sum())


def history_strategy_scores(
    name: str, hist_T_N_C: torch.Tensor, observed_T_N: torch.Tensor, window: int | None = None, **params
) -> torch.Tensor:
    """The score of history strategy ``name`` for every sample, from its own observed rounds only.

    ``window``: only each sample's last ``window`` observations (for `uncertainty_trend` it is the
    slope's window W instead). Parameters as the strategies': prior_a, prior_b, tau, decay, lam, gamma.
    """
    hist = hist_T_N_C.double()
    num_rounds, pool_size, num_classes = hist.shape
    scores = torch.empty(pool_size, dtype=torch.float64)
    for i in range(pool_size):
        rounds = [t for t in range(num_rounds) if bool(observed_T_N[t, i])]
        if window is not None and name != "uncertainty_trend":
            rounds = rounds[-window:]
        series = hist[rounds, i]  # [n, C], chronological
        n = len(rounds)
        if n < 2:
            scores[i] = _history_fallback(series, num_classes)
            continue
        if name == "tod":
            scores[i] = 0.5 * float((series[-1] - series[-2]).square().sum())
        elif name == "tod_cumulative":
            scores[i] = sum(0.5 * float((series[t] - series[t - 1]).square().sum()) for t in range(1, n)) / (n - 1)
        elif name == "flip_rate":
            a, b = params.get("prior_a", 1.0), params.get("prior_b", 1.0)
            labels = [int(series[t].argmax()) for t in range(n)]
            changes = sum(labels[t] != labels[t - 1] for t in range(1, n))
            scores[i] = (changes + a) / (n - 1 + a + b)
        elif name == "temporal_variation_ratio":
            labels = [int(series[t].argmax()) for t in range(n)]
            scores[i] = 1.0 - max(labels.count(c) for c in set(labels)) / n
        elif name == "temporal_bald":
            mean = series.mean(dim=0)
            scores[i] = _entropy64(mean) - sum(_entropy64(series[t]) for t in range(n)) / n
        elif name == "teacher_student_kl":
            tau = params.get("tau", 0.5)
            mean = series.mean(dim=0)
            sharpened = mean.clamp_min(1e-12) ** (1.0 / tau)
            q = sharpened / sharpened.sum()
            kls = [float((q * (q.clamp_min(1e-300).log() - series[t].clamp_min(1e-12).log())).sum()) for t in range(n)]
            scores[i] = sum(kls) / n
        elif name == "cartography_variability":
            label = int(series[-1].argmax())
            values = [float(series[t, label]) for t in range(n)]
            mean = sum(values) / n
            scores[i] = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
        elif name in ("ema_uncertainty", "uncertainty_trend"):
            decay = params.get("decay", 0.8)
            u = [_entropy64(series[t]) for t in range(n)]
            ema = 0.0
            for value in u:
                ema = decay * ema + (1 - decay) * value
            ema /= 1 - decay**n
            if name == "ema_uncertainty":
                mean = sum(u) / n
                scores[i] = ema + params.get("lam", 1.0) * math.sqrt(sum((v - mean) ** 2 for v in u) / n)
            else:
                last = (window or 5)
                xs, ys = [float(t) for t in rounds[-last:]], u[-last:]
                x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
                slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys)) / sum((x - x_mean) ** 2 for x in xs)
                scores[i] = ema + params.get("gamma", 1.0) * max(0.0, slope)
        else:
            raise ValueError(f"no reference for history strategy '{name}'")
    return scores

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
