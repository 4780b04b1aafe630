"""``alsweep leaderboard``: compare strategies from the MLflow runs of an experiment.

Per dataset, one row per strategy (more precisely per workflow: runs whose
resolved configs differ only by seed), with its version, number of seeds,
the area under the learning curve and the final accuracy (mean ± std over
seeds), and the mean seconds spent in SELECT per round. Writes the table as
CSV and the learning curves (mean ± std band per strategy) as a PNG.

Reading (`fetch_runs`) and computing (`build_rows`, `mean_curves`) are
separate, so new columns or statistics are added to `LeaderboardRow` and
`build_rows` without touching MLflow code.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.curves import learning_curve_area, plot_learning_curves
from experiments.tracking import TrackingSettings, import_mlflow, resolve_tracking_uri


@dataclass(frozen=True)
class RunRecord:
    """One finished AL run, as read back from MLflow. Curves are indexed by round."""

    run_id: str
    dataset: str
    strategy: str
    strategy_version: str
    workflow_id: str
    seed: str
    start_time: int
    rounds_R: np.ndarray
    labelled_counts_R: np.ndarray
    accuracies_R: np.ndarray
    select_seconds_R: np.ndarray


@dataclass(frozen=True)
class LeaderboardRow:
    dataset: str
    rank: int
    strategy: str
    version: str
    workflow_id: str
    seeds: int
    final_labelled: int
    aulc_mean: float
    aulc_std: float
    final_accuracy_mean: float
    final_accuracy_std: float
    select_seconds_mean: float


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation over seeds; 0 for a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def latest_per_seed(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Keep the newest run for each (workflow, seed): re-running a sweep replaces, not double-counts."""
    newest: dict[tuple[str, str], RunRecord] = {}
    for record in records:
        key = (record.workflow_id, record.seed)
        if key not in newest or record.start_time > newest[key].start_time:
            newest[key] = record
    return list(newest.values())


def _group(records: Sequence[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for record in latest_per_seed(records):
        groups[(record.dataset, record.workflow_id)].append(record)
    return groups


def _labels(groups: dict[tuple[str, str], list[RunRecord]]) -> dict[tuple[str, str], str]:
    """Row label = strategy name, plus the workflow id where one dataset has a strategy twice."""
    per_strategy: dict[tuple[str, str], int] = defaultdict(int)
    for (dataset, _), members in groups.items():
        per_strategy[(dataset, members[0].strategy)] += 1
    return {
        key: members[0].strategy
        + (f" [{key[1][:8]}]" if per_strategy[(key[0], members[0].strategy)] > 1 else "")
        for key, members in groups.items()
    }


def build_rows(records: Sequence[RunRecord]) -> list[LeaderboardRow]:
    """Rows per dataset, ranked by mean learning-curve area (best first)."""
    groups = _group(records)
    labels = _labels(groups)
    rows: list[LeaderboardRow] = []
    for key, members in groups.items():
        areas = [learning_curve_area(r.labelled_counts_R, r.accuracies_R) for r in members]
        finals = [float(r.accuracies_R[-1]) for r in members]
        select_seconds = np.concatenate([r.select_seconds_R[r.select_seconds_R > 0] for r in members] or [np.zeros(0)])
        rows.append(
            LeaderboardRow(
                dataset=key[0],
                rank=0,
                strategy=labels[key],
                version=members[0].strategy_version,
                workflow_id=key[1],
                seeds=len(members),
                final_labelled=int(max(r.labelled_counts_R[-1] for r in members)),
                aulc_mean=float(np.mean(areas)),
                aulc_std=_std(areas),
                final_accuracy_mean=float(np.mean(finals)),
                final_accuracy_std=_std(finals),
                select_seconds_mean=float(select_seconds.mean()) if select_seconds.size else 0.0,
            )
        )
    rows.sort(key=lambda row: (row.dataset, -row.aulc_mean, row.strategy))
    ranked, previous_dataset, rank = [], None, 0
    for row in rows:
        rank = rank + 1 if row.dataset == previous_dataset else 1
        previous_dataset = row.dataset
        ranked.append(dataclasses.replace(row, rank=rank))
    return ranked


def mean_curves(records: Sequence[RunRecord]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """``{dataset: {label: (labelled_counts, mean_accuracy, std_accuracy)}}`` over the rounds all seeds reached."""
    groups = _group(records)
    labels = _labels(groups)
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(dict)
    for key, members in groups.items():
        rounds = sorted(set.intersection(*(set(r.rounds_R.tolist()) for r in members)))
        counts = np.stack([r.labelled_counts_R[np.isin(r.rounds_R, rounds)] for r in members])
        accuracy = np.stack([r.accuracies_R[np.isin(r.rounds_R, rounds)] for r in members])
        std = accuracy.std(axis=0, ddof=1) if len(members) > 1 else np.zeros(len(rounds))
        curves[key[0]][labels[key]] = (counts.mean(axis=0), accuracy.mean(axis=0), std)
    return dict(curves)


def fetch_runs(tracking_uri: str, experiment: str, sweep_dir: str | None = None) -> list[RunRecord]:
    """Finished runs of ``experiment`` (optionally of one Hydra sweep directory) with their curves."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    query = "attributes.status = 'FINISHED'"
    if sweep_dir:
        query += f" and tags.hydra_sweep_dir = '{sweep_dir}'"
    records = []
    for run in client.search_runs([found.experiment_id], filter_string=query, max_results=50_000):
        tags = run.data.tags
        if "strategy" not in tags:
            continue  # not an alsweep run

        def history(key: str) -> dict[int, float]:
            return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}

        accuracy, counts, select = history("test_accuracy"), history("labelled_count"), history("select_seconds")
        rounds = np.array(sorted(accuracy), dtype=np.int64)
        if rounds.size == 0:
            continue
        records.append(
            RunRecord(
                run_id=run.info.run_id,
                dataset=tags.get("dataset", "?"),
                strategy=tags["strategy"],
                strategy_version=tags.get("strategy_version", "?"),
                workflow_id=tags.get("workflow_id", run.info.run_id),
                seed=tags.get("seed", run.info.run_id),
                start_time=run.info.start_time or 0,
                rounds_R=rounds,
                labelled_counts_R=np.array([counts.get(int(r), np.nan) for r in rounds]),
                accuracies_R=np.array([accuracy[int(r)] for r in rounds]),
                select_seconds_R=np.array([select.get(int(r), 0.0) for r in rounds]),
            )
        )
    return records


def latest_sweep_dir(tracking_uri: str, experiment: str) -> str | None:
    """The Hydra sweep directory of the most recently started run of ``experiment``."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id], filter_string="tags.hydra_sweep_dir != ''", order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].data.tags.get("hydra_sweep_dir") if runs else None


def write_csv(rows: Sequence[LeaderboardRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in dataclasses.fields(LeaderboardRow)])
        writer.writeheader()
        for row in rows:
            writer.writerow(dataclasses.asdict(row))
    return path


def render(rows: Sequence[LeaderboardRow], title: str) -> None:
    """Print one rich table per dataset."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    for dataset in sorted({row.dataset for row in rows}):
        table = Table(title=f"{title} — {dataset}", title_justify="left")
        for column, justify in [
            ("#", "right"), ("strategy", "left"), ("version", "left"), ("seeds", "right"), ("labels", "right"),
            ("AULC (mean ± std)", "right"), ("final acc (mean ± std)", "right"), ("select s/round", "right"),
        ]:
            table.add_column(column, justify=justify)
        for row in (r for r in rows if r.dataset == dataset):
            table.add_row(
                str(row.rank), row.strategy, row.version, str(row.seeds), str(row.final_labelled),
                f"{row.aulc_mean:.4f} ± {row.aulc_std:.4f}",
                f"{row.final_accuracy_mean:.4f} ± {row.final_accuracy_std:.4f}",
                f"{row.select_seconds_mean:.3f}",
            )
        console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alsweep leaderboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default=TrackingSettings.experiment, help="MLflow experiment name (default: %(default)s)")
    parser.add_argument("--tracking-uri", default=TrackingSettings.uri, help="MLflow tracking URI (default: %(default)s)")
    parser.add_argument(
        "--sweep", default=None, metavar="DIR|latest",
        help="only runs of this Hydra sweep directory ('latest': the newest sweep); default: all runs",
    )
    parser.add_argument("--output-dir", type=Path, default=None, help="where the CSV and PNG go (default: leaderboard/<experiment>)")
    args = parser.parse_args(argv)

    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    if args.sweep == "latest":
        sweep_dir = latest_sweep_dir(uri, args.experiment)
    else:
        sweep_dir = str(Path(args.sweep).resolve()) if args.sweep else None  # tags hold absolute paths
    records = fetch_runs(uri, args.experiment, sweep_dir)
    if not records:
        where = f" in sweep {sweep_dir}" if sweep_dir else ""
        print(f"alsweep leaderboard: no finished runs in experiment '{args.experiment}'{where} at {uri}")
        return 1
    rows = build_rows(records)
    output_dir = args.output_dir or Path("leaderboard") / args.experiment
    render(rows, f"alsweep leaderboard: experiment '{args.experiment}'")
    csv_path = write_csv(rows, output_dir / "leaderboard.csv")
    png_path = plot_learning_curves(
        mean_curves(records), output_dir / "learning_curves.png", title=f"experiment '{args.experiment}' (mean ± std over seeds)"
    )
    print(f"wrote {csv_path} and {png_path}")
    return 0
