"""Draft ``rerun``: on CPU a smoke run reruns identically from its MLflow record; drift refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from experiments import rerun
from experiments.cli import CONFIG_DIR
from experiments.runner import run_experiment
from experiments.tracking import import_mlflow
from strategies import get_strategy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One tracked smoke run (entropy, 2 rounds) in a fresh SQLite store; (workspace, client, run id)."""
    workspace = tmp_path_factory.mktemp("rerun")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "experiment=smoke", "loop.rounds=2", "trainer.min_steps=20", "dataset.train_size=300",
                "dataset.test_size=100", "tracking.experiment=rerun_test",
                f"tracking.uri=sqlite:///{workspace / 'mlflow.db'}", f"tracking.artifact_location={workspace / 'mlruns'}",
            ],
        )
    GlobalHydra.instance().clear()
    run_experiment(cfg, output_dir=workspace / "original", launch_dir=workspace)
    client = import_mlflow().MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("rerun_test").experiment_id])
    return workspace, client, run.info.run_id


def _rerun(workspace: Path, run_id: str, *extra: str) -> int:
    return rerun.main([run_id, "--tracking-uri", f"sqlite:///{workspace / 'mlflow.db'}", *extra])


def test_a_smoke_run_reruns_identically(recorded, capsys, monkeypatch):
    workspace, client, run_id = recorded
    monkeypatch.chdir(workspace)
    assert _rerun(workspace, run_id, "--output-dir", str(workspace / "again")) == 0
    out = capsys.readouterr().out
    assert f"selections and metrics identical to run {run_id}" in out
    assert "drift [code]" not in out and "drift [data]" not in out
    (new,) = [r for r in client.search_runs([client.get_run(run_id).info.experiment_id]) if r.info.run_id != run_id]
    assert new.data.tags["rerun_of"] == run_id
    assert (workspace / "again" / "selections.csv").read_text() == (workspace / "original" / "selections.csv").read_text()


def test_code_and_data_drift_refuse_unless_allowed(recorded, capsys, monkeypatch):
    workspace, client, run_id = recorded
    monkeypatch.chdir(workspace)
    run = client.get_run(run_id)
    saved = {key: run.data.tags[key] for key in ("strategy_code_hash", "dataset_fingerprint")}
    try:
        client.set_tag(run_id, "strategy_code_hash", "0" * 16)
        client.set_tag(run_id, "dataset_fingerprint", "f" * 64)
        assert _rerun(workspace, run_id) == 3
        captured = capsys.readouterr()
        local_hash = get_strategy("entropy").code_hash
        assert f"drift [code] strategy_code_hash: recorded {'0' * 16}, local {local_hash}" in captured.out
        assert f"drift [data] dataset_fingerprint: recorded {'f' * 64}, local {saved['dataset_fingerprint']}" in captured.out
        assert "refused: 2 code/data drift(s); pass --allow-drift" in captured.err
    finally:
        for key, value in saved.items():
            client.set_tag(run_id, key, value)


def test_unknown_run_is_one_line(recorded, capsys, monkeypatch):
    workspace, _, _ = recorded
    monkeypatch.chdir(workspace)
    assert _rerun(workspace, "0" * 32) == 2
    assert capsys.readouterr().err.startswith("alsweep rerun: error: run '" + "0" * 32 + "' not found")
