"""Tests for experiments.round_state and resuming the loop from it: a `RoundState`
round-trips through save/load (weights_only), the config hash and its first
difference, and a loop stopped after any round and resumed from its state gives
exactly the selections and metrics of a run that was never stopped."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from experiments.history_store import HistoryOwnerError, HistoryStore
from experiments.loop import run_loop
from experiments.round_state import STATE_FILE, RoundState, config_hash, first_difference, save_durably
from tests.experiments.test_loop import dataset, make_run  # noqa: F401 - the fixture is reused

# measured, not computed: they differ between any two runs
TIMING_KEYS = ("train_seconds", "infer_seconds", "record_seconds", "select_seconds", "select_peak_memory_mb")


def test_round_state_round_trip(tmp_path):
    state = RoundState(
        next_round=3, labelled_ids=torch.arange(5), config_hash="abc", run_uid="u1",
        selections=[torch.tensor([7, 8])], results=[{"round_index": 0, "test_accuracy": 0.5}],
        generators={"pool": torch.Generator().manual_seed(1).get_state()},
        strategy_state={"centres": torch.ones(2, 3)}, history_state=None, mlflow_run_id="r1",
        config={"seed": 1, "loop": {"rounds": 6}},
    )
    path = state.save(tmp_path / STATE_FILE)
    loaded = RoundState.load(path)
    assert loaded.next_round == 3 and loaded.config_hash == "abc" and loaded.mlflow_run_id == "r1"
    assert torch.equal(loaded.labelled_ids, state.labelled_ids) and torch.equal(loaded.selections[0], state.selections[0])
    assert torch.equal(loaded.strategy_state["centres"], torch.ones(2, 3))
    assert torch.equal(loaded.generators["pool"], state.generators["pool"])
    assert loaded.config == state.config
    assert not list(tmp_path.glob("*.partial"))
    # a file that is not a state is refused, with the path in the message
    save_durably({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt"):
        RoundState.load(tmp_path / "other.pt")


def test_config_hash_ignores_tracking_and_resume_but_not_seed_or_threads():
    base = {"seed": 0, "loop": {"rounds": 6}, "tracking": {"uri": "a"}, "threads": 1, "resume": "auto"}
    same = dict(base, tracking={"uri": "b"}, resume="never")
    assert config_hash(base) == config_hash(same)
    assert config_hash(base) != config_hash(dict(base, seed=1))
    assert config_hash(base) != config_hash(dict(base, threads=2))
    assert first_difference({"loop": {"rounds": 6, "query_size": 5}}, {"loop": {"rounds": 7, "query_size": 6}}) == "loop.query_size"
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == "b"
    assert first_difference({"a": [1, 2]}, {"a": [1, 2]}) is None


def _comparable(results):
    return [{k: v for k, v in dataclasses.asdict(r).items() if k not in (*TIMING_KEYS, "selected_ids")} for r in results]


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        ("entropy", {}),
        ("random", {"pool_subset": 60, "pool_subset_refresh": True}),
        ("bald", {"warm_start": True, "pool_subset": 80, "pool_subset_refresh": False}),
        ("flip_rate", {}),
    ],
)
def test_a_resumed_loop_equals_an_uninterrupted_one(dataset, tmp_path, strategy, options):  # noqa: F811
    reference = run_loop(make_run(dataset, tmp_path / "reference", strategy, rounds=5, **options))
    for stop_after in (0, 2, 4):
        workdir = tmp_path / f"stopped_{stop_after}"

        def stop(result, stop_after=stop_after):
            if result.round_index == stop_after:
                raise _Stop

        with pytest.raises(_Stop):
            run_loop(make_run(dataset, workdir, strategy, rounds=5, **options), on_round=stop)
        # a crash after RECORD but before the state was saved leaves a round file too many
        if (workdir / "history").is_dir():
            torch.save({"dataset_ids": torch.arange(3), "probs": torch.zeros(3, 3).half()},
                       workdir / "history" / f"round_{stop_after + 1:04d}.pt")
        state = RoundState.load(workdir / STATE_FILE)
        assert state.next_round == stop_after + 1 and not state.finished
        new_rounds = []
        resumed = run_loop(make_run(dataset, workdir, strategy, rounds=5, **options), on_round=new_rounds.append, resume=state)
        assert [r.round_index for r in new_rounds] == list(range(stop_after + 1, 6))
        assert _comparable(resumed) == _comparable(reference)
        for mine, theirs in zip(resumed[:-1], reference[:-1]):
            assert torch.equal(mine.selected_ids, theirs.selected_ids)
        assert RoundState.load(workdir / STATE_FILE).finished


def test_resuming_a_finished_state_runs_nothing(dataset, tmp_path):  # noqa: F811
    run = make_run(dataset, tmp_path, "entropy", rounds=2)
    first = run_loop(run)
    called = []
    again = run_loop(run, on_round=called.append, resume=RoundState.load(tmp_path / STATE_FILE))
    assert called == [] and _comparable(again) == _comparable(first)


def test_history_store_refuses_another_runs_directory(tmp_path):
    HistoryStore(tmp_path / "history", 3, owner="run-a").append(0, torch.arange(2), torch.full((2, 3), 1 / 3))
    HistoryStore(tmp_path / "history", 3, owner="run-a")  # the owner may reopen it
    with pytest.raises(HistoryOwnerError, match="belongs to run run-a"):
        HistoryStore(tmp_path / "history", 3, owner="run-b")
    # round files without an owner file: an unknown run's
    HistoryStore(tmp_path / "legacy", 3).append(0, torch.arange(2), torch.full((2, 3), 1 / 3))
    with pytest.raises(HistoryOwnerError, match="unknown run"):
        HistoryStore(tmp_path / "legacy", 3, owner="run-c")
