"""``alsweep report``: one experiment's comparison as a self-contained HTML page, Markdown and PNGs.

    alsweep report --experiment demo [--sweep latest|DIR] [--output-dir DIR]

Writes to ``report/<experiment>/`` (or ``--output-dir``):

- ``report.html``: one file, images embedded: the leaderboard table, per
  dataset/setting learning curves (absolute, and each strategy's paired
  difference to random with a 95% CI band, as small multiples), the pairwise
  penalty matrix (Ash et al. 2020), the critical-difference diagram and the
  cost table;
- ``report.md``: the same tables in Markdown, images linked;
- ``curves_*.png``, ``penalty_matrix.png``, ``cd_diagram.png``.

All of them are logged to MLflow as artifacts of one report run in the
experiment (tagged ``alsweep_report``), so they sit beside the runs they
summarise. The numbers are the same tables ``alsweep leaderboard`` prints.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments import comparison as cmp
from experiments.curves import _pyplot
from experiments.errors import OneLineArgumentParser
from experiments.leaderboard import (
    add_selection_arguments,
    fmt,
    fmt_p,
    legend,
    load,
    table_cells,
    table_columns,
    write_csv,
)
from experiments.tracking import import_mlflow, resolve_tracking_uri


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:40]


def plot_setting(setting: cmp.Setting, path: Path) -> Path:
    """Absolute mean curves on the first axis, then one small panel per strategy: difference to random, 95% CI."""
    plt = _pyplot()
    differences = cmp.difference_curves(setting)
    others = [label for label in sorted(setting.labels) if label.split(" ")[0] != cmp.RANDOM]
    panels = 1 + (len(others) if differences else 0)
    columns = min(panels, 4)
    rows = math.ceil(panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.7 * rows), squeeze=False)
    x = setting.labelled_counts_T
    colours = {label: plt.cm.tab10(i % 10) for i, label in enumerate(sorted(setting.labels))}
    absolute = axes[0][0]
    for label in sorted(setting.labels):
        mean = setting.accuracies[label].mean(axis=0)
        is_random = label.split(" ")[0] == cmp.RANDOM
        absolute.plot(
            x, mean, color="black" if is_random else colours[label], linewidth=2.0 if is_random else 1.0,
            linestyle="--" if is_random else "-", label=label,
        )
    absolute.set_title("test accuracy (mean over seeds)", fontsize=9)
    absolute.set_xlabel("labelled samples", fontsize=8)
    absolute.legend(fontsize=6, loc="lower right", ncol=2)
    absolute.grid(alpha=0.3)
    if differences:
        limit = max(
            (max(np.nanmax(np.abs(low)), np.nanmax(np.abs(high))) for label, (_, low, high) in differences.items()
             if label in others and np.isfinite(low).any()),
            default=0.01,
        )
        limit = max(limit, max(np.nanmax(np.abs(differences[label][0])) for label in others)) * 1.1 or 0.01
        for position, label in enumerate(others, start=1):
            axis = axes[position // columns][position % columns]
            mean, low, high = differences[label]
            axis.axhline(0.0, color="black", linewidth=0.8, linestyle="--")
            axis.fill_between(x, low, high, color=colours[label], alpha=0.25, linewidth=0)
            axis.plot(x, mean, color=colours[label], marker="o", markersize=2.5, linewidth=1.3)
            axis.set_ylim(-limit, limit)
            axis.set_title(f"{label} − random", fontsize=9)
            axis.grid(alpha=0.3)
            axis.tick_params(labelsize=7)
            if position % columns == 0:
                axis.set_ylabel("Δ accuracy", fontsize=8)
            if position // columns == rows - 1:
                axis.set_xlabel("labelled samples", fontsize=8)
    absolute.tick_params(labelsize=7)
    for position in range(panels, rows * columns):
        axes[position // columns][position % columns].axis("off")
    figure.suptitle(f"{setting.dataset} (setting {setting.setting[:8]}, {len(setting.seeds)} seeds)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_penalty(names: Sequence[str], penalty_M_M: np.ndarray, settings_count: int, path: Path) -> Path:
    plt = _pyplot()
    size = max(3.5, 0.55 * len(names) + 2.0)
    figure, axis = plt.subplots(figsize=(size + 1.0, size))
    image = axis.imshow(penalty_M_M, cmap="Reds", vmin=0, vmax=max(settings_count, 1e-9))
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            value = penalty_M_M[i, j]
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.6 * max(settings_count, 1e-9) else "black")
    axis.set_xlabel("loses (column)")
    axis.set_ylabel("wins (row)")
    axis.set_title(f"penalty matrix: row beats column\n(paired t-test per round, α=0.05, summed over {settings_count} setting(s))", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_cd(result: cmp.CDResult, path: Path) -> Path:
    """Demšar-style diagram: average ranks on an axis, cliques of non-different strategies as bars."""
    plt = _pyplot()
    cd = result.result
    k = len(cd.names)
    order = np.argsort(cd.average_ranks, kind="stable")
    left = order[: math.ceil(k / 2)]
    right = order[math.ceil(k / 2) :]
    height = 1.6 + 0.28 * max(len(left), len(right))
    figure, axis = plt.subplots(figsize=(8.0, height))
    axis.set_xlim(0.5, k + 0.5)
    axis.set_ylim(-(max(len(left), len(right)) + 1.5), 1.4)
    axis.axis("off")
    axis.hlines(0, 1, k, color="black", linewidth=1)
    for tick in range(1, k + 1):
        axis.vlines(tick, 0, 0.12, color="black", linewidth=1)
        axis.text(tick, 0.22, str(tick), ha="center", fontsize=8)
    for row, index in enumerate(left, start=1):
        rank = cd.average_ranks[index]
        axis.plot([rank, rank, 0.6], [0, -row * 0.5 - 0.3, -row * 0.5 - 0.3], color="black", linewidth=0.8)
        axis.text(0.55, -row * 0.5 - 0.3, f"{cd.names[index]} ({rank:.2f})", ha="right", va="center", fontsize=8)
    for row, index in enumerate(right[::-1], start=1):
        rank = cd.average_ranks[index]
        axis.plot([rank, rank, k + 0.4], [0, -row * 0.5 - 0.3, -row * 0.5 - 0.3], color="black", linewidth=0.8)
        axis.text(k + 0.45, -row * 0.5 - 0.3, f"({rank:.2f}) {cd.names[index]}", ha="left", va="center", fontsize=8)
    position = {name: cd.average_ranks[i] for i, name in enumerate(cd.names)}
    for level, clique in enumerate(cd.cliques()):
        ranks = [position[name] for name in clique]
        y = -0.15 - 0.12 * level
        axis.hlines(y, min(ranks) - 0.03, max(ranks) + 0.03, color="tab:blue", linewidth=3)
    if math.isfinite(cd.nemenyi_cd) and cd.nemenyi_cd < k:
        axis.hlines(1.0, 1, 1 + cd.nemenyi_cd, color="tab:red", linewidth=2)
        axis.text(1 + cd.nemenyi_cd / 2, 1.08, f"Nemenyi CD = {cd.nemenyi_cd:.2f}", ha="center", fontsize=8, color="tab:red")
    axis.set_title(
        f"average rank (1 = best) over {cd.blocks} blocks ({result.block_kind}), Friedman p = {fmt_p(cd.friedman_p)}\n"
        "blue bars join strategies that Wilcoxon-Holm (α = 0.05) does not separate",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
    ]


def _html_table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]], highlight: Sequence[bool] = ()) -> str:
    head = "".join(f'<th class="{justify}">{html.escape(name)}</th>' for name, justify in columns)
    body = []
    for index, row in enumerate(rows):
        css = ' class="significant"' if index < len(highlight) and highlight[index] else ""
        body.append(f"<tr{css}>" + "".join(
            f'<td class="{justify}">{html.escape(cell)}</td>' for (_, justify), cell in zip(columns, row)
        ) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def cost_table(rows: Sequence[cmp.LeaderboardRow]) -> tuple[list[tuple[str, str]], list[list[str]]]:
    columns = [("dataset", "left"), ("strategy", "left"), ("device", "left"), ("select s/round", "right"),
               ("infer s/round", "right"), ("select peak MiB", "right")]
    return columns, [
        [r.dataset, r.label, r.device, fmt(r.select_seconds_mean, 3), fmt(r.infer_seconds_mean, 2),
         fmt(r.select_peak_memory_mb, 1)]
        for r in sorted(rows, key=lambda r: (r.dataset, r.label))
    ]


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1400px;
       color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e5e5e5; white-space: nowrap; }
th { background: #f3f4f6; font-weight: 600; } td.right, th.right { text-align: right; }
td.left, th.left { text-align: left; } tr.significant td { background: #eef7ee; }
img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; } img.square { max-width: 760px; }
.notes { font-size: 12px; color: #444; } .notes li { margin: 2px 0; }
"""


def _embed(path: Path) -> str:
    return f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"


def write_report(
    groups: Sequence[cmp.Group], output_dir: Path, title: str, notes: Sequence[str] = (), delta: float = 0.005,
    source: str = "",
) -> list[Path]:
    """Compute the tables and write report.html, report.md, leaderboard.csv and the PNGs; returns the paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = cmp.build_rows(groups, delta=delta)
    settings = cmp.settings(groups)
    figures: list[Figure] = []
    for setting in settings:
        path = output_dir / f"curves_{_slug(setting.dataset)}_{setting.setting[:8]}.png"
        figures.append(Figure(plot_setting(setting, path), f"{setting.dataset}: learning curves, and each strategy minus "
                              "random paired by seed (mean, 95% bootstrap CI band)"))
    names, penalty_M_M = cmp.penalty(settings)
    usable = sum(len(s.seeds) >= 2 for s in settings)
    penalty_figure = None
    if names and usable:
        penalty_figure = Figure(plot_penalty(names, penalty_M_M, usable, output_dir / "penalty_matrix.png"),
                                "pairwise penalty matrix (Ash et al. 2020)")
    cd = cmp.critical_difference(settings)
    cd_figure = Figure(plot_cd(cd, output_dir / "cd_diagram.png"), "critical-difference diagram") if cd else None
    csv_path = write_csv(rows, output_dir / "leaderboard.csv")

    md = [f"# {title}", "", f"{source}", ""]
    body = [f"<h1>{html.escape(title)}</h1><p class=\"meta\">{html.escape(source)}</p>"]
    for dataset in sorted({r.dataset for r in rows}):
        members = [r for r in rows if r.dataset == dataset]
        columns = table_columns(members, delta)
        cells = [table_cells(r) for r in members]
        md += [f"## Leaderboard — {dataset}", "", *_md_table([c for c, _ in columns], cells), ""]
        significant = [math.isfinite(r.vs_random_p) and r.vs_random_p < 0.05 for r in members]
        body.append(f"<h2>Leaderboard — {html.escape(dataset)}</h2>" + _html_table(columns, cells, significant))
    explanations = [*notes, *legend(delta), "Highlighted rows (HTML) differ from random at p < 0.05; leaderboard.csv also holds the 95% CI of Δ vs random."]
    md += ["", *(f"- {line}" for line in explanations), ""]
    body.append("<ul class=\"notes\">" + "".join(f"<li>{html.escape(line)}</li>" for line in explanations) + "</ul>")

    md += ["## Learning curves", ""]
    body.append("<h2>Learning curves</h2>")
    for figure in figures:
        md += [f"![{figure.caption}]({figure.path.name})", ""]
        body.append(f'<figure><img src="{_embed(figure.path)}" alt="{html.escape(figure.caption)}"><figcaption class="meta">'
                    f"{html.escape(figure.caption)}</figcaption></figure>")

    md += ["## Pairwise penalty matrix", ""]
    body.append("<h2>Pairwise penalty matrix</h2>")
    if penalty_figure:
        text = ("Entry (row, column): over every setting and round, the share of rounds in which row's accuracy is "
                "significantly higher than column's (two-sided paired t-test over seeds, α = 0.05), summed over settings.")
        md += [text, "", f"![penalty matrix]({penalty_figure.path.name})", ""]
        body.append(f"<p class=\"notes\">{html.escape(text)}</p><img class=\"square\" src=\"{_embed(penalty_figure.path)}\" alt=\"penalty matrix\">")
    else:
        md += ["Needs at least two seeds shared by all strategies of a setting.", ""]
        body.append("<p class=\"notes\">Needs at least two seeds shared by all strategies of a setting.</p>")

    md += ["## Critical-difference diagram", ""]
    body.append("<h2>Critical-difference diagram</h2>")
    if cd_figure and cd:
        text = (f"Average rank by AULC over {cd.result.blocks} blocks ({cd.block_kind}); Friedman p = "
                f"{fmt_p(cd.result.friedman_p)}; cliques: Wilcoxon signed-rank with Holm's correction at α = 0.05; "
                f"Nemenyi CD = {fmt(cd.result.nemenyi_cd, 2)}.")
        md += [text, "", f"![CD diagram]({cd_figure.path.name})", ""]
        body.append(f"<p class=\"notes\">{html.escape(text)}</p><img src=\"{_embed(cd_figure.path)}\" alt=\"CD diagram\">")
    else:
        md += ["Needs at least two strategies present in every setting.", ""]
        body.append("<p class=\"notes\">Needs at least two strategies present in every setting.</p>")

    columns, cost_rows = cost_table(rows)
    md += ["## Cost", "", *_md_table([c for c, _ in columns], cost_rows), "",
           "Seconds and peak memory per round with a SELECT (all but the last); peak memory: the process's resident-set "
           "growth during SELECT on CPU, torch.cuda.max_memory_allocated growth on CUDA.", ""]
    body.append("<h2>Cost</h2>" + _html_table(columns, cost_rows) + "<p class=\"notes\">Seconds and peak memory per round "
                "with a SELECT; peak memory: resident-set growth during SELECT on CPU, "
                "torch.cuda.max_memory_allocated growth on CUDA.</p>")

    md_path = output_dir / "report.md"
    md_path.write_text("\n".join(md))
    html_path = output_dir / "report.html"
    html_path.write_text(
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    pngs = [f.path for f in figures] + [f.path for f in (penalty_figure, cd_figure) if f]
    return [html_path, md_path, csv_path, *pngs]


def log_to_mlflow(tracking_uri: str, experiment: str, sweep_dir: str, paths: Sequence[Path]) -> str:
    """Log the report's files as artifacts of one report run in the experiment; returns its run id."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    name = f"report {Path(sweep_dir).name}" if sweep_dir else "report (all runs)"
    # no `strategy` tag: the readers skip this run; `report_sweep_dir`, not `hydra_sweep_dir`, for the same reason
    run = client.create_run(experiment_id, run_name=name, tags={"alsweep_report": "true", "report_sweep_dir": sweep_dir})
    try:
        for path in paths:
            client.log_artifact(run.info.run_id, str(path), artifact_path="report")
    except Exception:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="alsweep report", description=__doc__.split("\n\n")[0])
    add_selection_arguments(parser)
    parser.add_argument("--output-dir", type=Path, default=None, help="where the report goes (default: report/<experiment>)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the report to MLflow")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    loaded = load(args, "report")
    if loaded is None:
        return 1
    groups, notes, sweep_dir = loaded
    output_dir = args.output_dir or Path("report") / args.experiment
    source = f"experiment '{args.experiment}'" + (f", sweep {sweep_dir}" if sweep_dir else ", all finished runs")
    paths = write_report(groups, output_dir, f"alsweep report: {args.experiment}", notes, args.delta, source)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    if not args.no_mlflow:
        uri = resolve_tracking_uri(args.tracking_uri, Path.cwd())
        run_id = log_to_mlflow(uri, args.experiment, sweep_dir, paths)
        print(f"logged to MLflow run {run_id} (experiment '{args.experiment}', artifacts under report/)")
    return 0
