"""``alsweep rerun`` through the console script: on CPU a smoke run reruns identically as a new run; drift refuses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from experiments.tracking import import_mlflow
from strategies import get_strategy
from tests.experiments.cli_helpers import alsweep_executable, cli_env

pytestmark = pytest.mark.slow

FAST = ("experiment=smoke", "loop.rounds=2", "trainer.min_steps=20", "dataset.train_size=300", "dataset.test_size=100")


def _alsweep(directory: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [alsweep_executable(), *arguments], cwd=directory, env=cli_env(directory),
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One tracked smoke run (entropy, 2 rounds) made by ``alsweep``; (workspace, client, run id)."""
    workspace = tmp_path_factory.mktemp("rerun")
    result = _alsweep(workspace, *FAST, "trainer.epochs=4")
    assert result.returncode == 0, result.stderr[-2000:]
    client = import_mlflow().MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    return workspace, client, run.info.run_id


def test_a_smoke_run_reruns_identically_as_a_new_run(recorded):
    workspace, client, run_id = recorded
    result = _alsweep(workspace, "rerun", run_id, "--output-dir", "again")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert f"selections and metrics identical to run {run_id}" in result.stdout
    assert "drift [code]" not in result.stdout and "drift [data]" not in result.stdout
    runs = client.search_runs([client.get_run(run_id).info.experiment_id])
    (new,) = [r for r in runs if r.info.run_id != run_id]
    assert new.info.status == "FINISHED" and new.data.tags["rerun_of"] == run_id
    assert f"rerun {new.info.run_id}:" in result.stdout
    original_dir = Path(client.get_run(run_id).data.tags["output_dir"])
    assert (workspace / "again" / "selections.csv").read_text() == (original_dir / "selections.csv").read_text()
    # Hydra's overrides were logged, and the rerun reports them and logs them again for the new run
    recorded_overrides = (original_dir / "overrides.txt").read_text().splitlines()
    assert recorded_overrides == [*FAST, "trainer.epochs=4"]
    assert f"recorded overrides: {' '.join(recorded_overrides)}" in result.stdout
    assert (workspace / "again" / "overrides.txt").read_text().splitlines() == recorded_overrides
    dirty_lines = [line for line in result.stdout.splitlines() if line.startswith("drift [info] git_dirty: recorded true")]
    if client.get_run(run_id).data.tags.get("git_dirty") == "true":
        # the tests ran from a checkout with uncommitted changes: the diff was saved and the rerun says so in one line
        assert len(dirty_lines) == 1 and "saved as its git_diff.patch artifact" in dirty_lines[0]
        assert (original_dir / "git_diff.patch").read_text().startswith("diff --git ")
    else:
        assert dirty_lines == [] and not (original_dir / "git_diff.patch").exists()


def test_code_and_data_drift_refuse_unless_allowed(recorded):
    workspace, client, run_id = recorded
    run = client.get_run(run_id)
    saved = {key: run.data.tags[key] for key in ("strategy_code_hash", "dataset_fingerprint")}
    try:
        client.set_tag(run_id, "strategy_code_hash", "0" * 16)
        client.set_tag(run_id, "dataset_fingerprint", "f" * 64)
        before = len(client.search_runs([run.info.experiment_id]))
        result = _alsweep(workspace, "rerun", run_id)
        assert result.returncode == 3, result.stdout + result.stderr[-2000:]
        local_hash = get_strategy("entropy").code_hash
        assert f"drift [code] strategy_code_hash: recorded {'0' * 16}, local {local_hash}" in result.stdout
        assert f"drift [data] dataset_fingerprint: recorded {'f' * 64}, local {saved['dataset_fingerprint']}" in result.stdout
        assert result.stderr.strip() == "alsweep: error: rerun refused: 2 code/data drift(s); pass --allow-drift to rerun anyway"
        assert len(client.search_runs([run.info.experiment_id])) == before  # refused: nothing ran
    finally:
        for key, value in saved.items():
            client.set_tag(run_id, key, value)


def test_unknown_run_is_one_line(recorded):
    workspace, _, _ = recorded
    result = _alsweep(workspace, "rerun", "0" * 32)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("alsweep: error: run '" + "0" * 32 + "' not found")
