"""Tests for experiments.runner and experiments.tracking: one AL run end to end into a
SQLite MLflow store in tmp_path (tags, params, per-round metrics, artifacts), a crash
leaves the run FAILED with the finished rounds logged, a config error creates no run,
and tracking URIs are resolved or rejected in one line."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import experiments.cli
import experiments.loop as loop_module
from experiments.config import resolved_container, workflow_id
from strategies import get_strategy
from experiments.errors import ConfigError, TrackingError
from experiments.runner import REPO_ROOT, git_commit, hydra_context, run_experiment
from experiments.tracking import (
    TrackingSettings,
    import_mlflow,
    prepare_store,
    resolve_artifact_location,
    resolve_tracking_uri,
)
from strategies import UnknownNameError
from strategies.code_hash import kernels_code_hash
from experiments.runner import alsweep_code_hash

ROUNDS, INITIAL, QUERY = 2, 20, 10
PER_ROUND_METRICS = (
    "test_accuracy", "test_loss", "labelled_count", "pool_size", "train_seconds", "infer_seconds",
    "record_seconds", "select_seconds", "train_steps",
)


@pytest.fixture(scope="module")
def composer():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(experiments.cli.CONFIG_DIR), version_base="1.3"):
        yield lambda *overrides, hydra=False: compose(
            "config",
            overrides=[
                "experiment=smoke", f"loop.rounds={ROUNDS}", f"loop.query_size={QUERY}", "trainer.min_steps=20",
                "tracking.experiment=runner_test", "dataset.train_size=300", "dataset.test_size=100",
                *overrides,
            ],
            return_hydra_config=hydra,
        )
    GlobalHydra.instance().clear()


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return tmp_path


@pytest.fixture(scope="module")
def mlflow():
    return import_mlflow()


def _client(mlflow, workspace: Path):
    return mlflow.MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")


def _runs(client, experiment: str = "runner_test"):
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _artifact_text(client, run_id: str, name: str, workspace: Path) -> str:
    return Path(client.download_artifacts(run_id, name, str(workspace))).read_text()


def test_run_experiment_tracks_everything(composer, workspace, mlflow):
    cfg = composer()
    summary = run_experiment(cfg, output_dir=workspace / "out", launch_dir=workspace)
    assert set(summary) == {"final_test_accuracy", "learning_curve_area"}
    assert 0 <= summary["final_test_accuracy"] <= 1 and 0 <= summary["learning_curve_area"] <= 1
    assert (workspace / "mlflow.db").is_file()

    client = _client(mlflow, workspace)
    runs = _runs(client)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "entropy-synthetic-s0"

    tags = run.data.tags
    assert tags["strategy"] == "entropy" and tags["strategy_version"] == get_strategy("entropy").version
    assert tags["strategy_code_hash"] == get_strategy("entropy").code_hash and tags["kernels_code_hash"] == kernels_code_hash()
    assert tags["alsweep_code_hash"] == alsweep_code_hash()
    assert tags["dataset"] == "synthetic" and len(tags["dataset_fingerprint"]) == 64
    assert tags["workflow_id"] == workflow_id(resolved_container(cfg))
    assert tags["seed"] == "0" and tags["model"] == "mlp"
    assert tags["alsweep_version"] not in ("", None)
    assert tags["output_dir"] == str(workspace / "out")
    assert "hydra_sweep_dir" not in tags and "hydra_job_num" not in tags  # not a multirun
    if (REPO_ROOT / ".git").exists():
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert tags["git_commit"] == head.strip()
        assert tags["git_dirty"] in ("true", "false")
    else:
        assert "git_commit" not in tags

    params = run.data.params
    assert params["loop.query_size"] == str(QUERY) and params["loop.rounds"] == str(ROUNDS)
    assert params["strategy.name"] == "entropy" and params["model.hidden"] == "[32]"
    assert params["seed"] == "0" and params["tracking.experiment"] == "runner_test"
    assert not any(key.startswith("hydra") for key in params)

    steps = list(range(ROUNDS + 1))
    for key in PER_ROUND_METRICS:
        assert [step for step, _ in _history(client, run.info.run_id, key)] == steps, key
    assert [v for _, v in _history(client, run.info.run_id, "labelled_count")] == [INITIAL + r * QUERY for r in steps]
    assert all(v > 0 for _, v in _history(client, run.info.run_id, "train_seconds"))
    assert _history(client, run.info.run_id, "final_test_accuracy") == [(ROUNDS, summary["final_test_accuracy"])]
    assert run.data.metrics["learning_curve_area"] == pytest.approx(summary["learning_curve_area"])

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    # history_summary.png: loop.record_history is on by default
    expected = {"config.yaml", "overrides.txt", "selections.csv", "learning_curve.csv", "learning_curve.png", "history_summary.png"}
    # git_diff.patch exactly when the checkout the test runs from has uncommitted changes
    assert artifacts == expected | ({"git_diff.patch"} if tags.get("git_dirty") == "true" else set())
    assert _artifact_text(client, run.info.run_id, "overrides.txt", workspace) == ""  # composed outside a Hydra job
    selections = list(csv.DictReader(_artifact_text(client, run.info.run_id, "selections.csv", workspace).splitlines()))
    assert len(selections) == ROUNDS * QUERY
    assert sorted({int(row["round_index"]) for row in selections}) == list(range(ROUNDS))
    assert len({row["dataset_index"] for row in selections}) == ROUNDS * QUERY
    curve = list(csv.DictReader(_artifact_text(client, run.info.run_id, "learning_curve.csv", workspace).splitlines()))
    assert [int(row["round_index"]) for row in curve] == steps
    assert "query_size: 10" in _artifact_text(client, run.info.run_id, "config.yaml", workspace)
    png = Path(client.download_artifacts(run.info.run_id, "learning_curve.png", str(workspace / "dl"))).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # artifacts live under the launch directory's mlruns/
    assert run.info.artifact_uri.startswith((workspace / "mlruns").as_uri())
    # and the run's output directory holds the round state and history
    assert (workspace / "out" / "round_state.pt").is_file()
    assert len(list((workspace / "out" / "history").glob("round_*.pt"))) == ROUNDS


def test_a_composed_config_with_hydra_node_runs(composer, workspace):
    """compose(return_hydra_config=True) carries job-time interpolations; the runner must ignore them."""
    summary = run_experiment(composer("tracking=disabled", hydra=True), output_dir=workspace / "out", launch_dir=workspace)
    assert 0 <= summary["final_test_accuracy"] <= 1


def test_tracking_disabled_writes_no_store(composer, workspace):
    run_experiment(composer("tracking=disabled"), output_dir=workspace / "out", launch_dir=workspace)
    assert not (workspace / "mlflow.db").exists() and not (workspace / "mlruns").exists()
    out = workspace / "out"
    for name in ("config.yaml", "selections.csv", "learning_curve.csv", "learning_curve.png", "round_state.pt"):
        assert (out / name).is_file(), name
    assert len((out / "selections.csv").read_text().splitlines()) == 1 + ROUNDS * QUERY


def test_default_output_dir_is_the_cwd_outside_hydra(composer, workspace):
    assert hydra_context() == {}
    run_experiment(composer("tracking=disabled"))
    assert (workspace / "round_state.pt").is_file() and (workspace / "selections.csv").is_file()


def _crash_at_round(monkeypatch, round_to_fail: int, error: BaseException):
    original = loop_module.select
    calls = []

    def failing_select(*args, **kwargs):
        calls.append(1)
        if len(calls) > round_to_fail:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(loop_module, "select", failing_select)


def test_a_crash_marks_the_run_failed_with_the_finished_rounds(composer, workspace, mlflow, monkeypatch):
    _crash_at_round(monkeypatch, 1, RuntimeError("boom in round 1"))
    with pytest.raises(RuntimeError, match="boom in round 1"):
        run_experiment(composer(), output_dir=workspace / "out", launch_dir=workspace)
    client = _client(mlflow, workspace)
    (run,) = _runs(client)
    assert run.info.status == "FAILED"
    assert run.info.end_time is not None
    for key in ("test_accuracy", "labelled_count", "select_seconds"):
        assert [step for step, _ in _history(client, run.info.run_id, key)] == [0], key
    assert "final_test_accuracy" not in run.data.metrics
    # what round 0 selected, and its learning-curve point, are kept as evidence
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "selections.csv", "learning_curve.csv"} <= artifacts
    selections = _artifact_text(client, run.info.run_id, "selections.csv", workspace).splitlines()
    assert len(selections) == 1 + QUERY and all(line.startswith("0,") for line in selections[1:])


def test_ctrl_c_marks_the_run_killed(composer, workspace, mlflow, monkeypatch):
    _crash_at_round(monkeypatch, 0, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_experiment(composer(), output_dir=workspace / "out", launch_dir=workspace)
    (run,) = _runs(_client(mlflow, workspace))
    assert run.info.status == "KILLED"


@pytest.fixture(scope="module")
def prepared_store(tmp_path_factory):
    """A store with the experiment created, as the Hydra callback leaves it before any job (shared: creating one costs ~1 s)."""
    directory = tmp_path_factory.mktemp("store")
    prepare_store(TrackingSettings(experiment="runner_test"), directory)
    return directory


@pytest.mark.parametrize(
    "overrides, error, text",
    [
        (["loop.initial_size=5000"], ConfigError, "loop.initial_size"),
        (["loop.rounds=100"], ConfigError, "loop.rounds"),
        (["strategy.name=bals"], UnknownNameError, "did you mean 'bald'"),
        (["strategy=bald", "model.dropout=0.0"], ConfigError, "model.dropout"),
        (["model.hidden=[]"], ConfigError, "model.hidden"),
        (["+dataset.colour=1"], ConfigError, "dataset.colour"),
        (["device=tpu"], ConfigError, "device"),
    ],
)
def test_a_config_error_creates_no_run(composer, prepared_store, tmp_path, mlflow, monkeypatch, overrides, error, text):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=text) as info:
        run_experiment(composer(*overrides), output_dir=tmp_path / "out", launch_dir=prepared_store)
    assert "\n" not in str(info.value)
    assert _runs(_client(mlflow, prepared_store)) == []
    assert not (tmp_path / "out").exists()  # nothing written before the checks pass


def test_two_runs_share_the_store_and_the_workflow_id_across_seeds(composer, workspace, mlflow):
    for seed in (0, 1):
        run_experiment(composer(f"seed={seed}"), output_dir=workspace / f"out{seed}", launch_dir=workspace)
    runs = _runs(_client(mlflow, workspace))
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["workflow_id"] for r in runs}) == 1
    assert {r.data.tags["seed"] for r in runs} == {"0", "1"}


# --------------------------------------------------------------------------- tracking URIs


def test_resolve_tracking_uri(tmp_path):
    assert resolve_tracking_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri("sqlite:///sub/dir/x.db", tmp_path) == f"sqlite:///{tmp_path / 'sub/dir/x.db'}"
    assert resolve_tracking_uri("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert resolve_tracking_uri("http://host:5000", tmp_path) == "http://host:5000"
    assert resolve_tracking_uri("https://host", tmp_path) == "https://host"
    assert resolve_tracking_uri("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"
    # the result is absolute: a job running elsewhere writes to the same database
    assert resolve_tracking_uri("sqlite:///mlflow.db", tmp_path).startswith("sqlite:////")


@pytest.mark.parametrize("uri", ["mlflow.db", "./mlruns", "/abs/mlruns", "file:///tmp/mlruns", "sqlite:/x.db", ""])
def test_resolve_tracking_uri_rejects_paths_and_file_stores(tmp_path, uri):
    with pytest.raises(ConfigError) as info:
        resolve_tracking_uri(uri, tmp_path)
    message = str(info.value)
    assert "tracking.uri" in message and f"'{uri}'" in message and "\n" not in message


def test_resolve_artifact_location(tmp_path):
    local = TrackingSettings(uri="sqlite:///m.db", artifact_location="mlruns")
    assert resolve_artifact_location(local, tmp_path) == (tmp_path / "mlruns").as_uri()
    assert resolve_artifact_location(TrackingSettings(artifact_location="s3://b/p"), tmp_path) == "s3://b/p"
    assert resolve_artifact_location(TrackingSettings(artifact_location=None), tmp_path) is None
    server = TrackingSettings(uri="http://h:5000", artifact_location="mlruns")
    assert resolve_artifact_location(server, tmp_path) == "mlruns"  # the server decides


def test_prepare_store_is_idempotent(workspace, mlflow):
    settings = TrackingSettings(experiment="twice")
    first = prepare_store(settings, workspace)
    assert prepare_store(settings, workspace) == first
    experiment = _client(mlflow, workspace).get_experiment_by_name("twice")
    assert experiment.experiment_id == first
    assert experiment.artifact_location == (workspace / "mlruns").as_uri()


def test_a_bad_tracking_uri_fails_before_training(composer, workspace):
    with pytest.raises(ConfigError, match="tracking.uri"):
        run_experiment(composer("tracking.uri=mlruns"), output_dir=workspace / "out", launch_dir=workspace)


def test_git_commit():
    commit = git_commit()
    if (REPO_ROOT / ".git").exists():
        assert commit is not None
        sha, dirty = commit
        assert len(sha) == 40 and isinstance(dirty, bool)
    else:
        assert commit is None


def test_an_unreachable_tracking_server_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = TrackingSettings(uri="http://127.0.0.1:9", experiment="nowhere", artifact_location=None)
    with pytest.raises(TrackingError) as info:
        prepare_store(settings, tmp_path)
    message = str(info.value)
    # the connectivity probe answers before MLflow's HTTP retries start
    assert message.startswith("tracking.uri: no MLflow server reachable at 'http://127.0.0.1:9'") and "\n" not in message
