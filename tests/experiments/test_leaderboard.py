"""Tests for the leaderboard's pure functions (learning-curve area, rows, de-duplication,
labels, mean curves) and for ``main()`` on an empty store. The statistics columns are
checked against hand-computed answers in test_statistics.py and test_report.py."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from experiments.curves import learning_curve_area, plot_learning_curves
from experiments.leaderboard import (
    LeaderboardRow,
    RunRecord,
    build_rows,
    group_runs,
    latest_per_seed,
    main,
    write_csv,
)
from experiments.leaderboard import mean_curves as mean_curves_of_groups


def rows_of(records):
    return build_rows(group_runs(records))


def mean_curves(records):
    return mean_curves_of_groups(group_runs(records))


def record(
    strategy="entropy", seed="0", accuracies=(0.5, 0.6, 0.7), counts=None, dataset="synthetic", workflow=None,
    start_time=0, select=None, run_id=None, rounds=None, setting=None, version="1.0",
) -> RunRecord:
    accuracies = np.asarray(accuracies, dtype=float)
    size = accuracies.size
    return RunRecord(
        run_id=run_id or f"{strategy}-{seed}-{start_time}",
        dataset=dataset,
        strategy=strategy,
        strategy_version=version,
        workflow_id=workflow or f"wf-{strategy}-{dataset}",
        seed=str(seed),
        start_time=start_time,
        rounds_R=np.asarray(rounds if rounds is not None else range(size), dtype=np.int64),
        labelled_counts_R=np.asarray(counts if counts is not None else [100 * (r + 1) for r in range(size)], dtype=float),
        accuracies_R=accuracies,
        select_seconds_R=np.asarray(select if select is not None else [0.1] * (size - 1) + [0.0], dtype=float),
        setting_id=setting or f"setting-{dataset}",  # all strategies of a dataset share one setting
    )


# --------------------------------------------------------------------------- learning_curve_area


@pytest.mark.parametrize(
    "counts, accuracies, expected",
    [
        ([0, 1], [0.0, 1.0], 0.5),
        ([100, 200, 300], [0.5, 0.5, 0.5], 0.5),
        ([100, 200, 300], [0.4, 0.6, 0.8], 0.6),
        ([0, 1, 3], [0.0, 1.0, 1.0], (0.5 + 2.0) / 3),  # uneven spacing
        ([10, 20, 30, 40], [0.1, 0.3, 0.3, 0.9], (0.2 + 0.3 + 0.6) / 3),
    ],
)
def test_area_known_answers(counts, accuracies, expected):
    assert learning_curve_area(counts, accuracies) == pytest.approx(expected)


def test_area_single_point_and_degenerate_cases():
    assert learning_curve_area([100], [0.73]) == pytest.approx(0.73)
    assert learning_curve_area([50, 50], [0.2, 0.4]) == pytest.approx(0.3)  # no label range: the mean
    assert np.isnan(learning_curve_area([], []))


def test_area_unsorted_x():
    assert learning_curve_area([300, 100, 200], [0.8, 0.4, 0.6]) == pytest.approx(0.6)
    assert learning_curve_area([1, 0], [1.0, 0.0]) == pytest.approx(0.5)


def test_area_is_scale_free_in_labels():
    a = learning_curve_area([10, 20, 30], [0.2, 0.5, 0.9])
    assert learning_curve_area([1000, 2000, 3000], [0.2, 0.5, 0.9]) == pytest.approx(a)
    assert 0.2 <= a <= 0.9


# --------------------------------------------------------------------------- rows


def test_build_rows_ranks_by_mean_area_with_sample_std():
    records = [
        record("entropy", "0", [0.5, 0.7, 0.9]),
        record("entropy", "1", [0.5, 0.7, 0.7]),
        record("random", "0", [0.5, 0.6, 0.7]),
        record("random", "1", [0.5, 0.6, 0.6]),
        record("tod", "0", [0.6, 0.8, 0.9]),  # one seed only
    ]
    rows = rows_of(records)
    assert [row.strategy for row in rows] == ["tod", "entropy", "random"]
    assert [row.rank for row in rows] == [1, 2, 3]
    entropy = rows[1]
    areas = [learning_curve_area([100, 200, 300], a) for a in ([0.5, 0.7, 0.9], [0.5, 0.7, 0.7])]
    assert entropy.aulc_mean == pytest.approx(np.mean(areas))
    assert entropy.aulc_std == pytest.approx(np.std(areas, ddof=1))  # sample std over seeds
    assert entropy.aulc_std == pytest.approx(abs(areas[0] - areas[1]) / np.sqrt(2))
    assert entropy.final_accuracy_mean == pytest.approx(0.8)
    assert entropy.final_accuracy_std == pytest.approx(np.std([0.9, 0.7], ddof=1))
    assert entropy.seeds == 2 and entropy.final_labelled == 300 and entropy.version == "1.0"
    tod = rows[0]
    assert tod.seeds == 1 and tod.aulc_std == 0.0 and tod.final_accuracy_std == 0.0
    # SELECT seconds: mean over the rounds that selected (the last round has none)
    assert entropy.select_seconds_mean == pytest.approx(0.1)
    # paired with random on seeds 0 and 1
    random_areas = [learning_curve_area([100, 200, 300], a) for a in ([0.5, 0.6, 0.7], [0.5, 0.6, 0.6])]
    assert entropy.vs_random_seeds == 2
    assert entropy.vs_random_mean == pytest.approx(np.mean(areas) - np.mean(random_areas))
    assert tod.vs_random_seeds == 1 and np.isnan(tod.vs_random_p)  # one shared seed: no test


def test_build_rows_per_dataset_ranking():
    records = [
        record("entropy", dataset="a", accuracies=[0.2, 0.3]),
        record("random", dataset="a", accuracies=[0.4, 0.5]),
        record("entropy", dataset="b", accuracies=[0.9, 0.9]),
        record("random", dataset="b", accuracies=[0.1, 0.1]),
    ]
    rows = rows_of(records)
    assert [(row.dataset, row.rank, row.strategy) for row in rows] == [
        ("a", 1, "random"), ("a", 2, "entropy"), ("b", 1, "entropy"), ("b", 2, "random"),
    ]


def test_latest_per_seed_replaces_a_rerun():
    old = record("entropy", "0", [0.1, 0.1], start_time=1, run_id="old")
    new = record("entropy", "0", [0.9, 0.9], start_time=2, run_id="new")
    other_seed = record("entropy", "1", [0.5, 0.5], start_time=0, run_id="s1")
    kept = latest_per_seed([new, old, other_seed])
    assert sorted(r.run_id for r in kept) == ["new", "s1"]
    assert sorted(r.run_id for r in latest_per_seed([old, new, other_seed])) == ["new", "s1"]
    (row,) = rows_of([old, new, other_seed])
    assert row.seeds == 2
    assert row.final_accuracy_mean == pytest.approx(0.7)  # (0.9 + 0.5) / 2: the old run is not counted


def test_same_seed_in_another_workflow_is_not_a_rerun():
    a = record("entropy", "0", workflow="wf-a", run_id="a")
    b = record("entropy", "0", workflow="wf-b", run_id="b")
    assert len(latest_per_seed([a, b])) == 2
    # e.g. the same strategy with other params: two rows, told apart by workflow id
    assert sorted(row.label for row in rows_of([a, b])) == ["entropy [wf-a]", "entropy [wf-b]"]


def test_labels_are_disambiguated_by_setting_and_version():
    records = [
        record("entropy", "0", [0.5, 0.6], workflow="aaaaaaaa11112222", setting="aaaaaaaa11112222"),
        record("entropy", "0", [0.5, 0.9], workflow="bbbbbbbb33334444", setting="bbbbbbbb33334444"),
        record("random", "0", [0.5, 0.5]),
        record("entropy", "0", [0.5, 0.5], dataset="other"),  # alone on its dataset: plain name
    ]
    rows = rows_of(records)
    labels = {(row.dataset, row.label) for row in rows}
    assert labels == {
        ("synthetic", "entropy [aaaaaaaa]"),
        ("synthetic", "entropy [bbbbbbbb]"),
        ("synthetic", "random"),
        ("other", "entropy"),
    }
    assert [row.label for row in rows if row.dataset == "synthetic"][0] == "entropy [bbbbbbbb]"
    # two versions of one strategy: two rows, never one average
    versions = rows_of([record("tod", "0", [0.5, 0.9], version="1.0"), record("tod", "0", [0.5, 0.5], version="1.1")])
    assert sorted((row.label, row.seeds) for row in versions) == [("tod v1.0", 1), ("tod v1.1", 1)]
    curves = mean_curves(records)
    assert set(curves["synthetic"]) == {"entropy [aaaaaaaa]", "entropy [bbbbbbbb]", "random"}
    assert set(curves["other"]) == {"entropy"}


def test_mean_curves_over_common_rounds():
    records = [
        record("entropy", "0", [0.5, 0.6, 0.7, 0.8]),  # rounds 0..3
        record("entropy", "1", [0.3, 0.4, 0.5], counts=[100, 200, 300]),  # crashed or shorter: rounds 0..2
        record("random", "0", [0.4, 0.5]),
    ]
    curves = mean_curves(records)
    counts, mean, std = curves["synthetic"]["entropy"]
    np.testing.assert_allclose(counts, [100, 200, 300])
    np.testing.assert_allclose(mean, [0.4, 0.5, 0.6])
    np.testing.assert_allclose(std, np.std([[0.5, 0.6, 0.7], [0.3, 0.4, 0.5]], axis=0, ddof=1))
    counts, mean, std = curves["synthetic"]["random"]
    np.testing.assert_allclose(mean, [0.4, 0.5])
    np.testing.assert_allclose(std, [0.0, 0.0])


def test_mean_curves_with_gaps_in_the_rounds():
    a = record("entropy", "0", [0.1, 0.2, 0.3], rounds=[0, 1, 2])
    b = record("entropy", "1", [0.3, 0.5], rounds=[0, 2], counts=[100, 300])
    counts, mean, _ = mean_curves([a, b])["synthetic"]["entropy"]
    np.testing.assert_allclose(counts, [100, 300])
    np.testing.assert_allclose(mean, [0.2, 0.4])


def test_write_csv_and_plot(tmp_path):
    records = [record("entropy", "0"), record("entropy", "1", [0.4, 0.5, 0.9]), record("random", "0")]
    rows = rows_of(records)
    path = write_csv(rows, tmp_path / "deep" / "leaderboard.csv")
    read = list(csv.DictReader(path.read_text().splitlines()))
    assert [r["strategy"] for r in read] == [row.strategy for row in rows]
    assert set(read[0]) == set(LeaderboardRow.__dataclass_fields__)
    png = plot_learning_curves(mean_curves(records), tmp_path / "curves.png", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = plot_learning_curves({}, tmp_path / "empty.png")
    assert empty.is_file()


# --------------------------------------------------------------------------- main


def test_main_on_an_empty_store(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    assert main(["--experiment", "nothing_here"]) == 1
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0
    assert "no finished runs" in out and "'nothing_here'" in out
    assert not (tmp_path / "leaderboard").exists()


def test_main_on_an_experiment_without_finished_runs(tmp_path, monkeypatch, capsys):
    from experiments.tracking import TrackingSettings, import_mlflow, prepare_store

    monkeypatch.chdir(tmp_path)
    experiment_id = prepare_store(TrackingSettings(experiment="half"), tmp_path)
    client = import_mlflow().MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(experiment_id, tags={"strategy": "entropy"})
    client.set_terminated(run.info.run_id, status="FAILED")
    assert main(["--experiment", "half", "--sweep", "latest"]) == 1
    assert "no finished runs in experiment 'half'" in capsys.readouterr().out
