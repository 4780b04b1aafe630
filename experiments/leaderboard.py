"""``alsweep leaderboard``: the terminal view of an experiment's comparison.

Per dataset, one row per group of runs (dataset, setting, strategy, strategy
version, strategy code hash, code version; see ``experiments.comparison``):
seeds, labels at the end, mean AULC with its 95% bootstrap CI over seeds,
normalised AULC, the paired difference to random (by seed) with its p-value,
the seeds needed to resolve a difference of ``--delta`` AULC, final accuracy,
and the cost columns (SELECT and INFER seconds per round, SELECT peak memory)
labelled with the device they ran on. Writes the table as CSV and the mean
learning curves as a PNG. ``alsweep report`` renders the same tables as
HTML/Markdown with the penalty matrix and CD diagram.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments.comparison import (
    Group,
    LeaderboardRow,
    RunRecord,
    VersionChoice,
    build_rows,
    group_runs,
    latest_per_seed,
    select_versions,
)
from experiments.curves import plot_learning_curves
from experiments.errors import OneLineArgumentParser
from experiments.mlflow_reader import fetch_runs, latest_sweep_dir
from experiments.tracking import TrackingSettings, resolve_tracking_uri

__all__ = [
    "LeaderboardRow", "RunRecord", "build_rows", "fetch_runs", "group_runs", "latest_per_seed", "latest_sweep_dir",
    "main", "mean_curves", "write_csv",
]


def mean_curves(groups: Sequence[Group]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """``{dataset: {label: (labelled_counts, mean_accuracy, std_accuracy)}}`` over the rounds all seeds reached."""
    from experiments.comparison import accuracies_S_T, common_rounds

    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for group in groups:
        rounds = common_rounds(group.runs)
        accuracy = accuracies_S_T(group.runs, rounds)
        counts = np.stack([r.labelled_counts_R[np.isin(r.rounds_R, rounds)] for r in group.runs])
        std = accuracy.std(axis=0, ddof=1) if len(group.runs) > 1 else np.zeros(len(rounds))
        curves.setdefault(group.key.dataset, {})[group.label] = (counts.mean(axis=0), accuracy.mean(axis=0), std)
    return curves


def write_csv(rows: Sequence[LeaderboardRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in dataclasses.fields(LeaderboardRow)])
        writer.writeheader()
        for row in rows:
            writer.writerow(dataclasses.asdict(row))
    return path


def fmt(value: float, digits: int = 4) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def fmt_ci(low: float, high: float, digits: int = 4) -> str:
    return "–" if not (math.isfinite(low) and math.isfinite(high)) else f"[{low:.{digits}f}, {high:.{digits}f}]"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_seeds(n: float) -> str:
    if not math.isfinite(n):
        return "–" if math.isnan(n) else ">10000"
    return str(int(n))


def device_label(rows: Sequence[LeaderboardRow]) -> str:
    return ", ".join(sorted({row.device for row in rows})) or "?"


def table_cells(row: LeaderboardRow) -> list[str]:
    """One row's cells, in the order of `table_columns` (shared by the terminal, Markdown and HTML views)."""
    return [
        str(row.rank), row.label, row.version, str(row.seeds), str(row.final_labelled),
        fmt(row.aulc_mean), fmt_ci(row.aulc_ci_low, row.aulc_ci_high), fmt(row.aulc_normalised, 2),
        "–" if row.strategy == "random" else (
            f"{row.vs_random_mean:+.4f}" if math.isfinite(row.vs_random_mean) else "–"
        ),
        fmt_p(row.vs_random_p), fmt_seeds(row.seeds_needed),
        f"{fmt(row.final_accuracy_mean)} ± {fmt(row.final_accuracy_std)}",
        fmt(row.select_seconds_mean, 3), fmt(row.infer_seconds_mean, 2), fmt(row.select_peak_memory_mb, 1),
    ]


def table_columns(rows: Sequence[LeaderboardRow], delta: float) -> list[tuple[str, str]]:
    device = device_label(rows)
    return [
        ("#", "right"), ("strategy", "left"), ("version", "left"), ("seeds", "right"), ("labels", "right"),
        ("AULC", "right"), ("95% CI", "right"), ("norm. AULC", "right"), ("Δ vs random", "right"),
        ("p", "right"), (f"seeds for Δ={delta:g}", "right"), ("final acc (mean ± std)", "right"),
        (f"select s/round [{device}]", "right"), (f"infer s/round [{device}]", "right"),
        (f"select peak MiB [{device}]", "right"),
    ]


def render(rows: Sequence[LeaderboardRow], title: str, notes: Sequence[str] = (), delta: float = 0.005) -> None:
    """Print one rich table per dataset, then the notes on versions and what the columns mean."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 200))
    for dataset in sorted({row.dataset for row in rows}):
        members = [r for r in rows if r.dataset == dataset]
        table = Table(
            title=f"{title} — {dataset}", title_justify="left",
            caption=f"cost columns measured on: {device_label(members)}", caption_justify="left",
        )
        for column, justify in table_columns(members, delta):
            table.add_column(column, justify=justify)
        for row in members:
            table.add_row(*table_cells(row))
        console.print(table)
    for line in [*notes, *legend(delta)]:
        console.print(line, highlight=False, soft_wrap=True)


def legend(delta: float) -> list[str]:
    return [
        "AULC: area under the accuracy-vs-labels curve / label range; 95% CI: percentile bootstrap of the mean over seeds.",
        "norm. AULC: (AULC - AULC_random) / (AULC_best - AULC_random) in the same dataset/setting.",
        "Δ vs random: mean AULC difference to random paired by seed; p: two-sided paired t-test.",
        f"seeds for Δ={delta:g}: seeds a paired t-test needs to resolve an AULC difference of {delta:g} at power 0.8, "
        "alpha 0.05, from the observed per-seed std of the difference.",
        "Rows never average runs of different strategy versions or code versions.",
    ]


def version_notes(groups: Sequence[Group]) -> list[str]:
    """Say where one strategy appears in several rows, and why."""
    notes = []
    seen: dict[tuple[str, str], list[Group]] = {}
    for group in groups:
        seen.setdefault((group.key.dataset, group.key.strategy), []).append(group)
    for (dataset, strategy), members in sorted(seen.items()):
        if len(members) > 1:
            notes.append(
                f"{dataset}/{strategy}: {len(members)} separate rows ({', '.join(g.label for g in members)}): "
                "different versions, code or settings are never averaged."
            )
    return notes


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `alsweep leaderboard` and `alsweep report` share."""
    parser.add_argument("--experiment", default=TrackingSettings.experiment, help="MLflow experiment name (default: %(default)s)")
    parser.add_argument("--tracking-uri", default=TrackingSettings.uri, help="MLflow tracking URI (default: %(default)s)")
    parser.add_argument(
        "--sweep", default=None, metavar="DIR|latest",
        help="only runs of this Hydra sweep directory ('latest': the newest sweep); default: all runs",
    )
    parser.add_argument(
        "--strategy-version", action="append", default=None, metavar="VERSION|NAME=VERSION",
        help="show this strategy version (for every strategy, or NAME's); repeatable. Default: each strategy's newest",
    )
    parser.add_argument("--all-versions", action="store_true", help="show every strategy version, each as its own row")
    parser.add_argument(
        "--delta", type=float, default=0.005, help="AULC difference the seeds-needed column is sized for (default: %(default)s)"
    )


def load(args: argparse.Namespace, command: str) -> tuple[list[Group], list[str], str] | None:
    """Read and group the runs the arguments select; None (after printing why) when there are none."""
    if args.delta <= 0:
        print(f"alsweep {command}: error: --delta must be > 0; got {args.delta}")
        return None
    uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
    if args.sweep == "latest":
        sweep_dir = latest_sweep_dir(uri, args.experiment)
    else:
        sweep_dir = str(Path(args.sweep).resolve()) if args.sweep else None  # tags hold absolute paths
    records = fetch_runs(uri, args.experiment, sweep_dir)
    where = f" in sweep {sweep_dir}" if sweep_dir else ""
    if not records:
        print(f"alsweep {command}: no finished runs in experiment '{args.experiment}'{where} at {uri}")
        return None
    chosen, notes = select_versions(records, VersionChoice.parse(args.strategy_version, args.all_versions))
    if not chosen:
        print(f"alsweep {command}: no runs of the requested versions in experiment '{args.experiment}'{where}: {'; '.join(notes)}")
        return None
    groups = group_runs(chosen)
    return groups, notes + version_notes(groups), sweep_dir or ""


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="alsweep leaderboard", description=__doc__.split("\n\n")[0])
    add_selection_arguments(parser)
    parser.add_argument("--output-dir", type=Path, default=None, help="where the CSV and PNG go (default: leaderboard/<experiment>)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    loaded = load(args, "leaderboard")
    if loaded is None:
        return 1
    groups, notes, _ = loaded
    rows = build_rows(groups, delta=args.delta)
    output_dir = args.output_dir or Path("leaderboard") / args.experiment
    render(rows, f"alsweep leaderboard: experiment '{args.experiment}'", notes, args.delta)
    csv_path = write_csv(rows, output_dir / "leaderboard.csv")
    png_path = plot_learning_curves(
        mean_curves(groups), output_dir / "learning_curves.png", title=f"experiment '{args.experiment}' (mean ± std over seeds)"
    )
    print(f"wrote {csv_path} and {png_path}")
    return 0
