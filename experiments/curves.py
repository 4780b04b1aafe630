"""Learning curves: their area, and PNG plots (one run, or mean ± std per strategy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def learning_curve_area(labelled_counts: Sequence[float], accuracies: Sequence[float]) -> float:
    """Normalised area under the accuracy-vs-labels curve (trapezoids), in [0, 1].

    Dividing by the label range makes it the mean accuracy over the budget, so
    runs with different budgets stay comparable in scale. A single point
    returns its accuracy.
    """
    x = np.asarray(labelled_counts, dtype=np.float64)
    y = np.asarray(accuracies, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    if x.size == 1 or x[-1] == x[0]:
        return float(y.mean())
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / (x[-1] - x[0]))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: sweeps run without a display
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], path: Path, title: str = ""
) -> Path:
    """One panel per dataset, one line per strategy with a ±1 std band over seeds.

    Args:
        curves: ``{dataset: {strategy: (labelled_counts_R, mean_accuracy_R, std_accuracy_R)}}``.
        path: the PNG to write.
    """
    plt = _pyplot()
    datasets = sorted(curves)
    panels = max(len(datasets), 1)
    figure, axes = plt.subplots(1, panels, figsize=(6.5 * panels + 2.0, 4.5), squeeze=False)
    for axis, dataset in zip(axes[0], datasets):
        for strategy in sorted(curves[dataset]):
            x, mean, std = curves[dataset][strategy]
            (line,) = axis.plot(x, mean, marker="o", markersize=3, linewidth=1.5, label=strategy)
            axis.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
        axis.set_title(dataset)
        axis.set_xlabel("labelled samples")
        axis.set_ylabel("test accuracy")
        axis.grid(alpha=0.3)
        # outside the axes: nine overlapping curves leave no free corner inside
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
