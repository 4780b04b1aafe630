"""The acceptance smoke sweep, end to end through the ``alsweep`` command:
a joblib multirun of 2 strategies x 2 seeds tracked in MLflow, the leaderboard
built from it, and one job through the submitit_local launcher."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import pytest

from experiments.leaderboard import fetch_runs, latest_sweep_dir
from experiments.tracking import import_mlflow
from tests.experiments.cli_helpers import alsweep_executable, cli_env

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMOKE_ROUNDS, SMOKE_INITIAL, SMOKE_QUERY = 3, 20, 20  # conf/experiment/smoke.yaml


def _alsweep(arguments: list[str], cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [alsweep_executable(), *arguments], cwd=cwd, env=cli_env(cwd), capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, f"alsweep {' '.join(arguments)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _finished_runs(directory: Path, experiment: str):
    client = import_mlflow().MlflowClient(f"sqlite:///{directory / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment '{experiment}'"
    return client, client.search_runs([found.experiment_id])


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sweep")
    _alsweep(
        ["-m", "experiment=smoke", "strategy=entropy,tod", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        directory,
        timeout=600,  # ~1 minute alone; a machine shared with other test runs needs more
    )
    return directory


def test_sweep_tracks_four_finished_runs(swept):
    client, runs = _finished_runs(swept, "smoke")
    assert len(runs) == 4
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert sorted((r.data.tags["strategy"], r.data.tags["seed"]) for r in runs) == [
        ("entropy", "0"), ("entropy", "1"), ("tod", "0"), ("tod", "1"),
    ]
    assert sorted(int(r.data.tags["hydra_job_num"]) for r in runs) == [0, 1, 2, 3]
    sweep_dirs = {r.data.tags["hydra_sweep_dir"] for r in runs}
    assert len(sweep_dirs) == 1
    sweep_dir = Path(sweep_dirs.pop())
    assert sweep_dir.is_absolute() and sweep_dir.is_dir()  # absolute: unique across launch folders
    for run in runs:
        tags = run.data.tags
        for key in ("strategy_version", "dataset", "dataset_fingerprint", "workflow_id", "alsweep_version", "model", "output_dir"):
            assert tags.get(key), key
        assert tags["dataset"] == "synthetic"
        # each job wrote into its own sub-directory of the sweep
        assert Path(tags["output_dir"]).name == f"{tags['hydra_job_num']}_{tags['strategy']}_s{tags['seed']}"
        assert run.data.params["loop.query_size"] == str(SMOKE_QUERY)
    # one workflow per strategy (the seed is not part of it), one fingerprint for all
    workflows = {}
    for run in runs:
        workflows.setdefault(run.data.tags["strategy"], set()).add(run.data.tags["workflow_id"])
    assert all(len(ids) == 1 for ids in workflows.values()) and workflows["entropy"] != workflows["tod"]
    assert len({r.data.tags["dataset_fingerprint"] for r in runs}) == 1

    for run in runs:
        history = client.get_metric_history(run.info.run_id, "test_accuracy")
        assert sorted(m.step for m in history) == list(range(SMOKE_ROUNDS + 1))
        counts = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "labelled_count"))
        assert [v for _, v in counts] == [SMOKE_INITIAL + r * SMOKE_QUERY for r in range(SMOKE_ROUNDS + 1)]
        for key in ("train_seconds", "infer_seconds", "select_seconds", "select_peak_memory_mb"):
            assert len(client.get_metric_history(run.info.run_id, key)) == SMOKE_ROUNDS + 1, key
        assert run.data.tags["device"] == "cpu"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts >= {"config.yaml", "selections.csv", "learning_curve.csv", "learning_curve.png"}
        local = Path(client.download_artifacts(run.info.run_id, "selections.csv", str(swept / "downloads" / run.info.run_id)))
        assert len(local.read_text().splitlines()) == 1 + SMOKE_ROUNDS * SMOKE_QUERY


def test_sweep_runs_are_found_by_sweep_directory(swept):
    uri = f"sqlite:///{swept / 'mlflow.db'}"
    sweep_dir = latest_sweep_dir(uri, "smoke")
    assert sweep_dir is not None
    records = fetch_runs(uri, "smoke", sweep_dir)
    assert len(records) == 4
    assert fetch_runs(uri, "smoke", "outputs/sweeps/not-a-sweep") == []


def test_leaderboard_from_the_sweep(swept):
    result = _alsweep(["leaderboard", "--experiment", "smoke"], swept, timeout=120)
    table_rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == 15 and cells[0].isdigit():
            table_rows[cells[1]] = cells
    assert set(table_rows) == {"entropy", "tod"}, result.stdout
    for cells in table_rows.values():
        assert cells[3] == "2"  # seeds
        assert cells[4] == str(SMOKE_INITIAL + SMOKE_ROUNDS * SMOKE_QUERY)  # labels
        assert re.fullmatch(r"\d\.\d{4}", cells[5])  # mean AULC
        assert re.fullmatch(r"\[\d\.\d{4}, \d\.\d{4}\]", cells[6])  # its 95% CI
    assert "cost columns measured on: cpu" in result.stdout
    assert sorted(cells[0] for cells in table_rows.values()) == ["1", "2"]

    out = swept / "leaderboard" / "smoke"
    rows = list(csv.DictReader((out / "leaderboard.csv").read_text().splitlines()))
    assert sorted(row["strategy"] for row in rows) == ["entropy", "tod"]
    assert all(row["seeds"] == "2" and row["dataset"] == "synthetic" for row in rows)
    assert (out / "learning_curves.png").read_bytes()[:8] == PNG_MAGIC


def test_report_from_the_sweep(swept):
    """`alsweep report` on the smoke sweep: its numbers agree with what every run logged."""
    result = _alsweep(["report", "--experiment", "smoke", "--sweep", "latest"], swept, timeout=240)
    out = swept / "report" / "smoke"
    assert {"report.html", "report.md", "leaderboard.csv", "cd_diagram.png", "penalty_matrix.png"} <= {
        p.name for p in out.iterdir()
    }, result.stdout
    assert (out / "report.html").read_text().count("data:image/png;base64,") == len(list(out.glob("*.png")))
    client, runs = _finished_runs(swept, "smoke")
    areas: dict[str, list[float]] = {}
    for run in runs:
        if "strategy" in run.data.tags:
            areas.setdefault(run.data.tags["strategy"], []).append(run.data.metrics["learning_curve_area"])
    rows = {row["strategy"]: row for row in csv.DictReader((out / "leaderboard.csv").read_text().splitlines())}
    for strategy, values in areas.items():
        assert float(rows[strategy]["aulc_mean"]) == pytest.approx(sum(values) / len(values))
        assert min(values) - 1e-12 <= float(rows[strategy]["aulc_ci_low"]) <= float(rows[strategy]["aulc_ci_high"]) <= max(values) + 1e-12
        assert rows[strategy]["device"] == "cpu"
        assert float(rows[strategy]["select_peak_memory_mb"]) >= 0
    # the report run carries the files and is not read back as an AL run
    reports = [run for run in runs if run.data.tags.get("alsweep_report") == "true"]
    assert len(reports) == 1
    assert {a.path for a in client.list_artifacts(reports[0].info.run_id, "report")} >= {"report/report.html", "report/report.md"}


def test_submitit_local_launcher(tmp_path):
    """One smoke job through submitit's local executor (a separate process, as on a cluster)."""
    _alsweep(["-m", "experiment=smoke", "strategy=margin", "hydra/launcher=submitit_local"], tmp_path, timeout=240)
    _, runs = _finished_runs(tmp_path, "smoke")
    assert len(runs) == 1
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.tags["strategy"] == "margin" and run.data.tags["hydra_job_num"] == "0"
    assert list((tmp_path / "outputs" / "sweeps").glob("*/.submitit/*/*_log.out"))
