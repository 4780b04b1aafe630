"""``alsweep leaderboard`` / ``alsweep report`` on an MLflow store of synthetic runs with hand-computed answers:
a known winner, a tie, and two versions of one strategy that must never be averaged. Plus the
bounded MLflow reading, filter-string escaping, and a headless-Chromium screenshot of report.html."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from experiments import mlflow_reader
from experiments.leaderboard import main as leaderboard_main
from experiments.mlflow_reader import METRIC_KEYS, fetch_runs, quote_filter_value
from experiments.report import main as report_main
from experiments.tracking import import_mlflow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COUNTS_T = np.array([100, 200, 300, 400, 500], dtype=float)
SEED_OFFSET_S = np.array([0.0, 0.03, -0.02])  # seeds differ far more than the strategies
RANDOM_S_T = 0.5 + 0.05 * np.arange(5)[None, :] + SEED_OFFSET_S[:, None]
# per-seed offsets to random, constant over rounds, so each AULC difference equals the offset
WINNER = np.array([0.010, 0.011, 0.012])  # mean 0.011, sd 0.001, t = 19.05
TIE = np.array([0.01, -0.02, 0.01])  # mean 0: p = 1
OLD_MARGIN, NEW_MARGIN = 0.05, -0.05  # v1.0 and v2.0; averaging them would give a tie


def _p_two_sided_df2(t: float) -> float:
    # Student t with 2 degrees of freedom: P(|T| > t) = 1 - t / sqrt(t^2 + 2)
    return 1 - t / math.sqrt(t * t + 2)


def _log_run(client, experiment_id, strategy, version, seed, accuracies_T, sweep_dir="/sweeps/a", device="cpu"):
    run = client.create_run(
        experiment_id, run_name=f"{strategy}-s{seed}",
        tags={
            "strategy": strategy, "strategy_version": version, "dataset": "synthetic", "seed": str(seed),
            "workflow_id": f"wf-{strategy}", "git_commit": "abcdef1234567890", "git_dirty": "false",
            "device": device, "hydra_sweep_dir": sweep_dir,
        },
    )
    from mlflow.entities import Metric, Param

    params = [Param("loop.query_size", "100"), Param("strategy.name", strategy), Param("seed", str(seed))]
    metrics = []
    for step, (count, accuracy) in enumerate(zip(COUNTS_T, accuracies_T)):
        values = {
            "test_accuracy": accuracy, "labelled_count": count, "select_seconds": 0.5 if step < 4 else 0.0,
            "infer_seconds": 2.0 if step < 4 else 0.0, "select_peak_memory_mb": 10.0 * (step + 1) if step < 4 else 0.0,
        }
        metrics += [Metric(key, float(value), 0, step) for key, value in values.items()]
    client.log_batch(run.info.run_id, metrics=metrics, params=params, synchronous=True)
    client.set_terminated(run.info.run_id, "FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report_store")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    client = import_mlflow().MlflowClient(uri)
    experiment_id = client.create_experiment("synthetic_study", artifact_location=(directory / "mlruns").as_uri())
    for seed in range(3):
        _log_run(client, experiment_id, "random", "1.0", seed, RANDOM_S_T[seed])
        _log_run(client, experiment_id, "winner", "1.0", seed, RANDOM_S_T[seed] + WINNER[seed])
        _log_run(client, experiment_id, "tie", "1.0", seed, RANDOM_S_T[seed] + TIE[seed])
        _log_run(client, experiment_id, "margin", "1.0", seed, RANDOM_S_T[seed] + OLD_MARGIN)
        _log_run(client, experiment_id, "margin", "2.0", seed, RANDOM_S_T[seed] + NEW_MARGIN)
    # an unfinished run is not read
    running = client.create_run(experiment_id, tags={"strategy": "random", "strategy_version": "1.0", "seed": "9"})
    client.log_metric(running.info.run_id, "test_accuracy", 0.99, step=0)
    return directory, uri


def _rows(path: Path) -> dict[str, dict[str, str]]:
    return {row["label"]: row for row in csv.DictReader(path.read_text().splitlines())}


def test_leaderboard_statistics_match_the_hand_computed_answers(store, monkeypatch, capsys):
    directory, uri = store
    monkeypatch.chdir(directory)
    assert leaderboard_main(["--experiment", "synthetic_study", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    rows = _rows(directory / "leaderboard" / "synthetic_study" / "leaderboard.csv")
    # default: each strategy's newest version only; margin v1.0 is hidden and the table says so
    assert set(rows) == {"random", "winner", "tie", "margin"}
    assert rows["margin"]["version"] == "2.0"
    assert "synthetic/margin: showing version 2.0; older versions 1.0 hidden" in out
    random_aulc = float(np.mean([np.trapezoid(c, COUNTS_T) / 400 for c in RANDOM_S_T]))
    assert float(rows["random"]["aulc_mean"]) == pytest.approx(random_aulc)
    # known winner: +0.011, p from the closed form, seeds needed for delta 0.005 with sd 0.001 (d = 5): 3
    winner = rows["winner"]
    assert float(winner["vs_random_mean"]) == pytest.approx(0.011)
    assert float(winner["vs_random_p"]) == pytest.approx(_p_two_sided_df2(0.011 / (0.001 / math.sqrt(3))), rel=1e-6)
    assert float(winner["vs_random_ci_low"]) == pytest.approx(0.010) and float(winner["vs_random_ci_high"]) == pytest.approx(0.012)
    assert float(winner["seeds_needed"]) == 3
    assert float(winner["aulc_normalised"]) == pytest.approx(1.0)  # the best row of the setting
    assert winner["rank"] == "1"
    # tie: mean difference 0, t = 0, p = 1; normalised AULC 0
    tie = rows["tie"]
    assert float(tie["vs_random_mean"]) == pytest.approx(0.0, abs=1e-12)
    assert float(tie["vs_random_p"]) == pytest.approx(1.0)
    assert float(tie["aulc_normalised"]) == pytest.approx(0.0, abs=1e-9)
    # the newest margin: -0.05 on every seed (no spread): p = 0, normalised -0.05 / 0.011
    assert float(rows["margin"]["vs_random_mean"]) == pytest.approx(-0.05)
    assert float(rows["margin"]["vs_random_p"]) == 0.0
    assert float(rows["margin"]["aulc_normalised"]) == pytest.approx(-0.05 / 0.011)
    # cost: mean over the 4 selecting rounds; peak = max over rounds (40 MiB), labelled with the device
    assert float(winner["select_seconds_mean"]) == pytest.approx(0.5)
    assert float(winner["infer_seconds_mean"]) == pytest.approx(2.0)
    assert float(winner["select_peak_memory_mb"]) == pytest.approx(40.0)
    assert winner["device"] == "cpu"
    assert "cost columns measured on: cpu" in out and "95% CI" in out
    assert float(rows["margin"]["seeds_needed"]) == 2  # the same difference on every seed
    assert all(row["seeds"] == "3" for row in rows.values())


def test_versions_are_never_averaged(store, monkeypatch, capsys):
    directory, uri = store
    monkeypatch.chdir(directory)
    out_dir = directory / "all_versions"
    assert leaderboard_main(["--experiment", "synthetic_study", "--tracking-uri", uri, "--all-versions",
                             "--output-dir", str(out_dir)]) == 0
    rows = _rows(out_dir / "leaderboard.csv")
    assert {"margin v1.0", "margin v2.0"} <= set(rows)
    assert float(rows["margin v1.0"]["vs_random_mean"]) == pytest.approx(0.05)
    assert float(rows["margin v2.0"]["vs_random_mean"]) == pytest.approx(-0.05)
    assert rows["margin v1.0"]["seeds"] == rows["margin v2.0"]["seeds"] == "3"  # not 6
    assert "never averaged" in capsys.readouterr().out
    # pinning a version
    pinned = directory / "pinned"
    assert leaderboard_main(["--experiment", "synthetic_study", "--tracking-uri", uri, "--strategy-version", "margin=1.0",
                             "--output-dir", str(pinned)]) == 0
    rows = _rows(pinned / "leaderboard.csv")
    assert rows["margin"]["version"] == "1.0" and rows["margin"]["rank"] == "1"


def test_reading_is_bounded_and_does_not_call_per_run_history(store, monkeypatch):
    _, uri = store
    calls = []
    client_class = import_mlflow().MlflowClient
    monkeypatch.setattr(client_class, "get_metric_history", lambda *a, **k: pytest.fail("per-run history call"))
    original_search = client_class.search_runs
    monkeypatch.setattr(client_class, "search_runs", lambda self, *a, **k: calls.append("search") or original_search(self, *a, **k))
    records_before = fetch_runs(uri, "synthetic_study")
    store_class = type(client_class(uri)._tracking_client.store)
    original_bulk = store_class.get_metric_history_bulk_interval
    monkeypatch.setattr(store_class, "get_metric_history_bulk_interval",
                        lambda self, *a, **k: calls.append("bulk") or original_bulk(self, *a, **k))
    calls.clear()
    monkeypatch.setattr(mlflow_reader, "BULK_RUNS", 4)  # 15 runs -> 4 chunks per key
    records = fetch_runs(uri, "synthetic_study")
    assert len(records) == len(records_before) == 15
    assert calls.count("search") == 1
    assert calls.count("bulk") == len(METRIC_KEYS) * 4


def test_filter_values_are_quoted_safely(store, tmp_path):
    _, uri = store
    assert quote_filter_value("/a/b") == "'/a/b'"
    assert quote_filter_value("it's") == '"it\'s"'
    assert quote_filter_value("both ' and \"") is None
    client = import_mlflow().MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("synthetic_study").experiment_id
    for sweep in ("/sweeps/it's", '/sweeps/say "hi" it\'s'):
        _log_run(client, experiment_id, "quoted", "1.0", 0, RANDOM_S_T[0], sweep_dir=sweep)
        found = fetch_runs(uri, "synthetic_study", sweep)
        assert [r.strategy for r in found] == ["quoted"] and found[0].sweep_dir == sweep
        client.delete_run(client.search_runs([experiment_id], "tags.strategy = 'quoted'")[0].info.run_id)


@pytest.fixture(scope="module")
def report_dir(store):
    directory, uri = store
    out = directory / "report_out"
    import os

    cwd = os.getcwd()
    os.chdir(directory)
    try:
        assert report_main(["--experiment", "synthetic_study", "--tracking-uri", uri, "--output-dir", str(out)]) == 0
    finally:
        os.chdir(cwd)
    return out


def test_report_files_and_mlflow_artifacts(store, report_dir):
    directory, uri = store
    html = (report_dir / "report.html").read_text()
    md = (report_dir / "report.md").read_text()
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    assert "penalty_matrix.png" in pngs and "cd_diagram.png" in pngs and any(p.startswith("curves_") for p in pngs)
    for name in pngs:
        assert (report_dir / name).read_bytes()[:8] == PNG_MAGIC
    # self-contained: every image is embedded, nothing is fetched
    assert html.count("data:image/png;base64,") == len(pngs)
    assert "src=\"http" not in html and "<link" not in html
    for text in (html, md):
        for heading in ("Leaderboard", "Learning curves", "penalty matrix", "Critical-difference", "Cost"):
            assert heading.lower() in text.lower()
        assert "winner" in text and "95% CI" in text
    # the Markdown links the PNGs next to it
    assert "](penalty_matrix.png)" in md
    # logged to MLflow as one report run, which the readers skip
    client = import_mlflow().MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("synthetic_study").experiment_id
    (run,) = client.search_runs([experiment_id], "tags.alsweep_report = 'true'")
    assert run.info.status == "FINISHED"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/penalty_matrix.png"} <= logged
    assert all(r.strategy != "" for r in fetch_runs(uri, "synthetic_study"))


def test_report_penalty_and_cd_numbers(store):
    """The matrix drawn in the report, recomputed from the same groups: winner beats random in all 5 rounds."""
    from experiments.comparison import critical_difference, group_runs, penalty, select_versions, settings

    _, uri = store
    groups = group_runs(select_versions(fetch_runs(uri, "synthetic_study"))[0])
    names, matrix = penalty(settings(groups))
    at = {name: i for i, name in enumerate(names)}
    assert matrix[at["winner"], at["random"]] == pytest.approx(1.0)
    assert matrix[at["tie"], at["random"]] == 0.0 and matrix[at["random"], at["tie"]] == 0.0
    # margin v2.0 is 0.05 below random on every seed and round: no spread, a loss in all 5 rounds
    assert matrix[at["random"], at["margin"]] == pytest.approx(1.0)
    cd = critical_difference(settings(groups))
    assert cd.block_kind == "dataset x setting x seed" and cd.result.blocks == 3
    ranks = dict(zip(cd.result.names, cd.result.average_ranks))
    # offsets per seed: winner .010/.011/.012, tie .01/-.02/.01, random 0, margin -.05 ->
    # seed 0: winner = tie (1.5 each), random 3; seed 1: winner 1, random 2, tie 3; seed 2: winner 1, tie 2, random 3
    assert ranks == pytest.approx({"winner": 3.5 / 3, "tie": 6.5 / 3, "random": 8 / 3, "margin": 4.0})


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_screenshot_in_headless_chromium(report_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed here (CI installs it: .ci/run)")
    from PIL import Image

    screenshot = report_dir / "report_screenshot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1400,2600", f"--screenshot={screenshot}", (report_dir / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1400, 2600)
    pixels = np.asarray(image)
    # not blank: many colours, and a good share of the page is not background white
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    assert (pixels.sum(axis=2) < 600).mean() > 0.03
