"""The diversity and hybrid strategies: known answers, references, parameters, per-run state."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kernels import hac
from strategies import PoolView, StrategyInputError, get_strategy
from strategies.diversity import _kmeans_assignment
from tests.conftest import random_probs
from tests.kernels import references


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blob_pool(per_blob: int = 40, num_blobs: int = 5, dim: int = 4, seed: int = 0, labelled_blobs=()) -> PoolView:
    """Well-separated blobs (spread 0.3, centres 20 apart, offset 50) with optional labelled points in some blobs."""
    generator = gen(seed)
    centres = 20.0 * torch.randn(num_blobs, dim, generator=generator)
    emb = centres.repeat_interleave(per_blob, 0) + 0.3 * torch.randn(per_blob * num_blobs, dim, generator=generator) + 50.0
    labelled = [centres[b] + 50.0 + 0.3 * torch.randn(3, dim, generator=generator) for b in labelled_blobs]
    return PoolView(
        pool_ids_N=torch.arange(emb.shape[0]) * 3 + 1,
        probs_N_C=random_probs(emb.shape[0], 4, seed),
        emb_N_D=emb,
        labelled_emb_L_D=torch.cat(labelled) if labelled else torch.empty(0, dim),
    )


def blob_of(pool: PoolView, per_blob: int) -> torch.Tensor:
    return torch.arange(pool.size) // per_blob


# ---- badge -------------------------------------------------------------------------------


def test_badge_matches_float64_reference():
    pool = blob_pool(seed=1)
    picks = get_strategy("badge")(pool, 25, generator=gen(3)).indices_B
    assert picks.tolist() == references.badge(pool.probs_N_C, pool.emb_N_D, 25, gen(3))


# ---- kmeans ------------------------------------------------------------------------------


def test_kmeans_picks_one_point_per_blob():
    pool = blob_pool()
    for seed in range(4):
        picks = get_strategy("kmeans")(pool, 5, generator=gen(seed)).indices_B
        assert sorted(blob_of(pool, 40)[picks].tolist()) == [0, 1, 2, 3, 4]


def test_kmeans_matches_float64_lloyd_from_the_same_seeds():
    emb = torch.randn(400, 6, generator=gen(5)) + 4.0
    pool = PoolView(pool_ids_N=torch.arange(400), emb_N_D=emb)
    picks = get_strategy("kmeans")(pool, 15, generator=gen(2), max_iter=8, tol=0.0).indices_B
    seeds = references.kmeans_plus_plus(emb, 15, gen(2))
    centres, assignment = references.lloyd(emb, emb[seeds], 8)
    assert sorted(picks.tolist()) == sorted(references.nearest_member_per_cluster(emb, centres, assignment))


def test_kmeans_random_init_and_duplicates_still_give_b_distinct_points():
    pool = PoolView(pool_ids_N=torch.arange(30), emb_N_D=torch.zeros(30, 2))
    picks = get_strategy("kmeans")(pool, 10, generator=gen(0), init="random").indices_B
    assert torch.unique(picks).numel() == 10


# ---- typiclust ---------------------------------------------------------------------------


def test_typiclust_prefers_blobs_without_labels_and_their_most_typical_point():
    pool = blob_pool(per_blob=40, num_blobs=5, labelled_blobs=(0, 1, 2))
    picks = get_strategy("typiclust")(pool, 2, generator=gen(0), max_clusters=5).indices_B
    assert sorted(blob_of(pool, 40)[picks].tolist()) == [3, 4]
    for pick in picks.tolist():
        blob = pick // 40
        members = torch.arange(blob * 40, blob * 40 + 40)
        typicality = references.knn_typicality(pool.emb_N_D[members], 20)
        assert pick == int(members[typicality.argmax()])


def test_typiclust_matches_the_authors_greedy_loop():
    generator_pool = gen(7)
    emb = torch.randn(300, 5, generator=generator_pool)
    labelled = torch.randn(12, 5, generator=generator_pool)
    pool = PoolView(pool_ids_N=torch.arange(300), emb_N_D=emb, labelled_emb_L_D=labelled)
    for query_size, max_clusters in ((20, 500), (40, 8)):  # B + L clusters; capped: several picks per cluster
        picks = get_strategy("typiclust")(pool, query_size, generator=gen(1), knn=5, max_clusters=max_clusters).indices_B
        points = torch.cat([emb, labelled])
        assignment, _, _ = _kmeans_assignment(points, min(query_size + 12, max_clusters), gen(1), "kmeans++", 10, 1e-4)
        expected = references.typiclust_from_clusters(points, assignment, 300, query_size, 5, 5)
        assert sorted(picks.tolist()) == sorted(expected)


# ---- probcover ---------------------------------------------------------------------------


def test_probcover_covers_unlabelled_blobs_first():
    pool = blob_pool(labelled_blobs=(0, 1))
    picks = get_strategy("probcover")(pool, 3, generator=gen(0), delta=5.0, normalize=False).indices_B
    assert sorted(blob_of(pool, 40)[picks].tolist()) == [2, 3, 4]


def test_probcover_auto_delta_gives_pure_balls_on_separated_blobs():
    pool = blob_pool(labelled_blobs=(0,))
    selection = get_strategy("probcover")(pool, 4, generator=gen(0), purity_clusters=5, normalize=False)
    # with pure balls each blob is one ball: the 4 unlabelled blobs get one pick each
    assert sorted(blob_of(pool, 40)[selection.indices_B].tolist()) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"delta": 0}, r"^probcover: 'params.delta' must be a number > 0 or 'auto'; got 0$"),
        ({"delta": -0.5}, r"^probcover: 'params.delta' must be a number > 0 or 'auto'; got -0.5$"),
        ({"delta": "big"}, r"^probcover: 'params.delta' must be a number > 0 or 'auto'; got 'big'$"),
        ({"purity": 1.5}, r"^probcover: 'params.purity' must be a number in \(0, 1\]; got 1.5$"),
        ({"purity_clusters": 1}, r"^probcover: 'params.purity_clusters' must be an integer >= 2; got 1$"),
        ({"delta": 100.0, "max_edges": 10}, r"^probcover: 'params.delta' is too large for this pool: .*; lower it$"),
    ],
)
def test_probcover_bad_params_are_one_line_errors_naming_the_key(params, message):
    with pytest.raises(StrategyInputError, match=message):
        get_strategy("probcover")(blob_pool(), 3, generator=gen(0), **params)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("kmeans", {"init": "forgy"}, r"^kmeans: 'params.init' must be one of kmeans\+\+, random; got 'forgy'$"),
        ("kmeans", {"max_iter": -1}, r"^kmeans: 'params.max_iter' must be an integer >= 0; got -1$"),
        ("typiclust", {"knn": 0}, r"^typiclust: 'params.knn' must be an integer >= 1; got 0$"),
        ("typiclust", {"max_clusters": 2.5}, r"^typiclust: 'params.max_clusters' must be an integer >= 1; got 2.5$"),
        ("cluster_margin", {"candidate_multiple": 0.5}, r"^cluster_margin: 'params.candidate_multiple' must be a number >= 1; got 0.5$"),
        ("cluster_margin", {"num_clusters": 0}, r"^cluster_margin: 'params.num_clusters' must be an integer >= 1; got 0$"),
        ("cluster_margin", {"hac_sample": 1}, r"^cluster_margin: 'params.hac_sample' must be an integer >= 2; got 1$"),
    ],
)
def test_bad_params_are_one_line_errors_naming_the_key(name, params, message):
    with pytest.raises(StrategyInputError, match=message):
        get_strategy(name)(blob_pool(), 3, generator=gen(0), **params)


# ---- cluster_margin ----------------------------------------------------------------------


def test_cluster_margin_round_robin_over_clusters_smallest_first():
    pool = blob_pool(per_blob=40, num_blobs=5)
    selection = get_strategy("cluster_margin")(pool, 12, generator=gen(0), num_clusters=5, candidate_multiple=2.0)
    scores = selection.scores_N
    torch.testing.assert_close(scores.double(), references.margin(pool.probs_N_C), atol=1e-6, rtol=0)
    candidates = torch.topk(scores, 24).indices.tolist()
    clusters = blob_of(pool, 40).tolist()  # HAC recovers the blobs
    rounds = references.cluster_margin_round_robin(candidates, clusters, 12)
    picks = selection.indices_B.tolist()
    assert set(picks) <= set(candidates)
    start = 0
    for round_clusters in rounds:  # each robin round takes one candidate of each cluster, in order
        assert [clusters[i] for i in picks[start : start + len(round_clusters)]] == round_clusters
        start += len(round_clusters)


def test_cluster_margin_state_none_clusters_and_returns_state_keyed_by_dataset_index():
    pool = blob_pool(per_blob=40, num_blobs=5)
    selection = get_strategy("cluster_margin")(pool, 10, generator=gen(0), num_clusters=5)
    state = selection.strategy_state
    assert torch.equal(state["cluster_ids"], pool.pool_ids_N.sort().values)
    labels = state["cluster_labels"]
    assert same_partition(labels, blob_of(pool, 40))


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.unsqueeze(0) == a.unsqueeze(1), b.unsqueeze(0) == b.unsqueeze(1))


def test_cluster_margin_round_two_reuses_round_one_clusters(monkeypatch):
    pool = blob_pool(per_blob=40, num_blobs=5)
    first = get_strategy("cluster_margin")(pool, 10, generator=gen(0), num_clusters=5)
    # round 2: the picked samples left the pool, order shuffled; new model => new embeddings
    keep = torch.ones(pool.size, dtype=torch.bool)
    keep[first.indices_B] = False
    order = torch.randperm(int(keep.sum()), generator=gen(1))
    remaining = keep.nonzero().squeeze(1)[order]
    round_two = dataclasses.replace(
        pool,
        pool_ids_N=pool.pool_ids_N[remaining],
        probs_N_C=random_probs(remaining.shape[0], 4, 9),
        emb_N_D=torch.randn(remaining.shape[0], 4, generator=gen(2)),  # would cluster differently
        strategy_state=first.strategy_state,
    )

    def no_reclustering(*args, **kwargs):
        raise AssertionError("HAC ran again although the state holds the clusters")

    monkeypatch.setattr(hac, "average_linkage", no_reclustering)
    second = get_strategy("cluster_margin")(round_two, 10, generator=gen(3), num_clusters=5)
    assert second.strategy_state is first.strategy_state
    # the picks follow round one's clusters: ten picks over five clusters = two per cluster
    blobs = (remaining[second.indices_B] // 40).tolist()
    assert sorted(torch.bincount(torch.tensor(blobs), minlength=5).tolist()) == [2, 2, 2, 2, 2]


def test_cluster_margin_assigns_unknown_pool_points_to_the_nearest_known_cluster(monkeypatch):
    pool = blob_pool(per_blob=40, num_blobs=5)
    first = get_strategy("cluster_margin")(pool, 5, generator=gen(0), num_clusters=5)
    fresh = blob_pool(per_blob=40, num_blobs=5)  # same blobs, pool ids shifted: half unknown
    mixed = dataclasses.replace(
        fresh, pool_ids_N=torch.cat([fresh.pool_ids_N[:100], fresh.pool_ids_N[100:] + 10_000]),
        strategy_state=first.strategy_state,
    )
    monkeypatch.setattr(hac, "average_linkage", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-clustered")))
    from strategies.diversity import _clusters_for_pool

    labels, state = _clusters_for_pool(mixed, 5, 2000, gen(0))
    assert state is first.strategy_state
    # blobs 0-1 are known (rows < 80) and keep their labels; known rows 80-99 lie in blob 2;
    # rows >= 100 are unknown and join the nearest known cluster mean: blob 2's for blob 2
    assert same_partition(labels[:120], blob_of(pool, 40)[:120])


MINE = ("badge", "kmeans", "typiclust", "probcover", "cluster_margin")


@pytest.mark.parametrize("name", MINE)
def test_empty_pool_gives_an_empty_selection(name):
    pool = PoolView(
        pool_ids_N=torch.empty(0, dtype=torch.int64), probs_N_C=torch.empty(0, 4),
        emb_N_D=torch.empty(0, 3), labelled_emb_L_D=torch.randn(5, 3, generator=gen(0)),
    )
    selection = get_strategy(name)(pool, 5, generator=gen(0))
    assert selection.indices_B.shape == (0,)


@pytest.mark.parametrize("name", MINE)
def test_nothing_labelled_still_gives_b_distinct_points_and_finite_scores(name):
    pool = dataclasses.replace(blob_pool(seed=4), labelled_emb_L_D=torch.empty(0, 4))
    selection = get_strategy(name)(pool, 7, generator=gen(0))
    assert torch.unique(selection.indices_B).numel() == 7
    assert selection.scores_N is None or torch.isfinite(selection.scores_N).all()
