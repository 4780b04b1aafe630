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

# ---- Diversity and hybrid: badge, kmeans, typiclust, probcover, cluster_margin ----------
# Plain float64 code: gradient embeddings materialised, full distance matrices, Python loops.


def _draw(weights_N: torch.Tensor, uniform: float) -> int:
    """Inverse-CDF draw, the same rule as the kernels (first index whose CDF exceeds u·total)."""
    cdf = torch.cumsum(weights_N.double(), 0)
    if not cdf[-1] > 0:
        return -1
    return min(int(torch.searchsorted(cdf, torch.tensor(uniform, dtype=torch.float64) * cdf[-1], right=True)), len(cdf) - 1)


def gradient_embeddings(probs_N_C: torch.Tensor, emb_N_D: torch.Tensor) -> torch.Tensor:
    """g_i = (p_i − onehot(argmax p_i)) ⊗ h_i, materialised as [N, C·D] float64."""
    p = probs_N_C.double()
    a = p - torch.nn.functional.one_hot(p.argmax(dim=1), p.shape[1]).double()
    return (a.unsqueeze(2) * emb_N_D.double().unsqueeze(1)).reshape(p.shape[0], -1)


def badge(probs_N_C: torch.Tensor, emb_N_D: torch.Tensor, num_picks: int, generator: torch.Generator) -> list[int]:
    """k-means++ on materialised gradient embeddings; first pick = largest norm; D² draws."""
    g = gradient_embeddings(probs_N_C, emb_N_D)
    num_picks = min(num_picks, g.shape[0])
    uniforms = torch.rand(num_picks, generator=generator, dtype=torch.float64).tolist()
    picks = [int(g.norm(dim=1).argmax())]
    for b in range(1, num_picks):
        sq = torch.cdist(g, g[picks]).square().min(dim=1).values
        sq[picks] = 0.0
        picks.append(_draw(sq, uniforms[b]))
    return picks


def kmeans_plus_plus(emb_N_D: torch.Tensor, num_centres: int, generator: torch.Generator) -> list[int]:
    """First centre uniform (u·N), the rest drawn ∝ squared distance to the nearest centre."""
    x = emb_N_D.double()
    num_picks = min(num_centres, x.shape[0])
    uniforms = torch.rand(num_picks, generator=generator, dtype=torch.float64).tolist()
    picks = [min(int(uniforms[0] * x.shape[0]), x.shape[0] - 1)]
    for m in range(1, num_picks):
        sq = torch.cdist(x, x[picks]).square().min(dim=1).values
        sq[picks] = 0.0
        picks.append(_draw(sq, uniforms[m]))
    return picks


def lloyd(emb_N_D: torch.Tensor, centres_M_D: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``iterations`` Lloyd steps in float64 (no early stop, no empty clusters expected). (centres, assignment)."""
    x = emb_N_D.double()
    centres = centres_M_D.double()
    assignment = torch.cdist(x, centres).argmin(dim=1)
    for _ in range(iterations):
        centres = torch.stack([x[assignment == m].mean(dim=0) for m in range(centres.shape[0])])
        assignment = torch.cdist(x, centres).argmin(dim=1)
    return centres, assignment


def nearest_member_per_cluster(emb_N_D: torch.Tensor, centres_M_D: torch.Tensor, assignment_N: torch.Tensor) -> list[int]:
    x = emb_N_D.double()
    picks = []
    for m in range(centres_M_D.shape[0]):
        members = (assignment_N == m).nonzero().squeeze(1)
        if members.numel():
            picks.append(int(members[torch.cdist(x[members], centres_M_D[m : m + 1].double()).squeeze(1).argmin()]))
    return picks


def knn_typicality(points_n_D: torch.Tensor, k: int) -> torch.Tensor:
    """1 / mean distance to the k nearest other points (full distance matrix)."""
    distances = torch.cdist(points_n_D.double(), points_n_D.double())
    distances.fill_diagonal_(math.inf)
    k = min(k, points_n_D.shape[0] - 1)
    if k < 1:
        return torch.ones(points_n_D.shape[0], dtype=torch.float64)
    return 1.0 / (distances.topk(k, dim=1, largest=False).values.mean(dim=1) + 1e-8)


def typiclust_from_clusters(
    points_P_D: torch.Tensor, assignment_P: torch.Tensor, num_pool: int, num_picks: int, knn: int, min_cluster_size: int
) -> list[int]:
    """The authors' greedy loop: the cluster with the fewest labelled (then largest) gets its most typical unpicked point."""
    num_clusters = int(assignment_P.max()) + 1
    sizes = torch.bincount(assignment_P, minlength=num_clusters).tolist()
    labelled = torch.bincount(assignment_P[num_pool:], minlength=num_clusters).tolist()
    picked: set[int] = set()
    picks = []
    for _ in range(min(num_picks, num_pool)):
        options = [
            (sizes[c] < min_cluster_size, labelled[c], -sizes[c], c)
            for c in range(num_clusters)
            if any(int(i) < num_pool and int(i) not in picked for i in (assignment_P == c).nonzero().squeeze(1))
        ]
        cluster = min(options)[3]
        members = (assignment_P == cluster).nonzero().squeeze(1)
        typicality = knn_typicality(points_P_D[members], knn)
        best = max(
            (float(typicality[j]), -int(i)) for j, i in enumerate(members) if int(i) < num_pool and int(i) not in picked
        )
        picks.append(-best[1])
        picked.add(-best[1])
        labelled[cluster] += 1
    return picks


def probcover(emb_N_D: torch.Tensor, labelled_L_D: torch.Tensor, delta: float, num_picks: int) -> list[int]:
    """Greedy max coverage on the dense δ-ball matrix (stops when nothing is left to cover)."""
    x = emb_N_D.double()
    inside = torch.cdist(x, x) < delta
    inside.fill_diagonal_(True)
    covered = torch.zeros(x.shape[0], dtype=torch.bool)
    if labelled_L_D.shape[0]:
        covered = (torch.cdist(x, labelled_L_D.double()) < delta).any(dim=1)
    picks = []
    for _ in range(min(num_picks, x.shape[0])):
        gains = (inside & ~covered).sum(dim=1)
        pick = int(gains.argmax())
        if gains[pick] == 0:
            break
        picks.append(pick)
        covered |= inside[pick]
    return picks


def purity_delta(points_P_D: torch.Tensor, labels_P: torch.Tensor, alpha: float) -> float:
    """Scan candidate δ (every pairwise distance) for the largest one with purity ≥ α."""
    distances = torch.cdist(points_P_D.double(), points_P_D.double())
    other = labels_P.unsqueeze(1) != labels_P.unsqueeze(0)
    best = 0.0
    for delta in sorted(set(distances[other].tolist())):
        pure = ~((distances < delta) & other).any(dim=1)
        if pure.double().mean() >= alpha:
            best = delta
    return best


def average_linkage(x_n_D: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Naive average-linkage HAC over explicit member lists; labels numbered by lowest member."""
    distances = torch.cdist(x_n_D.double(), x_n_D.double())
    clusters = [[i] for i in range(x_n_D.shape[0])]
    while len(clusters) > num_clusters:
        best = (math.inf, 0, 0)
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                d = float(distances[clusters[a]][:, clusters[b]].mean())
                if d < best[0]:
                    best = (d, a, b)
        _, a, b = best
        clusters[a] = clusters[a] + clusters.pop(b)
    labels = torch.empty(x_n_D.shape[0], dtype=torch.int64)
    for label, members in enumerate(sorted(clusters, key=min)):
        labels[members] = label
    return labels


def cluster_margin_round_robin(candidates: list[int], clusters: list[int], num_picks: int) -> list[list[int]]:
    """The picks of each robin round, as sets per round: clusters by candidate count ascending (ties by label)."""
    by_cluster: dict[int, list[int]] = {}
    for index in candidates:
        by_cluster.setdefault(clusters[index], []).append(index)
    order = sorted(by_cluster, key=lambda c: (len(by_cluster[c]), c))
    rounds = []
    taken = 0
    depth = 0
    while taken < num_picks:
        this_round = [c for c in order if len(by_cluster[c]) > depth][: num_picks - taken]
        rounds.append(this_round)
        taken += len(this_round)
        depth += 1
    return rounds


def lloyd_until(emb_N_D: torch.Tensor, centres_M_D: torch.Tensor, max_iter: int, tol: float) -> torch.Tensor:
    """Float64 Lloyd with the kernels' stopping rule (largest shift² ≤ tol x mean per-dimension variance); the assignment."""
    x = emb_N_D.double()
    centres = centres_M_D.double()
    threshold = tol * float((x - x.mean(dim=0)).square().sum(dim=1).mean()) / x.shape[1]
    assignment = torch.cdist(x, centres).argmin(dim=1)
    for _ in range(max_iter):
        new = torch.stack([x[assignment == m].mean(dim=0) if (assignment == m).any() else centres[m] for m in range(centres.shape[0])])
        shift = float((new - centres).square().sum(dim=1).max())
        centres = new
        assignment = torch.cdist(x, centres).argmin(dim=1)
        if shift <= threshold:
            break
    return assignment


def typiclust(
    emb_N_D: torch.Tensor, labelled_L_D: torch.Tensor, num_picks: int, generator: torch.Generator,
    knn: int = 20, max_clusters: int = 500, min_cluster_size: int = 5, max_iter: int = 10,
) -> list[int]:
    """TypiClust end to end in float64: k-means++ seeds, Lloyd, the authors' greedy loop."""
    points = torch.cat([emb_N_D, labelled_L_D]).double()
    num_clusters = min(num_picks + labelled_L_D.shape[0], max_clusters, points.shape[0])
    seeds = kmeans_plus_plus(points, num_clusters, generator)
    assignment = lloyd_until(points, points[seeds], max_iter, 1e-4)
    return typiclust_from_clusters(points, assignment, emb_N_D.shape[0], num_picks, knn, min_cluster_size)
