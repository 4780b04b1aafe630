"""Diversity and hybrid strategies over embeddings ``emb_N_D`` and ``labelled_emb_L_D`` (BADGE, Cluster-Margin: also ``probs_N_C``)."""

from __future__ import annotations

import math

import torch

from kernels import badge as badge_kernels
from kernels import clustering, hac
from kernels import probcover as probcover_kernels
from kernels import uncertainty as uncertainty_kernels
from kernels.kcenter import greedy_k_center
from strategies.errors import StrategyInputError
from strategies.params import require_bool, require_choice, require_int, require_number
from strategies.pool_view import PoolView, Selection
from strategies.registry import register_strategy
from strategies.selectors import topk


@register_strategy(
    name="coreset",
    version="2.0",
    needs=("emb", "labelled_emb"),
    batch_aware=True,
    paper="Sener & Savarese 2018, arXiv:1708.00489 (k-Center-Greedy)",
)
def coreset(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Greedy k-center: each pick is the pool point farthest from the labelled set and earlier picks.

    ``scores_N`` is each pool point's squared distance to the labelled set
    before any pick. With nothing labelled (L = 0), the first pick is uniform at
    random and ``scores_N`` is the squared distance to it, so scores are always finite.
    Version 2.0: distances exact to float32 rounding (1.0 lost them on offset or clustered
    embeddings, so picks change), and finite scores at L = 0.
    """
    first_pick = int(torch.randint(pool.size, (1,), generator=generator, device=generator.device))
    indices_B, min_sq_dist_N = greedy_k_center(pool.emb_N_D, pool.labelled_emb_L_D, query_size, first_pick)
    return Selection(indices_B, min_sq_dist_N)


# ---- BADGE, k-means, TypiClust, ProbCover, Cluster-Margin -------------------------------

_BADGE_PAPER = "Ash et al. 2020, Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds, arXiv:1906.03671"
_KMEANS_PAPER = "Lloyd 1982, Least squares quantization in PCM; k-means++ seeding: Arthur & Vassilvitskii 2007"
_TYPICLUST_PAPER = "Hacohen, Dekel & Weinshall 2022, Active Learning on a Budget, arXiv:2202.02794 (TypiClust)"
_PROBCOVER_PAPER = "Yehuda, Dekel, Hacohen & Weinshall 2022, Active Learning Through a Covering Lens, arXiv:2205.11320"
_CLUSTER_MARGIN_PAPER = "Citovsky et al. 2021, Batch Active Learning at Scale, arXiv:2107.14263 (Cluster-Margin)"

KMEANS_INITS = ("kmeans++", "random")


def _check_kmeans(params, pool_size, key_prefix):
    require_choice("kmeans", key_prefix + "init", params["init"], KMEANS_INITS)
    require_int("kmeans", key_prefix + "max_iter", params["max_iter"], 0)
    require_number("kmeans", key_prefix + "tol", params["tol"], "a number >= 0", lambda v: v >= 0)


def _check_typiclust(params, pool_size, key_prefix):
    for key, minimum in (("knn", 1), ("max_clusters", 1), ("min_cluster_size", 1), ("max_iter", 0)):
        require_int("typiclust", key_prefix + key, params[key], minimum)


def _check_probcover(params, pool_size, key_prefix):
    if params["delta"] != "auto":
        require_number("probcover", key_prefix + "delta", params["delta"], "a number > 0 or 'auto'", lambda v: v > 0)
    require_number("probcover", key_prefix + "purity", params["purity"], "a number in (0, 1]", lambda v: 0 < v <= 1)
    require_int("probcover", key_prefix + "purity_clusters", params["purity_clusters"], 2)
    require_int("probcover", key_prefix + "purity_sample", params["purity_sample"], 1)
    require_int("probcover", key_prefix + "max_edges", params["max_edges"], 1)
    require_bool("probcover", key_prefix + "normalize", params["normalize"])


def _check_cluster_margin(params, pool_size, key_prefix):
    require_int("cluster_margin", key_prefix + "num_clusters", params["num_clusters"], 1)
    require_number(
        "cluster_margin", key_prefix + "candidate_multiple", params["candidate_multiple"], "a number >= 1",
        lambda v: v >= 1,
    )
    require_int("cluster_margin", key_prefix + "hac_sample", params["hac_sample"], 2)


def _fill_uniformly(chosen_b: torch.Tensor, pool_size: int, query_size: int, generator: torch.Generator) -> torch.Tensor:
    """Top up ``chosen_b`` to min(B, N) distinct rows with uniform draws from the rest (degenerate pools)."""
    missing = min(query_size, pool_size) - chosen_b.shape[0]
    if missing <= 0:
        return chosen_b
    free_N = torch.ones(pool_size, dtype=torch.bool, device=chosen_b.device)
    free_N[chosen_b] = False
    free = free_N.nonzero().squeeze(1)
    order = torch.randperm(free.shape[0], generator=generator, device=generator.device).to(free.device)
    return torch.cat([chosen_b, free[order[:missing]]])


# 1.1: k-means++ distances come from a feature-major gemv; rounding differs, so a draw can change
@register_strategy(name="badge", version="1.1", needs=("probs", "emb"), batch_aware=True, paper=_BADGE_PAPER)
def badge(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """k-means++ seeding on gradient embeddings g_i = (p_i − e_ŷi) ⊗ h_i, never materialised (N x C·D).

    The first pick is the largest ||g_i|| (authors' code); each next one is drawn with
    probability ∝ its squared distance to the nearest pick so far, using ``generator``.
    ``scores_N`` is ||g_i||², the gradient-embedding norm (the uncertainty half of BADGE).
    """
    picks_B, sq_norm_N = badge_kernels.badge_seeding(pool.probs_N_C, pool.emb_N_D, query_size, generator)
    return Selection(picks_B.to(pool.device), sq_norm_N.to(pool.device))


# 1.1: k-means++ distances come from a feature-major gemv; rounding differs, so a draw can change
@register_strategy(
    name="kmeans", version="1.1", needs=("emb",), batch_aware=True, paper=_KMEANS_PAPER, check_params=_check_kmeans
)
def kmeans(
    pool: PoolView, query_size: int, *, generator: torch.Generator,
    init: str = "kmeans++", max_iter: int = 10, tol: float = 1e-4,
) -> Selection:
    """k-means with B centres on the pool embeddings; the member nearest each centre is queried.

    Lloyd iterations run chunked on the embeddings' device from k-means++ (default) or
    uniformly random initial centres, both drawn from ``generator``. Each non-empty
    cluster gives its member closest to the centre, so the picks are distinct. If fewer
    than B clusters are non-empty (duplicated embeddings), the rest is uniform.

    Args:
        init: ``kmeans++`` or ``random``.
        max_iter: Lloyd iterations at most (>= 0).
        tol: stop when the largest centre shift² is below tol x the mean per-dimension variance.
    """
    assignment_N, sq_dist_N, num_clusters = _kmeans_assignment(pool.emb_N_D, query_size, generator, init, max_iter, tol)
    chosen = clustering.nearest_member_per_cluster(assignment_N, sq_dist_N, num_clusters)
    return Selection(_fill_uniformly(chosen, pool.size, query_size, generator).to(pool.device))


def _kmeans_assignment(
    emb_N_D: torch.Tensor, num_clusters: int, generator: torch.Generator, init: str, max_iter: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor, int]:
    num_clusters = min(num_clusters, emb_N_D.shape[0])
    if init == "kmeans++":
        seeds_M = clustering.kmeans_plus_plus(emb_N_D, num_clusters, generator)
    else:
        seeds_M = torch.randperm(emb_N_D.shape[0], generator=generator, device=generator.device)[:num_clusters]
    _, assignment_N, sq_dist_N = clustering.lloyd(emb_N_D, emb_N_D[seeds_M.to(emb_N_D.device)], max_iter, tol)
    return assignment_N, sq_dist_N, num_clusters


# 1.1: k-means++ distances come from a feature-major gemv; rounding differs, so a draw can change
@register_strategy(
    name="typiclust", version="1.1", needs=("emb", "labelled_emb"), batch_aware=True, paper=_TYPICLUST_PAPER,
    check_params=_check_typiclust,
)
def typiclust(
    pool: PoolView, query_size: int, *, generator: torch.Generator,
    knn: int = 20, max_clusters: int = 500, min_cluster_size: int = 5, max_iter: int = 10,
) -> Selection:
    """The most typical pool point of each of the largest clusters that hold the fewest labelled points.

    Pool and labelled embeddings are clustered together by k-means (k-means++ seeding from
    ``generator``) into min(B + L, ``max_clusters``, N + L) clusters. The cap (500, as in the
    authors' code) bounds the k-means cost at large B + L; then a cluster can receive several
    picks. Picks go greedily, as in the authors' code, to the cluster with the fewest labelled
    (or already picked) points, ties to the largest; clusters smaller than
    ``min_cluster_size`` come last. Within a cluster the pick is the unpicked pool point of
    highest typicality, 1 / mean distance to its ``knn`` nearest neighbours among the cluster's
    points (pool and labelled), computed in row blocks, never N x N. The paper defines the
    neighbours over the whole data set; like the authors' code, they are searched within the
    cluster, which costs Σ n_k² D instead of N² D.

    ``scores_N`` is the typicality of the points of the clusters that received picks, 0 elsewhere.
    """
    num_pool = pool.size
    points = torch.cat([pool.emb_N_D.float(), pool.labelled_emb_L_D.float().to(pool.emb_N_D.device)])
    num_clusters = min(query_size + pool.labelled_emb_L_D.shape[0], max_clusters, points.shape[0])
    assignment, _, num_clusters = _kmeans_assignment(points, num_clusters, generator, "kmeans++", max_iter, 1e-4)
    sizes_M = torch.bincount(assignment, minlength=num_clusters)
    labelled_M = torch.bincount(assignment[num_pool:], minlength=num_clusters)

    # Greedy order without a loop: a cluster's r-th pick happens when its count is labelled + r,
    # so sorting (small?, labelled + r, −size, cluster) over every pool member gives the picks.
    pool_cluster_N = assignment[:num_pool]
    order_N = torch.argsort(pool_cluster_N, stable=True)
    sorted_clusters = pool_cluster_N[order_N]
    pool_sizes_M = torch.bincount(pool_cluster_N, minlength=num_clusters)
    starts_M = torch.cumsum(pool_sizes_M, 0) - pool_sizes_M
    rank_in_cluster = torch.arange(num_pool, device=order_N.device) - starts_M[sorted_clusters]
    span = points.shape[0] + 1
    key = (
        (sizes_M[sorted_clusters] < min_cluster_size).long() * span * span * (num_clusters + 1)
        + (labelled_M[sorted_clusters] + rank_in_cluster) * span * (num_clusters + 1)
        + (points.shape[0] - sizes_M[sorted_clusters]) * (num_clusters + 1)
        + sorted_clusters
    )
    num_picks = min(query_size, num_pool)
    taken = torch.topk(key, num_picks, largest=False, sorted=True).indices
    picks_per_cluster_M = torch.bincount(sorted_clusters[taken], minlength=num_clusters)

    scores_N = torch.zeros(num_pool, dtype=torch.float32, device=points.device)
    by_cluster_all = torch.argsort(assignment, stable=True)
    all_starts_M = torch.cumsum(sizes_M, 0) - sizes_M
    chosen = []
    for cluster in picks_per_cluster_M.nonzero().squeeze(1).tolist():
        members = by_cluster_all[int(all_starts_M[cluster]) : int(all_starts_M[cluster] + sizes_M[cluster])]
        typicality = clustering.knn_typicality(points[members], knn)
        in_pool = members < num_pool
        pool_members, pool_typicality = members[in_pool], typicality[in_pool]
        scores_N[pool_members] = pool_typicality
        best = torch.topk(pool_typicality, int(picks_per_cluster_M[cluster]), sorted=True).indices
        chosen.append(pool_members[best])
    picks = torch.cat(chosen) if chosen else torch.empty(0, dtype=torch.int64, device=points.device)
    return Selection(picks.to(pool.device), scores_N.to(pool.device))


# 1.2: the ball graph is built from the tiles on and above the diagonal, so it is exactly symmetric
# 1.1: k-means++ distances come from a feature-major gemv; rounding differs, so a draw can change
@register_strategy(
    name="probcover", version="1.2", needs=("emb", "labelled_emb"), batch_aware=True, paper=_PROBCOVER_PAPER,
    check_params=_check_probcover,
)
def probcover(
    pool: PoolView, query_size: int, *, generator: torch.Generator,
    delta: float | str = "auto", purity: float = 0.95, purity_clusters: int = 10,
    purity_sample: int = 5_000, normalize: bool = True, max_edges: int = 50_000_000,
) -> Selection:
    """Greedy maximum coverage of δ-balls around pool points; labelled points' balls start covered.

    Embeddings are L2-normalised first (``normalize``), as in the authors' code, so δ is
    on the unit sphere's scale. ``delta="auto"`` applies the paper's purity rule: the
    largest δ whose balls hold a single k-means pseudo-label (``purity_clusters`` clusters,
    k-means++ from ``generator``) for at least a fraction ``purity`` of points, computed
    exactly from each point's distance to its nearest differently-labelled point, over a
    random sample of ``purity_sample`` query points. The sparse ball graph is built in row
    blocks; more than ``max_edges`` edges is an error that asks for a smaller δ.

    ``scores_N`` is the number of uncovered pool points in each ball before the first pick.
    """
    emb_N_D = pool.emb_N_D.float()
    labelled_L_D = pool.labelled_emb_L_D.float().to(emb_N_D.device)
    if normalize:
        emb_N_D = torch.nn.functional.normalize(emb_N_D, dim=1)
        labelled_L_D = torch.nn.functional.normalize(labelled_L_D, dim=1)
    if delta == "auto":
        delta = _purity_delta(emb_N_D, labelled_L_D, generator, purity, purity_clusters, purity_sample)
    try:
        row_ptr, neighbours_E = probcover_kernels.ball_graph(emb_N_D, float(delta), max_edges)
    except probcover_kernels.TooManyEdgesError as error:
        raise StrategyInputError(f"probcover: 'params.delta' is too large for this pool: {error}; lower it") from None
    covered_N = probcover_kernels.covered_by(emb_N_D, labelled_L_D, float(delta))
    picks_B, gain_N = probcover_kernels.greedy_cover(row_ptr, neighbours_E, covered_N, query_size, generator)
    return Selection(picks_B.to(pool.device), gain_N.float().to(pool.device))


def _purity_delta(
    emb_N_D: torch.Tensor, labelled_L_D: torch.Tensor, generator: torch.Generator,
    purity: float, purity_clusters: int, purity_sample: int,
) -> float:
    points = torch.cat([emb_N_D, labelled_L_D])
    labels, _, _ = _kmeans_assignment(points, purity_clusters, generator, "kmeans++", 10, 1e-4)
    if points.shape[0] > purity_sample:
        queries = torch.randperm(points.shape[0], generator=generator, device=generator.device)[:purity_sample]
    else:
        queries = torch.arange(points.shape[0])
    delta = probcover_kernels.purity_delta(points, labels, queries.to(points.device), purity)
    if not math.isfinite(delta) or delta <= 0:
        raise StrategyInputError(
            f"probcover: 'params.delta'=auto found no positive finite delta (got {delta:g}) on this pool; "
            "give delta as a number > 0"
        )
    return delta


@register_strategy(
    name="cluster_margin", version="1.0", needs=("probs", "emb"), batch_aware=True, paper=_CLUSTER_MARGIN_PAPER,
    check_params=_check_cluster_margin,
)
def cluster_margin(
    pool: PoolView, query_size: int, *, generator: torch.Generator,
    num_clusters: int = 50, candidate_multiple: float = 10.0, hac_sample: int = 2_000,
) -> Selection:
    """The lowest-margin candidates, taken round-robin across HAC clusters, smallest clusters first.

    Clustering happens once per run (the paper clusters once, before the first round):
    average-linkage HAC into ``num_clusters`` clusters on a random subsample of at most
    ``hac_sample`` pool points (HAC is O(n²) in time and memory), every other pool point
    joins the cluster with the nearest mean. The clusters go back as ``strategy_state``,
    keyed by dataset index, and later rounds reuse them: a pool point not in the state
    (a refreshed pool subset) joins the nearest cluster mean computed from this round's
    embeddings of the known points. Only when no pool point is known is it clustered again.

    Each round: the min(N, ⌈``candidate_multiple`` x B⌉) lowest-margin points are the
    candidates; clusters are ordered by how many candidates they hold (fewest first),
    and picks go round-robin over them, a uniformly random candidate of each cluster in turn
    (from ``generator``). ``scores_N`` is −(p_(1) − p_(2)).
    """
    scores_N = uncertainty_kernels.margin(pool.probs_N_C).to(pool.device)
    clusters_N, state = _clusters_for_pool(pool, num_clusters, hac_sample, generator)
    if pool.size == 0:
        return Selection(torch.empty(0, dtype=torch.int64, device=pool.device), scores_N, state)
    num_candidates = min(pool.size, math.ceil(candidate_multiple * query_size))
    candidates = topk(scores_N, num_candidates, generator)
    candidate_clusters = clusters_N[candidates]
    num_labels = int(clusters_N.max()) + 1
    counts_M = torch.bincount(candidate_clusters, minlength=num_labels)
    # position of each cluster in the visiting order: fewest candidates first, ties by label
    visit_M = torch.empty_like(counts_M)
    visit_M[torch.argsort(counts_M * num_labels + torch.arange(num_labels, device=counts_M.device))] = torch.arange(
        num_labels, device=counts_M.device
    )
    # a random order within each cluster, then round r of the robin visits every cluster once
    shuffled = torch.randperm(num_candidates, generator=generator, device=generator.device).to(candidates.device)
    candidates, candidate_clusters = candidates[shuffled], candidate_clusters[shuffled]
    by_cluster = torch.argsort(candidate_clusters, stable=True)
    starts_M = torch.cumsum(counts_M, 0) - counts_M
    round_of = torch.empty_like(by_cluster)
    round_of[by_cluster] = torch.arange(num_candidates, device=by_cluster.device) - starts_M[candidate_clusters[by_cluster]]
    key = round_of * num_labels + visit_M[candidate_clusters]
    taken = torch.topk(key, min(query_size, num_candidates), largest=False, sorted=True).indices
    return Selection(candidates[taken], scores_N, state)


def _clusters_for_pool(
    pool: PoolView, num_clusters: int, hac_sample: int, generator: torch.Generator
) -> tuple[torch.Tensor, dict]:
    """Cluster labels of the pool rows and the state to carry: reused when given, computed otherwise."""
    emb_N_D = pool.emb_N_D
    ids_N = pool.pool_ids_N.to(emb_N_D.device)
    state = pool.strategy_state
    if state is not None and state.get("cluster_ids") is not None and pool.size:
        known_ids = state["cluster_ids"].to(emb_N_D.device)
        known_labels = state["cluster_labels"].to(emb_N_D.device)
        position = torch.searchsorted(known_ids, ids_N).clamp_(max=max(known_ids.shape[0] - 1, 0))
        is_known = known_ids.shape[0] > 0 and known_ids[position] == ids_N
        if bool(torch.as_tensor(is_known).any()):
            labels_N = torch.full((pool.size,), -1, dtype=torch.int64, device=emb_N_D.device)
            labels_N[is_known] = known_labels[position[is_known]]
            if not bool(is_known.all()):
                num_labels = int(known_labels.max()) + 1
                means_M_D, counts_M = hac.cluster_means(emb_N_D[is_known], labels_N[is_known], num_labels)
                present = (counts_M > 0).nonzero().squeeze(1)
                unknown = ~is_known
                labels_N[unknown] = present[hac.nearest_centre(emb_N_D[unknown], means_M_D[present])]
            return labels_N, state
    labels_N = _hac_labels(emb_N_D, num_clusters, hac_sample, generator)
    order = torch.argsort(ids_N)
    return labels_N, {"cluster_ids": ids_N[order].cpu(), "cluster_labels": labels_N[order].cpu()}


def _hac_labels(emb_N_D: torch.Tensor, num_clusters: int, hac_sample: int, generator: torch.Generator) -> torch.Tensor:
    if emb_N_D.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=emb_N_D.device)
    sample = torch.randperm(emb_N_D.shape[0], generator=generator, device=generator.device)[:hac_sample]
    sample = sample.to(emb_N_D.device)
    sample_labels = hac.average_linkage(emb_N_D[sample], num_clusters)
    num_labels = int(sample_labels.max()) + 1
    means_M_D, _ = hac.cluster_means(emb_N_D[sample], sample_labels, num_labels)
    labels_N = hac.nearest_centre(emb_N_D, means_M_D)
    # the sampled points keep their HAC cluster (a mean need not be nearest to its own members)
    labels_N[sample] = sample_labels
    return labels_N
