"""One AL run from a composed config: validate, load, resume or start, run the loop, track it in MLflow.

Everything that can be checked is checked before the MLflow run opens and
before any training, so a bad config leaves nothing behind; a run that fails
after that is marked FAILED (KILLED when a signal stopped it), with the rounds
it finished already logged.

Resume (``resume=auto``, the default): a run is identified by its config hash
(`experiments.round_state.config_hash`). Before starting, the runner looks for
a round state of the same config: first in its own output directory (a fixed
``hydra.run.dir``, or a requeued submitit job), then, through the MLflow tag
``config_hash``, in the output directory of the newest unfinished run of this
experiment. It continues that run in that directory, under the same MLflow
run id, and logs only the rounds MLflow is missing. A FINISHED run of the
same config is not run again. ``resume=never`` always starts afresh;
``resume=must`` fails unless there is a run to continue.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from experiments.config import (
    ExperimentSettings,
    check_against_dataset,
    check_kernels_backend,
    check_needs,
    flatten_config,
    parse_settings,
    pool_sizes_at_select,
    resolve_device,
    resolved_container,
    workflow_id,
)
from experiments.curves import learning_curve_area, plot_learning_curves
from experiments.datasets import ALDataset, load_dataset
from experiments.errors import ConfigError, DatasetFormatError
from experiments.history_summary import write_history_summary
from experiments.loop import ActiveLearningRun, RoundResult, completed_results, run_loop
from experiments.models import build_model
from experiments.round_state import STATE_FILE, RoundState, config_hash, first_difference, hashed_config
from experiments.signals import interruptible, raise_if_interrupted
from experiments.tracking import CONFIG_HASH_TAG, NullTracker, RunTracker, run_process_alive, system_tags
from kernels.backend import set_backend
from strategies.code_hash import kernels_code_hash, package_source_hash

log = logging.getLogger(__name__)

#: The tag holding a run's uid, which claims its history folder (see `HistoryStore`).
RUN_UID_TAG = "alsweep.run_uid"

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


#: A bigger diff is cut here (with a note in the file): it goes to MLflow with every dirty run.
GIT_DIFF_LIMIT_BYTES = 1 << 20


def write_git_diff(path: Path, root: Path = REPO_ROOT, limit_bytes: int = GIT_DIFF_LIMIT_BYTES) -> bool:
    """``git diff HEAD`` of the checkout at ``root`` into ``path``, cut at ``limit_bytes``; False outside a checkout.

    Only tracked files: ``git_dirty`` counts those too, and untracked files may be data or outputs.
    """
    try:
        diff = subprocess.run(
            ["git", "-C", str(root), "diff", "HEAD", "--no-color", "--no-ext-diff"],
            capture_output=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    if len(diff) > limit_bytes:
        cut = diff[:limit_bytes].rsplit(b"\n", 1)[0] + b"\n"
        note = f"# alsweep: diff cut at {limit_bytes} of {len(diff)} bytes; the rest was not saved\n".encode()
        diff = cut + note
    path.write_bytes(diff)
    return True


def hydra_overrides() -> list[str] | None:
    """The overrides of the current Hydra job (``hydra.overrides.task``); None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return list(HydraConfig.get().overrides.task)


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


@functools.lru_cache(maxsize=None)
def alsweep_code_hash() -> str:
    """Hash of the code a run executes (the experiments, strategies and kernels packages), without
    comments and docstrings; the configs are compared separately, through the setting."""
    import experiments
    import kernels
    import strategies

    return package_source_hash(experiments, strategies, kernels)


def run_tags(settings: ExperimentSettings, dataset: ALDataset, container: dict, context: dict) -> dict[str, str]:
    tags = {
        "strategy": settings.strategy.name,
        "strategy_version": settings.strategy.version,
        "strategy_code_hash": settings.strategy.code_hash,
        "kernels_code_hash": kernels_code_hash(),
        # what the leaderboard groups on: a README or test commit must not split a strategy's rows
        "alsweep_code_hash": alsweep_code_hash(),
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "model": settings.model.name,
        "seed": str(settings.seed),
        "workflow_id": workflow_id(container),
        "alsweep_version": package_version(),
        "output_dir": str(context["output_dir"]),
        CONFIG_HASH_TAG: config_hash(container),
    }
    for key in ("hydra_sweep_dir", "hydra_job_num"):
        if key in context:
            tags[key] = context[key]
    commit = git_commit()
    if commit is not None:
        tags["git_commit"], dirty = commit
        tags["git_dirty"] = str(dirty).lower()
    tags.update(system_tags("alsweep", tags.get("git_commit")))
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


def check_against_pool(settings: ExperimentSettings, train_size: int) -> None:
    """The loop's sizes against the dataset, then the strategy's parameter values (δ, M, β, τ,
    a target set within the pool, ...), before any training.

    The values are compared with the smallest pool the run will query, so one that only
    becomes wrong in a late round (an EPIG target set larger than the shrinking pool) fails now.
    """
    check_against_dataset(settings.loop, train_size)
    sizes = [pool for pool, _ in pool_sizes_at_select(settings.loop, train_size)]
    settings.strategy.check_param_values(settings.strategy_params, min(sizes) if sizes else None)


def check_config(cfg: DictConfig, caches: dict | None = None) -> dict:
    """Every check of a composed config that needs no training; returns the resolved container.

    Loads the dataset (to check sizes) and builds the model once (to check the
    strategy's needs against it); ``caches`` keeps both across the jobs of a
    sweep, keyed by their config, so a sweep over seeds loads each dataset once.
    """
    caches = {} if caches is None else caches
    container = resolved_container(cfg)
    settings = parse_settings(container)
    check_kernels_backend(settings, resolve_device(settings.device))
    dataset_key = ("dataset", repr(sorted(container["dataset"].items())))
    if dataset_key not in caches:
        try:
            caches[dataset_key] = load_dataset(
                settings.dataset.name, root=settings.dataset.root, download=settings.dataset.download,
                **settings.dataset.options,
            )
        except DatasetFormatError as error:
            # the folder is in dataset.root already; the file name and the reason are what helps
            reason = re.sub(r"/(?:[^\s:/]+/)+([^\s:/]+)", r"\1", str(error))
            raise DatasetFormatError(
                f"dataset.root: dataset '{settings.dataset.name}' has a damaged file: {reason}; "
                "replace the file, or delete it and set dataset.download=true"
            ) from None
    dataset = caches[dataset_key]
    check_against_pool(settings, dataset.train_size)
    model_key = ("model", dataset_key, repr(sorted(container["model"].items())))
    if model_key not in caches:
        caches[model_key] = build_model(
            settings.model.name, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
            **settings.model.options,
        ).supports_mc_dropout
    check_needs(settings, caches[model_key])
    return container


def prepare(cfg: DictConfig) -> tuple[ExperimentSettings, ALDataset, dict, torch.device]:
    """All the checks that need no training: config, device, dataset files and sizes, model fit."""
    container = resolved_container(cfg)
    settings = parse_settings(container)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)  # before the first tensor work: loading normalises on the CPU
    device = resolve_device(settings.device)
    check_kernels_backend(settings, device)
    set_backend(settings.kernels_backend)  # the kernels read it; strategies stay pure functions
    dataset = load_dataset(
        settings.dataset.name, root=settings.dataset.root, download=settings.dataset.download, **settings.dataset.options
    )
    check_against_pool(settings, dataset.train_size)
    probe = build_model(
        settings.model.name, input_shape=dataset.input_shape, num_classes=dataset.num_classes, **settings.model.options
    )
    check_needs(settings, probe.supports_mc_dropout)
    return settings, dataset, container, device


@dataclass
class ResumePlan:
    """What `plan_resume` decided: continue ``state`` in ``output_dir``, start afresh, or skip a finished run."""

    output_dir: Path
    state: RoundState | None = None
    finished_summary: dict[str, float] | None = None
    #: an unfinished MLflow run of this config that was stopped before its first round: reused, not duplicated
    empty_run_id: str | None = None
    #: that run's uid (tag `RUN_UID_TAG`): its history folder is claimed under it, so the reuse keeps it
    empty_run_uid: str | None = None


def _clear_run_files(output_dir: Path) -> None:
    """What a fresh start must not read from a previous run in the same directory."""
    for name in (STATE_FILE, "selections.csv", "learning_curve.csv", "learning_curve.png"):
        (output_dir / name).unlink(missing_ok=True)
    shutil.rmtree(output_dir / "history", ignore_errors=True)


def _local_state(output_dir: Path, digest: str, hashed: dict, resume: str) -> RoundState | None:
    path = output_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = RoundState.load(path)
    except Exception as error:  # noqa: BLE001 - any unreadable state means the same
        if resume == "never":
            return None
        raise ConfigError(
            f"resume: {path.name} in the output directory cannot be read ({type(error).__name__}); "
            "rerun with resume=never to start this run over"
        ) from None
    if state.config_hash != digest and resume != "never":
        key = first_difference(state.config, hashed) or "<config>"
        raise ConfigError(
            f"resume: the run in this output directory has another config (first difference: '{key}'); "
            "rerun with the same config to continue it, or resume=never to start it over"
        )
    return None if resume == "never" else state


def plan_resume(output_dir: Path, container: dict, resume: str, tracker) -> ResumePlan:
    """Find the run this config continues (see the module docstring); refuse a different config."""
    digest, hashed = config_hash(container), hashed_config(container)
    state = _local_state(output_dir, digest, hashed, resume)
    if resume == "never":
        _clear_run_files(output_dir)
        return ResumePlan(output_dir)
    if state is not None:
        return ResumePlan(output_dir, state)
    empty_run_id = empty_run_uid = None
    for run in tracker.find_runs(digest):
        if run.info.status == "FINISHED":
            metrics = run.data.metrics
            log.info("run %s of this config already FINISHED; not run again (resume=never reruns it)", run.info.run_id)
            return ResumePlan(output_dir, finished_summary={
                "final_test_accuracy": metrics.get("final_test_accuracy", float("nan")),
                "learning_curve_area": metrics.get("learning_curve_area", float("nan")),
            })
        if run.info.status == "RUNNING":
            alive = run_process_alive(run.data.tags)
            if alive is None or alive:
                continue  # in flight (here or on another host): another process owns it
            tracker.mark_killed(run.info.run_id)  # a SIGKILLed run: the reaper's job, done on the way
        candidate = Path(run.data.tags.get("output_dir", "")) / STATE_FILE
        if not candidate.is_file() and empty_run_id is None:
            empty_run_id, empty_run_uid = run.info.run_id, run.data.tags.get(RUN_UID_TAG)
        if candidate.is_file():
            try:
                found = RoundState.load(candidate)
            except Exception:  # noqa: BLE001 - an unreadable state is not resumable; look further
                continue
            if found.config_hash == digest:
                found.mlflow_run_id = found.mlflow_run_id or run.info.run_id
                return ResumePlan(candidate.parent, found)
    if resume == "must":
        raise ConfigError(
            f"resume=must, but no unfinished run with this config (hash {digest}) was found in this output "
            "directory or the tracking store; use resume=auto to start one"
        )
    return ResumePlan(output_dir, empty_run_id=empty_run_id, empty_run_uid=empty_run_uid)


def _write_selections(state: RoundState | None, path: Path) -> None:
    """``selections.csv`` from the round state: the state is the one record of what was selected."""
    lines = ["round_index,dataset_index\n"]
    if state is not None:
        for round_index, selected in enumerate(state.selections):
            lines.extend(f"{round_index},{int(i)}\n" for i in selected.tolist())
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(lines))
    partial.replace(path)


def _finish_records(
    output_dir: Path, results: list[RoundResult], selections_path: Path, tracker, dataset_name: str, run_name: str
) -> None:
    """Log and upload what the saved state holds, whatever stopped the run.

    The state may hold a round a signal cut off between saving and logging it.
    On a full disk writing the files fails too: that must not hide the error
    that stopped the run, so it is only logged.
    """
    state_path = output_dir / STATE_FILE
    try:
        saved = RoundState.load(state_path) if state_path.is_file() else None
        if saved is not None:
            for result in completed_results(saved)[len(results):]:
                results.append(result)
                # a signal between on_round's logging and its append leaves a logged round out of `results`
                if result.round_index not in tracker.logged_steps:
                    tracker.log_metrics(result.metrics(), step=result.round_index)
        _write_selections(saved, selections_path)
        tracker.log_artifact(selections_path)
        if results:
            for path in _write_learning_curve(results, output_dir, dataset_name, run_name):
                tracker.log_artifact(path)
    except (OSError, RuntimeError) as error:
        log.warning("could not write the run's records in %s: %s", output_dir, error)


def _log_provenance(output_dir: Path, tracker, overrides: Sequence[str] | None, tags: Mapping[str, str]) -> None:
    """``overrides.txt`` (one override a line) and, for a dirty checkout, ``git_diff.patch``: what was run."""
    overrides_path = output_dir / "overrides.txt"
    overrides_path.write_text("".join(f"{line}\n" for line in overrides or ()))
    tracker.log_artifact(overrides_path)
    if "git_commit" not in tags:
        log.info("not a git checkout (%s): no git_commit tag and no git_diff.patch", REPO_ROOT)
    if tags.get("git_dirty") != "true":
        return
    diff_path = output_dir / "git_diff.patch"
    if write_git_diff(diff_path):
        tracker.log_artifact(diff_path)
    else:
        log.warning("git_dirty=true but `git diff HEAD` failed in %s: the uncommitted changes are not saved", REPO_ROOT)


def run_experiment(
    cfg: DictConfig,
    output_dir: Path | None = None,
    launch_dir: Path | None = None,
    *,
    extra_tags: Mapping[str, str] | None = None,
    on_run_open: Callable[[str | None], None] | None = None,
    overrides: Sequence[str] | None = None,
) -> dict[str, float]:
    """Run (or resume) one AL experiment; returns its final test accuracy and learning-curve area.

    Args:
        cfg: the composed config (``conf/config.yaml`` and overrides).
        output_dir: where history, round state and artifacts go (default: Hydra's job dir, else cwd).
        launch_dir: base of relative tracking paths (default: Hydra's launch dir, else cwd).
        extra_tags: MLflow tags added to the run's own (``rerun_of`` for ``alsweep rerun``).
        on_run_open: called with the MLflow run id (None when tracking is off) once the run is open,
            so a caller such as ``alsweep rerun`` knows its run without searching the store for it.
        overrides: the command-line overrides the config was composed with, logged as ``overrides.txt``
            (default: the Hydra job's ``hydra.overrides.task``; none outside Hydra).
    """
    settings, dataset, container, device = prepare(cfg)
    context = hydra_context()
    output_dir = Path(output_dir or context.get("output_dir") or Path.cwd())
    launch_dir = Path(launch_dir or context.get("launch_dir") or Path.cwd())
    tracker = RunTracker(settings.tracking, launch_dir) if settings.tracking.enabled else NullTracker()

    raise_if_interrupted()  # a worker started while its launcher stops runs nothing
    plan = plan_resume(output_dir, container, settings.resume, tracker)
    if plan.finished_summary is not None:
        return plan.finished_summary
    output_dir = plan.output_dir
    context["output_dir"] = str(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    state = plan.state
    run_name = f"{settings.strategy.name}-{dataset.name}-s{settings.seed}"
    tags = run_tags(settings, dataset, container, context)
    # cost columns of the leaderboard are labelled with it
    tags["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    tags.update(extra_tags or {})
    run_uid = state.run_uid if state is not None else (plan.empty_run_uid or uuid.uuid4().hex)
    tags[RUN_UID_TAG] = run_uid
    results: list[RoundResult] = []
    resume_run_id = state.mlflow_run_id if state is not None and settings.tracking.enabled else plan.empty_run_id
    if state is not None:
        log.info("%s: resuming at round %d in %s", run_name, state.next_round, output_dir)

    with interruptible(), tracker.run(run_name, tags, flatten_config(container), resume_run_id=resume_run_id):
        if on_run_open is not None:
            on_run_open(tracker.run_id)
        config_path = output_dir / "config.yaml"
        config_path.write_text(OmegaConf.to_yaml(OmegaConf.create(container)))
        tracker.log_artifact(config_path)
        _log_provenance(output_dir, tracker, overrides if overrides is not None else hydra_overrides(), tags)
        selections_path = output_dir / "selections.csv"
        _write_selections(state, selections_path)
        if state is not None:
            # the rounds a kill cut off between saving the state and logging them
            for result in completed_results(state):
                results.append(result)
                if result.round_index not in tracker.logged_steps:
                    tracker.log_metrics(result.metrics(), step=result.round_index)

        def on_round(result: RoundResult) -> None:
            tracker.log_metrics(result.metrics(), step=result.round_index)
            # only a logged round counts as logged: a signal inside log_metrics leaves it to _finish_records
            results.append(result)
            if result.selected_ids is not None:
                with selections_path.open("a") as handle:
                    handle.writelines(f"{result.round_index},{int(i)}\n" for i in result.selected_ids.tolist())
            raise_if_interrupted()  # one held back inside log_metrics: the round is recorded, stop now

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
                    config_hash=config_hash(container),
                    config=hashed_config(container),
                    run_uid=run_uid,
                    mlflow_run_id=tracker.run_id,
                ),
                on_round=on_round,
                resume=state,
            )
        finally:
            # what was selected before a crash is evidence too; the saved state says exactly what it was,
            # including a round a signal cut off between saving it and logging it
            _finish_records(output_dir, results, selections_path, tracker, dataset.name, run_name)
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
