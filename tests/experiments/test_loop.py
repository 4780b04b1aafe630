"""Tests for experiments.loop: the initial set, pool drawing, LABEL, seed derivation,
and whole AL runs on the synthetic dataset with a small MLP (sizes, uniqueness,
history files, round state, budget, pool subsets, reproducibility), plus that
INFER computes only what the strategy needs and that SELECT sees this round's history."""

from __future__ import annotations

import dataclasses
import functools
import zlib
from pathlib import Path

import pytest
import torch

import experiments.inference as inference_module
from experiments.datasets import load_dataset
from experiments.inference import InferenceSettings
from experiments.loop import (
    ActiveLearningRun,
    LoopSettings,
    derive_generator,
    derive_seed,
    draw_pool,
    initial_labelled_ids,
    label,
    needed_inputs,
    run_loop,
)
from experiments.models import build_model
from tests.experiments.settings_helpers import plain_trainer
from strategies import PoolView, Selection, get_strategy

@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic", train_size=300, test_size=100)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def make_run(dataset, workdir: Path, strategy: str = "entropy", seed: int = 0, **loop_options) -> ActiveLearningRun:
    loop = LoopSettings(**{"initial_size": 20, "query_size": 10, "rounds": 3, **loop_options})
    return ActiveLearningRun(
        dataset=dataset,
        build_model=functools.partial(
            build_model, "mlp", input_shape=dataset.input_shape, num_classes=dataset.num_classes, hidden=[16]
        ),
        strategy=get_strategy(strategy),
        strategy_params={},
        loop=loop,
        trainer=plain_trainer(epochs=1, min_steps=5, batch_size=32),
        inference=InferenceSettings(batch_size=128, mc_samples=3),
        seed=seed,
        workdir=workdir,
        device=torch.device("cpu"),
    )


# --------------------------------------------------------------------------- initial set


def _counts(labels: torch.Tensor, ids: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels[ids], minlength=num_classes)


@pytest.mark.parametrize("size", [0, 1, 7, 40, 43])
def test_initial_balanced(size):
    labels = torch.arange(200) % 4
    labels = labels[torch.randperm(200, generator=torch.Generator().manual_seed(3))]
    ids = initial_labelled_ids(labels, size, "balanced", torch.Generator().manual_seed(0))
    assert ids.shape == (size,) and ids.dtype == torch.int64
    assert torch.unique(ids).numel() == size
    assert torch.equal(ids, ids.sort().values)
    if size:
        assert 0 <= int(ids.min()) and int(ids.max()) < 200
    counts = _counts(labels, ids, 4)
    assert int(counts.max() - counts.min()) <= 1
    assert int(counts.sum()) == size


def test_initial_balanced_is_reproducible_per_generator():
    labels = torch.arange(500) % 10
    first = initial_labelled_ids(labels, 57, "balanced", torch.Generator().manual_seed(1))
    again = initial_labelled_ids(labels, 57, "balanced", torch.Generator().manual_seed(1))
    other = initial_labelled_ids(labels, 57, "balanced", torch.Generator().manual_seed(2))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # the remainder of 57 = 5 x 10 + 7 goes to 7 different classes
    counts = _counts(labels, first, 10)
    assert sorted(counts.tolist()) == [5] * 3 + [6] * 7


def test_initial_balanced_remainder_goes_to_random_classes():
    labels = torch.arange(400) % 4
    favoured = set()
    for seed in range(12):
        ids = initial_labelled_ids(labels, 5, "balanced", torch.Generator().manual_seed(seed))
        counts = _counts(labels, ids, 4)
        assert sorted(counts.tolist()) == [1, 1, 1, 2]
        favoured.add(int(counts.argmax()))
    assert len(favoured) > 1  # not always the first class


def test_initial_balanced_tops_up_when_a_class_is_short():
    # class 0 has only 2 samples; 30 over 3 classes wants 10 each
    labels = torch.cat([torch.zeros(2, dtype=torch.int64), torch.ones(50, dtype=torch.int64), torch.full((50,), 2)])
    labels = labels[torch.randperm(102, generator=torch.Generator().manual_seed(0))]
    ids = initial_labelled_ids(labels, 30, "balanced", torch.Generator().manual_seed(0))
    assert ids.shape == (30,) and torch.unique(ids).numel() == 30
    counts = _counts(labels, ids, 3)
    assert counts[0] == 2  # all it has
    assert int(counts.sum()) == 30 and counts[1] >= 10 and counts[2] >= 10


def test_initial_whole_dataset():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    ids = initial_labelled_ids(labels, 6, "balanced", torch.Generator().manual_seed(0))
    assert torch.equal(ids, torch.arange(6))


def test_initial_random():
    labels = torch.zeros(100, dtype=torch.int64)
    labels[:5] = 1
    ids = initial_labelled_ids(labels, 25, "random", torch.Generator().manual_seed(0))
    assert ids.shape == (25,) and torch.unique(ids).numel() == 25 and torch.equal(ids, ids.sort().values)
    assert torch.equal(ids, initial_labelled_ids(labels, 25, "random", torch.Generator().manual_seed(0)))
    assert not torch.equal(ids, initial_labelled_ids(labels, 25, "random", torch.Generator().manual_seed(1)))
    # random ignores the classes: with a majority class of 95 it does not balance
    picks = [initial_labelled_ids(labels, 25, "random", torch.Generator().manual_seed(s)) for s in range(5)]
    assert any(int(labels[p].sum()) < 12 for p in picks)


# --------------------------------------------------------------------------- draw_pool, label


def test_draw_pool_whole_and_subset():
    unlabelled = torch.arange(0, 400, 2)  # 200 sorted ids
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(draw_pool(unlabelled, None, generator, None), unlabelled)
    assert torch.equal(draw_pool(unlabelled, 200, generator, None), unlabelled)
    assert torch.equal(draw_pool(unlabelled, 1000, generator, None), unlabelled)
    subset = draw_pool(unlabelled, 50, generator, None)
    assert subset.shape == (50,) and torch.unique(subset).numel() == 50
    assert torch.isin(subset, unlabelled).all()
    assert torch.equal(subset, subset.sort().values)
    another = draw_pool(unlabelled, 50, generator, None)
    assert not torch.equal(subset, another)  # the generator moves on
    again = draw_pool(unlabelled, 50, torch.Generator().manual_seed(0), None)
    assert torch.equal(again, subset)


def test_draw_pool_fixed_candidates():
    candidates = torch.tensor([3, 5, 8, 13, 21])
    unlabelled = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 21])  # 13 got labelled
    pool = draw_pool(unlabelled, 2, torch.Generator().manual_seed(0), candidates)
    assert pool.tolist() == [3, 5, 8, 21]


def test_label():
    labelled = torch.tensor([1, 4, 9])
    pool_ids = torch.tensor([0, 2, 3, 5, 7])
    new_labelled, selected = label(labelled, pool_ids, Selection(torch.tensor([4, 1])))
    assert selected.tolist() == [7, 2]
    assert new_labelled.tolist() == [1, 2, 4, 7, 9]


def test_derive_seed_is_stable():
    assert derive_seed(0, "initial") == zlib.crc32(b"initial")
    assert derive_seed(3, "train") == (3 * 0x9E3779B1 + zlib.crc32(b"train")) % (2**63 - 1)
    assert derive_seed(1, "select") == 2654435761 + zlib.crc32(b"select")  # pinned: changing it changes every run
    purposes = ["initial", "pool", "train", "select", "round-0", "round-1"]
    seeds = {derive_seed(s, p) for s in range(4) for p in purposes}
    assert len(seeds) == 4 * len(purposes)
    assert all(0 <= s < 2**63 - 1 for s in seeds)
    # pinned literal: no hash randomisation, the same in every process and on every machine
    assert derive_seed(5, "pool") == 16_217_737_723
    a, b = derive_generator(5, "pool"), derive_generator(5, "pool")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


def test_needed_inputs():
    loop = LoopSettings()
    assert needed_inputs(get_strategy("random"), loop) == {"probs"}
    assert needed_inputs(get_strategy("random"), dataclasses.replace(loop, record_history=False)) == set()
    assert needed_inputs(get_strategy("coreset"), loop) == {"probs", "emb", "labelled_emb"}
    assert needed_inputs(get_strategy("bald"), dataclasses.replace(loop, record_history=False)) == {"mc_log_probs"}


# --------------------------------------------------------------------------- whole runs


def _round_file_ids(workdir: Path) -> list[torch.Tensor]:
    files = sorted((workdir / "history").glob("round_*.pt"))
    return [torch.load(path, weights_only=True)["dataset_ids"] for path in files]


@pytest.mark.parametrize("strategy", ["entropy", "bald", "coreset", "tod", "random", "flip_rate"])
def test_run_loop(dataset, tmp_path, strategy):
    run = make_run(dataset, tmp_path, strategy)
    seen = []
    results = run_loop(run, on_round=seen.append)
    rounds, initial, query = run.loop.rounds, run.loop.initial_size, run.loop.query_size
    assert len(results) == rounds + 1 and seen == results
    assert [r.round_index for r in results] == list(range(rounds + 1))
    assert [r.labelled_count for r in results] == [initial + r * query for r in range(rounds + 1)]
    for result in results:
        assert 0.0 <= result.test_accuracy <= 1.0 and result.test_loss > 0
        assert result.train_steps == max(1 * -(-result.labelled_count // 32), 5)
        assert set(result.metrics()) >= {"labelled_count", "test_accuracy", "train_seconds", "infer_seconds", "select_seconds"}
    assert results[-1].selected_ids is None and results[-1].pool_size == 0

    state = torch.load(tmp_path / "round_state.pt", weights_only=True)
    assert state["next_round"] == rounds + 1
    selections = state["selections"]
    assert len(selections) == rounds
    expected_initial = initial_labelled_ids(dataset.train_y, initial, "balanced", derive_generator(0, "initial"))
    labelled = expected_initial
    for round_index, (result, selected) in enumerate(zip(results[:-1], selections)):
        assert torch.equal(result.selected_ids, selected)
        assert selected.shape == (query,) and torch.unique(selected).numel() == query
        assert not torch.isin(selected, labelled).any(), "selected an already labelled sample"
        assert result.pool_size == dataset.train_size - labelled.shape[0]
        labelled = torch.cat([labelled, selected])
    assert torch.equal(state["labelled_ids"], labelled.sort().values)
    assert [r["test_accuracy"] for r in state["results"]] == [r.test_accuracy for r in results]
    assert not list(tmp_path.glob("*.partial"))

    # one history file per acquisition round, holding that round's pool (all unlabelled ids)
    history_ids = _round_file_ids(tmp_path)
    assert len(history_ids) == rounds
    labelled = expected_initial
    for ids, selected in zip(history_ids, selections):
        unlabelled = torch.arange(dataset.train_size)[~torch.isin(torch.arange(dataset.train_size), labelled)]
        assert torch.equal(ids, unlabelled)
        labelled = torch.cat([labelled, selected])


def test_run_loop_without_history_writes_no_files(dataset, tmp_path):
    results = run_loop(make_run(dataset, tmp_path, "entropy", record_history=False, rounds=2))
    assert len(results) == 3
    assert not (tmp_path / "history").exists()


def test_zero_rounds_trains_and_evaluates_once(dataset, tmp_path):
    results = run_loop(make_run(dataset, tmp_path, "entropy", rounds=0))
    assert len(results) == 1 and results[0].labelled_count == 20 and results[0].selected_ids is None
    assert _round_file_ids(tmp_path) == []


def test_budget_caps_the_last_query(dataset, tmp_path):
    results = run_loop(make_run(dataset, tmp_path, "entropy", rounds=6, budget=45))
    assert [r.labelled_count for r in results] == [20, 30, 40, 45]
    assert [None if r.selected_ids is None else r.selected_ids.numel() for r in results] == [10, 10, 5, None]
    state = torch.load(tmp_path / "round_state.pt", weights_only=True)
    assert state["labelled_ids"].numel() == 45 and len(state["selections"]) == 3


def test_budget_equal_to_the_initial_size_stops_after_one_model(dataset, tmp_path):
    results = run_loop(make_run(dataset, tmp_path, "random", rounds=3, budget=20))
    assert [r.labelled_count for r in results] == [20]


def test_pool_subset_refreshed_every_round(dataset, tmp_path):
    results = run_loop(make_run(dataset, tmp_path, "entropy", pool_subset=50, rounds=3))
    assert [r.pool_size for r in results] == [50, 50, 50, 0]
    history_ids = _round_file_ids(tmp_path)
    assert [ids.numel() for ids in history_ids] == [50, 50, 50]
    for ids, result in zip(history_ids, results):
        assert torch.isin(result.selected_ids, ids).all()  # picked from this round's subset
    assert not torch.equal(history_ids[0], history_ids[1])


def test_pool_subset_fixed_for_the_run(dataset, tmp_path):
    results = run_loop(make_run(dataset, tmp_path, "tod", pool_subset=50, pool_subset_refresh=False, rounds=3))
    assert [r.pool_size for r in results] == [50, 40, 30, 0]
    history_ids = _round_file_ids(tmp_path)
    for before, after, result in zip(history_ids, history_ids[1:], results):
        # the fixed candidates shrink by exactly what was labelled
        remaining = before[~torch.isin(before, result.selected_ids)]
        assert torch.equal(after, remaining)
    state = torch.load(tmp_path / "round_state.pt", weights_only=True)
    assert torch.equal(state["fixed_candidates"], history_ids[0])


def test_same_seed_same_run_other_seed_other_run(dataset, tmp_path):
    def run(seed, folder):
        results = run_loop(make_run(dataset, tmp_path / folder, "coreset", seed=seed, rounds=2))
        return [r.selected_ids for r in results[:-1]], [r.test_accuracy for r in results]

    selections_a, accuracy_a = run(0, "a")
    selections_b, accuracy_b = run(0, "b")
    selections_c, _ = run(1, "c")
    assert all(torch.equal(x, y) for x, y in zip(selections_a, selections_b))
    assert accuracy_a == accuracy_b
    assert not all(torch.equal(x, y) for x, y in zip(selections_a, selections_c))


def test_same_seed_same_run_for_a_stochastic_strategy(dataset, tmp_path):
    a = run_loop(make_run(dataset, tmp_path / "a", "bald", seed=3, rounds=2))
    b = run_loop(make_run(dataset, tmp_path / "b", "bald", seed=3, rounds=2))
    assert all(torch.equal(x.selected_ids, y.selected_ids) for x, y in zip(a[:-1], b[:-1]))


def test_warm_start_builds_one_model(dataset, tmp_path):
    for warm, expected in ((True, 1), (False, 3)):
        run = make_run(dataset, tmp_path / str(warm), "entropy", rounds=2, warm_start=warm)
        built = []
        original = run.build_model

        def counting_build(original=original):
            built.append(1)
            return original()

        run.build_model = counting_build
        run_loop(run)
        assert len(built) == expected


# --------------------------------------------------------------------------- INFER computes only what is needed


class _Spy:
    """Wraps the experiments.inference functions and records the shapes they are called with."""

    def __init__(self, monkeypatch):
        self.calls: dict[str, list[tuple]] = {"embed": [], "head_mc_log_probs": [], "full_mc_log_probs": []}
        for name in self.calls:
            original = getattr(inference_module, name)
            monkeypatch.setattr(inference_module, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def wrapper(model, x, *args, **kwargs):
            self.calls[name].append(tuple(x.shape))
            return original(model, x, *args, **kwargs)

        return wrapper


def _spy_strategy(run: ActiveLearningRun) -> list[PoolView]:
    pools: list[PoolView] = []
    spec = run.strategy

    def recording(pool, query_size, *, generator, **params):
        pools.append(pool)
        return spec.fn(pool, query_size, generator=generator, **params)

    run.strategy = dataclasses.replace(spec, fn=recording)
    return pools


def test_infer_for_entropy_computes_probs_only(dataset, tmp_path, monkeypatch):
    spy = _Spy(monkeypatch)
    run = make_run(dataset, tmp_path, "entropy", rounds=2)
    pools = _spy_strategy(run)
    results = run_loop(run)
    assert spy.calls["head_mc_log_probs"] == [] and spy.calls["full_mc_log_probs"] == []
    # one embedding pass per round, over the pool only (never the labelled set)
    assert spy.calls["embed"] == [(r.pool_size, 16) for r in results[:-1]]
    for pool in pools:
        assert pool.probs_N_C is not None
        assert pool.mc_log_probs_N_K_C is None and pool.emb_N_D is None
        assert pool.labelled_emb_L_D is None and pool.history is None


def test_infer_for_bald_computes_head_mc_once_per_round(dataset, tmp_path, monkeypatch):
    spy = _Spy(monkeypatch)
    run = make_run(dataset, tmp_path, "bald", rounds=2, record_history=False)
    pools = _spy_strategy(run)
    results = run_loop(run)
    pool_sizes = [r.pool_size for r in results[:-1]]
    assert spy.calls["embed"] == [(n, 16) for n in pool_sizes]
    assert spy.calls["head_mc_log_probs"] == [(n, 16) for n in pool_sizes]  # on embeddings, not inputs
    assert spy.calls["full_mc_log_probs"] == []
    for pool, n in zip(pools, pool_sizes):
        assert pool.mc_log_probs_N_K_C.shape == (n, 3, dataset.num_classes)
        assert pool.probs_N_C is None and pool.emb_N_D is None and pool.history is None


def test_infer_for_bald_full_mode(dataset, tmp_path, monkeypatch):
    spy = _Spy(monkeypatch)
    run = make_run(dataset, tmp_path, "bald", rounds=1, record_history=False)
    run.inference = InferenceSettings(batch_size=128, mc_samples=3, mc_mode="full")
    results = run_loop(run)
    assert spy.calls["embed"] == [] and spy.calls["head_mc_log_probs"] == []
    assert spy.calls["full_mc_log_probs"] == [(results[0].pool_size, 16)]


def test_infer_for_coreset_embeds_the_labelled_set(dataset, tmp_path, monkeypatch):
    spy = _Spy(monkeypatch)
    run = make_run(dataset, tmp_path, "coreset", rounds=2)
    pools = _spy_strategy(run)
    results = run_loop(run)
    expected = []
    for r in results[:-1]:
        expected += [(r.pool_size, 16), (r.labelled_count, 16)]
    assert spy.calls["embed"] == expected
    assert spy.calls["head_mc_log_probs"] == []
    for pool, r in zip(pools, results):
        assert pool.emb_N_D.shape == (r.pool_size, 16)
        assert pool.labelled_emb_L_D.shape == (r.labelled_count, 16)
        assert pool.mc_log_probs_N_K_C is None and pool.history is None


@pytest.mark.parametrize("strategy", ["tod", "flip_rate"])
def test_history_strategies_see_this_round(dataset, tmp_path, strategy):
    run = make_run(dataset, tmp_path, strategy, rounds=3)
    pools = _spy_strategy(run)
    run_loop(run)
    assert len(pools) == 3
    for round_index, pool in enumerate(pools):
        assert pool.history.num_rounds == round_index + 1
        assert pool.history.pool_size == pool.size
        # the newest round of the history is this round's probabilities (fp16)
        last = [chunk for chunk in pool.history.iter_chunks() if chunk.round_index == round_index]
        probs = torch.cat([chunk.probs_n_C for chunk in last])
        assert torch.cat([chunk.observed_n for chunk in last]).all()
        torch.testing.assert_close(probs.float(), pool.probs_N_C.half().float())


def test_round_state_is_saved_before_on_round(dataset, tmp_path):
    states = []

    def on_round(result):
        states.append(torch.load(tmp_path / "round_state.pt", weights_only=True)["next_round"])

    run_loop(make_run(dataset, tmp_path, "random", rounds=2), on_round=on_round)
    assert states == [1, 2, 3]


@pytest.mark.parametrize("strategy", ["coreset", "entropy", "random"])
def test_cold_start_without_initial_labels(dataset, tmp_path, strategy):
    results = run_loop(make_run(dataset, tmp_path, strategy=strategy, initial_size=0, rounds=2))
    assert [r.labelled_count for r in results] == [0, 10, 20]
    assert results[0].train_steps == 0 and results[1].train_steps > 0


def test_select_peak_memory_is_measured_on_cpu():
    """SELECT's peak memory: the resident-set growth while it runs, even after an earlier, larger peak."""
    from experiments.loop import _peak_memory_mb

    earlier = torch.ones(60_000_000)  # 229 MiB, freed before SELECT: an earlier peak must not hide SELECT's
    del earlier
    result, peak_mb = _peak_memory_mb(lambda: float(torch.ones(25_000_000).sum()), device=torch.device("cpu"))
    assert result == 25_000_000
    assert 80 <= peak_mb <= 140  # 95 MiB allocated
    _, idle_mb = _peak_memory_mb(lambda: None, device=torch.device("cpu"))
    assert idle_mb < 20
