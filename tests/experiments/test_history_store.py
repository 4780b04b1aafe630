"""Tests for experiments.history_store: fp16 round files, masks for unscored samples,
alignment to a shrinking / reordered pool, atomic writes, and that history strategies
streaming from the store agree with the same strategies on a dense TensorHistory."""

from __future__ import annotations

import pytest
import torch

from experiments.history_store import HistoryStore, RoundFileHistory
from strategies import HistoryView, PoolView, StrategyInputError, TensorHistory, get_strategy
from tests.conftest import random_probs

C = 5


def _dense(view: HistoryView, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialise a history view as [T, N, C] probs (fp16) and a [T, N] mask."""
    probs = torch.full((view.num_rounds, view.pool_size, view.num_classes), float("nan"), dtype=torch.float16)
    observed = torch.zeros(view.num_rounds, view.pool_size, dtype=torch.bool)
    seen = torch.zeros(view.num_rounds, view.pool_size, dtype=torch.int64)
    last_round = -1
    for chunk in view.iter_chunks(chunk_size):
        assert chunk.round_index >= last_round  # chronological
        last_round = chunk.round_index
        n = chunk.probs_n_C.shape[0]
        assert n <= chunk_size and chunk.observed_n.shape == (n,) and chunk.observed_n.dtype == torch.bool
        rows = slice(chunk.start, chunk.start + n)
        probs[chunk.round_index, rows] = chunk.probs_n_C
        observed[chunk.round_index, rows] = chunk.observed_n
        seen[chunk.round_index, rows] += 1
    assert (seen == 1).all(), "every (round, row) must be yielded exactly once"
    return probs, observed


def test_append_and_view_round_trip(tmp_path):
    store = HistoryStore(tmp_path / "history", C)
    ids = torch.arange(50, 90)
    rounds = [random_probs(40, C, seed=t) for t in range(3)]
    for t, probs in enumerate(rounds):
        path = store.append(t, ids, probs)
        assert path.name == f"round_{t:04d}.pt"
        record = torch.load(path, weights_only=True)
        assert record["probs"].dtype == torch.float16 and record["dataset_ids"].dtype == torch.int64
        assert torch.equal(record["dataset_ids"], ids)
    assert store.num_rounds == 3
    view = store.view(ids)
    assert isinstance(view, RoundFileHistory) and isinstance(view, HistoryView)
    assert (view.num_rounds, view.pool_size, view.num_classes) == (3, 40, C)
    for chunk_size in (7, 40, 1000):
        dense, observed = _dense(view, chunk_size)
        assert observed.all()
        assert torch.equal(dense, torch.stack(rounds).half())  # exactly the fp16 values


def test_append_sorts_by_dataset_index(tmp_path):
    store = HistoryStore(tmp_path, C)
    ids = torch.tensor([9, 2, 7, 4])
    probs = random_probs(4, C, seed=0)
    record = torch.load(store.append(0, ids, probs), weights_only=True)
    assert record["dataset_ids"].tolist() == [2, 4, 7, 9]
    assert torch.equal(record["probs"], probs[torch.tensor([1, 3, 2, 0])].half())


def test_mask_for_samples_not_scored_every_round(tmp_path):
    """Subsampled pools: each round scores a different subset of the dataset."""
    store = HistoryStore(tmp_path, C)
    generator = torch.Generator().manual_seed(0)
    universe = torch.arange(100)
    scored, probs_by_id = [], []
    for t in range(4):
        ids = universe[torch.randperm(100, generator=generator)[:60]]
        probs = random_probs(60, C, seed=10 + t)
        store.append(t, ids, probs)
        scored.append(set(ids.tolist()))
        probs_by_id.append({int(i): p for i, p in zip(ids, probs.half())})
    pool = torch.arange(0, 100, 3)  # some ids never scored in some rounds
    dense, observed = _dense(store.view(pool), chunk_size=8)
    for t in range(4):
        for row, dataset_id in enumerate(pool.tolist()):
            assert bool(observed[t, row]) == (dataset_id in scored[t])
            if dataset_id in scored[t]:
                assert torch.equal(dense[t, row], probs_by_id[t][dataset_id])
    assert not observed.all() and observed.any()


def test_alignment_when_the_pool_shrinks_and_is_reordered(tmp_path):
    store = HistoryStore(tmp_path, C)
    full = torch.arange(20)
    hist = torch.stack([random_probs(20, C, seed=t) for t in range(3)])
    for t in range(3):
        store.append(t, full, hist[t])
    # later: 8 samples were labelled; the pool is the rest, in any order
    pool = torch.tensor([19, 3, 11, 0, 7, 15, 1, 18, 12, 5, 9, 14])
    dense, observed = _dense(store.view(pool), chunk_size=5)
    assert observed.all()
    assert torch.equal(dense, hist[:, pool].half())


def test_ids_beyond_the_recorded_range(tmp_path):
    store = HistoryStore(tmp_path, C)
    store.append(0, torch.tensor([10, 20, 30]), random_probs(3, C, seed=0))
    _, observed = _dense(store.view(torch.tensor([5, 10, 25, 30, 99])), chunk_size=2)
    assert observed.tolist() == [[False, True, False, True, False]]


def test_an_empty_round_is_all_masked(tmp_path):
    store = HistoryStore(tmp_path, C)
    store.append(0, torch.empty(0, dtype=torch.int64), torch.empty(0, C))
    store.append(1, torch.tensor([1, 2]), random_probs(2, C, seed=0))
    _, observed = _dense(store.view(torch.tensor([1, 2, 3])), chunk_size=2)
    assert observed.tolist() == [[False, False, False], [True, True, False]]


def test_writes_are_atomic_and_files_ordered(tmp_path):
    store = HistoryStore(tmp_path, C)
    for t in (0, 1, 2, 10, 10000):
        store.append(t, torch.arange(4), random_probs(4, C, seed=t))
    # leftovers of an interrupted write and foreign files are not rounds
    (tmp_path / "round_0003.pt.partial").write_bytes(b"half a file")
    (tmp_path / "notes.txt").write_text("x")
    names = [path.name for path in store.round_files()]
    assert names == ["round_0000.pt", "round_0001.pt", "round_0002.pt", "round_0010.pt", "round_10000.pt"]
    (tmp_path / "round_0003.pt.partial").unlink()
    assert not list(tmp_path.glob("*.partial"))
    assert store.num_rounds == 5


def test_no_partial_file_is_left_behind(tmp_path, monkeypatch):
    store = HistoryStore(tmp_path, C)
    store.append(0, torch.arange(3), random_probs(3, C, seed=0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round_0000.pt"]

    # a crash while writing leaves the previous rounds intact and no round file for this one
    def failing_save(obj, target):
        handle = target if hasattr(target, "write") else open(target, "wb")  # noqa: SIM115
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        store.append(1, torch.arange(3), random_probs(3, C, seed=1))
    assert [p.name for p in store.round_files()] == ["round_0000.pt"]


def test_append_rejects_a_shape_mismatch(tmp_path):
    store = HistoryStore(tmp_path, C)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        store.append(0, torch.arange(3), random_probs(3, C + 1, seed=0))
    with pytest.raises(ValueError):
        store.append(0, torch.arange(4), random_probs(3, C, seed=0))
    assert store.num_rounds == 0


def test_view_is_a_snapshot_of_the_rounds_so_far(tmp_path):
    store = HistoryStore(tmp_path, C)
    store.append(0, torch.arange(5), random_probs(5, C, seed=0))
    view = store.view(torch.arange(5))
    store.append(1, torch.arange(5), random_probs(5, C, seed=1))
    assert view.num_rounds == 1 and store.view(torch.arange(5)).num_rounds == 2


def test_reopening_the_directory_sees_the_rounds(tmp_path):
    HistoryStore(tmp_path, C).append(0, torch.arange(5), random_probs(5, C, seed=0))
    assert HistoryStore(tmp_path, C).num_rounds == 1


@pytest.mark.parametrize("name, params", [("tod", {}), ("flip_rate", {}), ("flip_rate", {"prior_a": 0.5, "prior_b": 2.0})])
def test_streaming_strategies_equal_the_dense_history(tmp_path, name, params):
    """tod / flip_rate on the on-disk store == on a TensorHistory of the same fp16 values and mask."""
    store = HistoryStore(tmp_path, C)
    generator = torch.Generator().manual_seed(1)
    num_ids, num_rounds = 400, 5
    hist = torch.stack([random_probs(num_ids, C, seed=20 + t, sharpness=1.0) for t in range(num_rounds)])
    scored = torch.rand(num_rounds, num_ids, generator=generator) < 0.7
    for t in range(num_rounds):
        ids = torch.nonzero(scored[t]).squeeze(1)
        shuffled = ids[torch.randperm(ids.numel(), generator=generator)]
        store.append(t, shuffled, hist[t, shuffled])
    pool_ids = torch.randperm(num_ids, generator=generator)[:300]
    dense = TensorHistory(hist[:, pool_ids].half(), scored[:, pool_ids])

    strategy = get_strategy(name)
    from_store = strategy(
        PoolView(pool_ids_N=pool_ids, history=store.view(pool_ids)), 25, generator=torch.Generator().manual_seed(3), **params
    )
    from_dense = strategy(PoolView(pool_ids_N=pool_ids, history=dense), 25, generator=torch.Generator().manual_seed(3), **params)
    torch.testing.assert_close(from_store.scores_N, from_dense.scores_N)
    assert torch.equal(from_store.indices_B, from_dense.indices_B)
    # and the scores are not trivial: the history matters
    assert from_store.scores_N.std() > 0


# ---- the incremental state kept by the loop vs a full re-read of the round files --------------

from kernels.history import HistoryInputError  # noqa: E402
from experiments.history_store import HistoryTracker, TrackedHistory  # noqa: E402
from strategies.history import HISTORY_STRATEGIES  # noqa: E402

NON_DEFAULT_PARAMS = {
    "flip_rate": {"prior_a": 0.5, "prior_b": 2.0},
    "teacher_student_kl": {"tau": 0.3},
    "ema_uncertainty": {"decay": 0.6, "lam": 2.0},
    "uncertainty_trend": {"decay": 0.6, "gamma": 3.0, "window": 3},
}


def _simulate_rounds(tmp_path, strategy, params, num_ids=500, rounds=6, subset=200, seed=0):
    """A loop's RECORD steps: the pool shrinks as samples are labelled and a subset is redrawn each
    round (pool_subset with refresh), so samples drop in and out of the history."""
    store = HistoryStore(tmp_path, C)
    tracker = HistoryTracker.for_strategy(strategy, params, store)
    generator = torch.Generator().manual_seed(seed)
    unlabelled = torch.arange(num_ids)
    pool = None
    for t in range(rounds):
        pool = unlabelled[torch.randperm(unlabelled.numel(), generator=generator)[:subset]].sort().values
        probs = random_probs(pool.numel(), C, seed=1000 * seed + t, sharpness=1.0)
        store.append(t, pool, probs)
        tracker.update(t, pool, probs)
        labelled = pool[torch.randperm(pool.numel(), generator=generator)[:20]]
        unlabelled = unlabelled[~torch.isin(unlabelled, labelled)]
    return store, tracker, pool


@pytest.mark.parametrize("name", HISTORY_STRATEGIES)
@pytest.mark.parametrize("with_params", [False, True])
def test_incremental_state_equals_a_full_re_read(tmp_path, name, with_params):
    params = NON_DEFAULT_PARAMS.get(name, {}) if with_params else {}
    store, tracker, pool = _simulate_rounds(tmp_path, name, params, seed=int(with_params))
    tracked = tracker.view(pool)
    assert isinstance(tracked, TrackedHistory) and isinstance(tracked, HistoryView)
    spec = get_strategy(name)
    generator = torch.Generator().manual_seed(0)
    incremental = spec(PoolView(pool_ids_N=pool, history=tracked), 15, generator=generator, **params)
    re_read = spec(PoolView(pool_ids_N=pool, history=store.view(pool)), 15, generator=torch.Generator().manual_seed(0), **params)
    assert tracked.ready_statistics(*_spec_args(name, params)) is not None  # the state was used, not a pass
    assert (incremental.scores_N - re_read.scores_N).abs().max() <= 1e-6
    assert torch.equal(incremental.indices_B, re_read.indices_B)
    # the masked case is exercised: some pool samples were seen once, others several times
    _, observed = _dense(store.view(pool), chunk_size=64)
    counts = observed.sum(0)
    assert (counts == 1).any() and (counts >= 3).any()


def _spec_args(name, params):
    from strategies.history import check_history_params

    spec = check_history_params(name, params)
    return spec.keep, spec.ema_decay, spec.trend_window


def test_a_window_makes_the_strategy_read_the_rounds(tmp_path):
    store, tracker, pool = _simulate_rounds(tmp_path, "temporal_bald", {"window": 2})
    assert tracker.stats is None  # nothing to keep: a window needs a pass
    spec = get_strategy("temporal_bald")
    tracked = spec(PoolView(pool_ids_N=pool, history=tracker.view(pool)), 5, generator=torch.Generator(), window=2)
    dense_probs, observed = _dense(store.view(pool), chunk_size=64)
    from tests.kernels.references import history_strategy_scores

    expected = history_strategy_scores("temporal_bald", dense_probs, observed, window=2)
    torch.testing.assert_close(tracked.scores_N.double(), expected, atol=2e-5, rtol=1e-4)


def test_tracker_state_dict_resumes_where_it_stopped(tmp_path):
    store, tracker, pool = _simulate_rounds(tmp_path / "a", "ema_uncertainty", {"decay": 0.6})
    state = tracker.state_dict()
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    path = tmp_path / "round_state.pt"
    torch.save({"history_state": state}, path)
    resumed = HistoryTracker.for_strategy("ema_uncertainty", {"decay": 0.6}, store)
    resumed.load_state_dict(torch.load(path, weights_only=True)["history_state"])
    probs = random_probs(pool.numel(), C, seed=77)
    for each in (tracker, resumed):
        each.update(6, pool, probs)
    store.append(6, pool, probs)
    a = get_strategy("ema_uncertainty")(PoolView(pool_ids_N=pool, history=tracker.view(pool)), 5, generator=torch.Generator(), decay=0.6)
    b = get_strategy("ema_uncertainty")(PoolView(pool_ids_N=pool, history=resumed.view(pool)), 5, generator=torch.Generator(), decay=0.6)
    assert torch.equal(a.scores_N, b.scores_N)
    other = HistoryTracker.for_strategy("ema_uncertainty", {"decay": 0.9}, store)
    with pytest.raises(ValueError, match="other strategy parameters"):
        other.load_state_dict(state)


def test_tracker_keeps_nothing_for_strategies_without_history(tmp_path):
    tracker = HistoryTracker.for_strategy("entropy", {}, HistoryStore(tmp_path, C))
    tracker.update(0, torch.arange(4), random_probs(4, C, seed=0))
    assert tracker.stats is None and set(tracker.state_dict()) == {"dataset_ids", "rounds"}


def test_tracker_and_store_reject_a_round_with_another_number_of_classes(tmp_path):
    store = HistoryStore(tmp_path, C)
    tracker = HistoryTracker.for_strategy("tod", {}, store)
    tracker.update(0, torch.arange(4), random_probs(4, C, seed=0))
    with pytest.raises(HistoryInputError, match=r"^history: round 1: rounds must agree on C=5 classes"):
        tracker.update(1, torch.arange(4), random_probs(4, C + 1, seed=1))
    # a foreign round file with another C, found while streaming the store
    store.append(0, torch.arange(4), random_probs(4, C, seed=0))
    torch.save({"dataset_ids": torch.arange(4), "probs": random_probs(4, 3, seed=0).half()}, tmp_path / "round_0001.pt")
    with pytest.raises(StrategyInputError, match=r"^tod: 'history' rounds must agree on C=5 classes; round file round_0001.pt"):
        get_strategy("tod")(PoolView(pool_ids_N=torch.arange(4), history=store.view(torch.arange(4))), 2, generator=torch.Generator())


def test_tracker_rejects_bad_parameters_before_any_round(tmp_path):
    with pytest.raises(StrategyInputError, match=r"^teacher_student_kl: 'tau' must be a number > 0"):
        HistoryTracker.for_strategy("teacher_student_kl", {"tau": 0.0}, HistoryStore(tmp_path, C))


def test_tod_reads_only_the_last_two_rounds_when_they_cover_the_pool(tmp_path, monkeypatch):
    store = HistoryStore(tmp_path, C)
    for t in range(5):
        store.append(t, torch.arange(30), random_probs(30, C, seed=t))
    view = store.view(torch.arange(30))
    loaded = []
    real_load = RoundFileHistory._load
    monkeypatch.setattr(RoundFileHistory, "_load", lambda self, t: loaded.append(t) or real_load(self, t))
    selection = get_strategy("tod")(PoolView(pool_ids_N=torch.arange(30), history=view), 3, generator=torch.Generator())
    assert set(loaded) == {3, 4}
    dense = TensorHistory(torch.stack([random_probs(30, C, seed=t) for t in range(5)]).half())
    expected = get_strategy("tod")(PoolView(pool_ids_N=torch.arange(30), history=dense), 3, generator=torch.Generator())
    torch.testing.assert_close(selection.scores_N, expected.scores_N)


def test_the_loop_keeps_the_state_and_saves_it_with_the_round_state(tmp_path):
    """run_loop with a refreshed pool subset: the history_state it saves equals a re-read of its round files."""
    import functools

    from experiments.datasets import load_dataset
    from experiments.inference import InferenceSettings
    from experiments.loop import ActiveLearningRun, LoopSettings, run_loop
    from experiments.models import build_model
    from experiments.training import TrainerSettings
    from strategies.history import accumulate_history, check_history_params

    data = load_dataset("synthetic", train_size=200, test_size=50)
    params = {"decay": 0.6, "gamma": 2.0, "window": 3}
    run = ActiveLearningRun(
        dataset=data,
        build_model=functools.partial(build_model, "mlp", input_shape=data.input_shape, num_classes=data.num_classes, hidden=[8]),
        strategy=get_strategy("uncertainty_trend"), strategy_params=params,
        loop=LoopSettings(initial_size=20, query_size=10, rounds=4, pool_subset=80, pool_subset_refresh=True),
        trainer=TrainerSettings(epochs=1, min_steps=3, batch_size=32),
        inference=InferenceSettings(batch_size=128, mc_samples=2),
        seed=0, workdir=tmp_path, device=torch.device("cpu"),
    )
    run_loop(run)
    saved = torch.load(tmp_path / "round_state.pt", weights_only=True)["history_state"]
    store = HistoryStore(tmp_path / "history", data.num_classes)
    tracker = HistoryTracker.for_strategy("uncertainty_trend", params, store)
    tracker.load_state_dict(saved)
    assert tracker.rounds == store.num_rounds == 4
    ids = tracker.dataset_ids_M
    spec = check_history_params("uncertainty_trend", params)
    re_read = accumulate_history(store.view(ids), "cpu", spec.keep, spec.ema_decay, spec.trend_window)
    from kernels.history import uncertainty_trend

    torch.testing.assert_close(uncertainty_trend(tracker.stats, 2.0), uncertainty_trend(re_read, 2.0), atol=1e-6, rtol=0)
    assert (tracker.stats.n_observed_N == 1).any() and (tracker.stats.n_observed_N >= 2).any()
    assert (tmp_path / "history" / "selection.pt").exists()
