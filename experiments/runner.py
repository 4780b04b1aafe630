"""One AL run from a composed config: validate, load, run the loop, track it in MLflow.

Everything that can be checked is checked before the MLflow run opens and
before any training, so a bad config leaves nothing behind; a run that fails
after that is marked FAILED, with the rounds it finished already logged.
"""

from __future__ import annotations

import csv
import functools
import logging
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from experiments.config import (
    ExperimentSettings,
    check_against_dataset,
    check_needs,
    flatten_config,
    parse_settings,
    resolve_device,
    resolved_container,
    workflow_id,
)
from experiments.curves import learning_curve_area, plot_learning_curves
from experiments.datasets import ALDataset, load_dataset
from experiments.history_summary import write_history_summary
from experiments.loop import ActiveLearningRun, RoundResult, run_loop
from experiments.models import build_model
from experiments.tracking import NullTracker, RunTracker
from strategies.code_hash import kernels_code_hash
from strategies.history import history_state_spec

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


def package_version() -> str:
    try:
        return metadata.version("alsweep")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_commit() -> tuple[str, bool] | None:
    """(commit, dirty) of the source checkout the code runs from, or None outside a git checkout."""
    if not (REPO_ROOT / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, bool(status)


def hydra_context() -> dict[str, str]:
    """Output dir, launch dir, sweep dir and job number of the current Hydra job ({} outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    context = {"output_dir": hydra.runtime.output_dir, "launch_dir": hydra.runtime.cwd}
    # HydraConfig.mode is None under compose(): only trust an explicit MULTIRUN
    if str(hydra.mode) == "RunMode.MULTIRUN":
        # absolute: a relative outputs/sweeps/<time> from two launch folders would collide
        context["hydra_sweep_dir"] = str((Path(hydra.runtime.cwd) / hydra.sweep.dir).resolve())
        context["hydra_job_num"] = str(hydra.job.num)
    return context


def run_tags(settings: ExperimentSettings, dataset: ALDataset, container: dict, context: dict) -> dict[str, str]:
    tags = {
        "strategy": settings.strategy.name,
        "strategy_version": settings.strategy.version,
        "strategy_code_hash": settings.strategy.code_hash,
        "kernels_code_hash": kernels_code_hash(),
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "model": settings.model.name,
        "seed": str(settings.seed),
        "workflow_id": workflow_id(container),
        "alsweep_version": package_version(),
        "output_dir": str(context["output_dir"]),
    }
    for key in ("hydra_sweep_dir", "hydra_job_num"):
        if key in context:
            tags[key] = context[key]
    commit = git_commit()
    if commit is not None:
        tags["git_commit"], dirty = commit
        tags["git_dirty"] = str(dirty).lower()
    return tags


def _write_learning_curve(results: list[RoundResult], output_dir: Path, dataset: str, label: str) -> list[Path]:
    csv_path = output_dir / "learning_curve.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["round_index", *results[0].metrics()])
        writer.writeheader()
        for result in results:
            writer.writerow({"round_index": result.round_index, **result.metrics()})
    counts = np.array([r.labelled_count for r in results], dtype=float)
    accuracy = np.array([r.test_accuracy for r in results])
    png_path = plot_learning_curves(
        {dataset: {label: (counts, accuracy, np.zeros_like(accuracy))}}, output_dir / "learning_curve.png"
    )
    return [csv_path, png_path]


def prepare(cfg: DictConfig) -> tuple[ExperimentSettings, ALDataset, dict, torch.device]:
    """All the checks that need no training: config, device, dataset files and sizes, model fit."""
    container = resolved_container(cfg)
    settings = parse_settings(container)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)  # before the first tensor work: loading normalises on the CPU
    device = resolve_device(settings.device)
    dataset = load_dataset(
        settings.dataset.name, root=settings.dataset.root, download=settings.dataset.download, **settings.dataset.options
    )
    check_against_dataset(settings.loop, dataset.train_size)
    probe = build_model(
        settings.model.name, input_shape=dataset.input_shape, num_classes=dataset.num_classes, **settings.model.options
    )
    check_needs(settings, probe.supports_mc_dropout)
    # a history strategy's parameter values (tau, decay, window, ...) fail here, not after training starts
    history_state_spec(settings.strategy.name, settings.strategy_params, key_prefix="strategy.params.")
    return settings, dataset, container, device


def run_experiment(cfg: DictConfig, output_dir: Path | None = None, launch_dir: Path | None = None) -> dict[str, float]:
    """Run one AL experiment; returns its final test accuracy and learning-curve area.

    Args:
        cfg: the composed config (``conf/config.yaml`` and overrides).
        output_dir: where history, round state and artifacts go (default: Hydra's job dir, else cwd).
        launch_dir: base of relative tracking paths (default: Hydra's launch dir, else cwd).
    """
    settings, dataset, container, device = prepare(cfg)
    context = hydra_context()
    output_dir = Path(output_dir or context.get("output_dir") or Path.cwd())
    launch_dir = Path(launch_dir or context.get("launch_dir") or Path.cwd())
    context["output_dir"] = str(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    tracker = RunTracker(settings.tracking, launch_dir) if settings.tracking.enabled else NullTracker()
    run_name = f"{settings.strategy.name}-{dataset.name}-s{settings.seed}"
    tags = run_tags(settings, dataset, container, context)
    # cost columns of the leaderboard are labelled with it
    tags["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    results: list[RoundResult] = []
    with tracker.run(run_name, tags, flatten_config(container)):
        config_path = output_dir / "config.yaml"
        config_path.write_text(OmegaConf.to_yaml(OmegaConf.create(container)))
        tracker.log_artifact(config_path)
        selections_path = output_dir / "selections.csv"
        selections_path.write_text("round_index,dataset_index\n")

        def on_round(result: RoundResult) -> None:
            results.append(result)
            tracker.log_metrics(result.metrics(), step=result.round_index)
            if result.selected_ids is not None:
                with selections_path.open("a") as handle:
                    handle.writelines(f"{result.round_index},{int(i)}\n" for i in result.selected_ids.tolist())

        try:
            run_loop(
                ActiveLearningRun(
                    dataset=dataset,
                    build_model=functools.partial(
                        build_model, settings.model.name, input_shape=dataset.input_shape,
                        num_classes=dataset.num_classes, **settings.model.options,
                    ),
                    strategy=settings.strategy,
                    strategy_params=settings.strategy_params,
                    loop=settings.loop,
                    trainer=settings.trainer,
                    inference=settings.inference,
                    seed=settings.seed,
                    workdir=output_dir,
                    device=device,
                ),
                on_round=on_round,
            )
        finally:
            # what was selected before a crash is evidence too
            tracker.log_artifact(selections_path)
            if results:
                for path in _write_learning_curve(results, output_dir, dataset.name, run_name):
                    tracker.log_artifact(path)
        if settings.loop.record_history:
            history_png = write_history_summary(
                output_dir / "history", output_dir / "history_summary.png", settings.strategy.name, seed=settings.seed
            )
            if history_png is not None:
                tracker.log_artifact(history_png)
        summary = {
            "final_test_accuracy": results[-1].test_accuracy,
            "learning_curve_area": learning_curve_area(
                [r.labelled_count for r in results], [r.test_accuracy for r in results]
            ),
        }
        tracker.log_metrics(summary, step=results[-1].round_index)
    log.info("%s done: final accuracy %.4f, learning-curve area %.4f", run_name, *summary.values())
    return summary
