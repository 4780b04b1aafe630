"""The active-learning loop: TRAIN → EVALUATE → INFER → RECORD → SELECT → LABEL, per round.

Each step is a plain function with typed inputs and outputs; `run_loop`
composes them. A run with ``rounds = R`` trains and evaluates R + 1 models
(after 0, 1, ..., R acquisitions), so its learning curve has R + 1 points;
the last round only trains and evaluates. At the end of each round the loop
saves one `RoundState` (labelled ids, every round's selection and metrics,
every generator's state, the strategy's and the history's state, warm-start
weights); `run_loop(run, resume=state)` continues from it and gives the same
selections and metrics, bit for bit on a CPU, as a run that was never
interrupted.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from experiments.datasets import ALDataset
from experiments.history_store import HistoryStore, HistoryTracker
from experiments.inference import InferenceSettings, infer_pool
from experiments.models import ALModel
from experiments.round_state import STATE_FILE, RoundState
from experiments.settings import LoopSettings
from experiments.signals import raise_if_interrupted
from experiments.training import TrainerSettings, evaluate, train_model
from strategies import PoolView, Selection, StrategySpec

log = logging.getLogger(__name__)

INITIAL_SELECTIONS = ("balanced", "random")


@dataclass(frozen=True)
class RoundResult:
    """What one round did and measured; ``selected_ids`` is None in the last round."""

    round_index: int
    labelled_count: int
    pool_size: int
    test_accuracy: float
    test_loss: float
    train_seconds: float
    infer_seconds: float
    record_seconds: float
    select_seconds: float
    train_steps: int
    select_peak_memory_mb: float = 0.0
    selected_ids: torch.Tensor | None = field(default=None, repr=False)

    def metrics(self) -> dict[str, float]:
        """The per-round numbers logged to MLflow (step = round_index)."""
        return {
            "labelled_count": float(self.labelled_count),
            "pool_size": float(self.pool_size),
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "train_seconds": self.train_seconds,
            "infer_seconds": self.infer_seconds,
            "record_seconds": self.record_seconds,
            "select_seconds": self.select_seconds,
            "train_steps": float(self.train_steps),
            "select_peak_memory_mb": self.select_peak_memory_mb,
        }


@dataclass
class ActiveLearningRun:
    """Everything one AL run needs, already validated."""

    dataset: ALDataset
    build_model: Callable[[], ALModel]
    strategy: StrategySpec
    strategy_params: dict
    loop: LoopSettings
    trainer: TrainerSettings
    inference: InferenceSettings
    seed: int
    workdir: Path
    device: torch.device
    config_hash: str = ""
    config: dict = field(default_factory=dict)
    run_uid: str = ""
    mlflow_run_id: str | None = None


def derive_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose (initial set, training, selection, ...), stable across processes."""
    return (seed * 0x9E3779B1 + zlib.crc32(purpose.encode())) % (2**63 - 1)


def derive_generator(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, purpose))


def initial_labelled_ids(labels_y: torch.Tensor, size: int, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Dataset indices of the initial labelled set (sorted).

    "balanced" takes ``size // C`` per class (the remainder going to randomly
    chosen classes) and tops up at random if a class runs short.
    """
    labels = labels_y.cpu()
    permutation = torch.randperm(labels.shape[0], generator=generator)
    if mode == "random":
        return permutation[:size].sort().values
    num_classes = int(labels.max()) + 1
    quota_C = torch.full((num_classes,), size // num_classes)
    quota_C[torch.randperm(num_classes, generator=generator)[: size % num_classes]] += 1
    shuffled_labels = labels[permutation]
    order = torch.argsort(shuffled_labels, stable=True)  # by class, random within class
    counts_C = torch.bincount(shuffled_labels, minlength=num_classes)
    class_start_C = torch.cumsum(counts_C, 0) - counts_C
    sorted_labels = shuffled_labels[order]
    rank_within_class = torch.arange(labels.shape[0]) - class_start_C[sorted_labels]
    chosen = permutation[order[rank_within_class < quota_C[sorted_labels]]]
    if chosen.shape[0] < size:
        rest = permutation[~torch.isin(permutation, chosen)]
        chosen = torch.cat([chosen, rest[: size - chosen.shape[0]]])
    return chosen.sort().values


def draw_pool(
    unlabelled_ids: torch.Tensor, subset_size: int | None, generator: torch.Generator, candidates: torch.Tensor | None
) -> torch.Tensor:
    """This round's pool: all unlabelled ids, or a random subset of ``subset_size`` of them.

    ``candidates`` (a fixed subset drawn once per run) restricts the pool when given.
    """
    if candidates is not None:
        return unlabelled_ids[torch.isin(unlabelled_ids, candidates)]
    if subset_size is None or subset_size >= unlabelled_ids.shape[0]:
        return unlabelled_ids
    chosen = torch.randperm(unlabelled_ids.shape[0], generator=generator)[:subset_size]
    return unlabelled_ids[chosen.sort().values]


def needed_inputs(strategy: StrategySpec, loop: LoopSettings) -> frozenset[str]:
    """What INFER computes: the strategy's needs plus the probabilities RECORD stores."""
    return frozenset(strategy.needs) | ({"probs"} if loop.record_history else set())


def select(
    strategy: StrategySpec, pool: PoolView, query_size: int, params: dict, generator: torch.Generator
) -> Selection:
    """SELECT: the strategy picks ``query_size`` pool positions."""
    return strategy(pool, query_size, generator=generator, **params)


def label(labelled_ids: torch.Tensor, pool_ids_N: torch.Tensor, selection: Selection) -> tuple[torch.Tensor, torch.Tensor]:
    """LABEL: the simulated oracle reveals the chosen samples; they join the labelled set.

    Returns (new labelled ids sorted, the dataset ids selected this round).
    """
    selected_ids = pool_ids_N[selection.indices_B.cpu()]
    return torch.cat([labelled_ids, selected_ids]).sort().values, selected_ids


def _timed(function: Callable, *args, device: torch.device, **kwargs):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = function(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def _resident_kib(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_memory_mb(function: Callable, *args, device: torch.device, **kwargs):
    """Run ``function``; return its result and the peak memory it added, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated before.
    CPU: the process's peak resident set (VmHWM) above its RSS before; the
    peak is first reset to the current RSS through /proc/self/clear_refs, so
    an earlier, larger peak (training) does not hide this one. Where that
    file is not writable the result is a lower bound (0 unless SELECT set a
    new peak for the process).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = function(*args, **kwargs)
        torch.cuda.synchronize(device)
        return result, max(torch.cuda.max_memory_allocated(device) - before, 0) / 2**20
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = _resident_kib("VmRSS")
    result = function(*args, **kwargs)
    peak = _resident_kib("VmHWM")
    if before is None or peak is None:
        return result, float("nan")
    return result, max(peak - before, 0) / 1024


def _result_from_state(metrics: dict, selected_ids: torch.Tensor | None) -> RoundResult:
    """A completed round's `RoundResult`, rebuilt from what `RoundState.results` kept of it."""
    return RoundResult(
        round_index=int(metrics["round_index"]),
        labelled_count=int(metrics["labelled_count"]),
        pool_size=int(metrics["pool_size"]),
        test_accuracy=metrics["test_accuracy"],
        test_loss=metrics["test_loss"],
        train_seconds=metrics["train_seconds"],
        infer_seconds=metrics["infer_seconds"],
        record_seconds=metrics["record_seconds"],
        select_seconds=metrics["select_seconds"],
        select_peak_memory_mb=metrics.get("select_peak_memory_mb", 0.0),
        train_steps=int(metrics["train_steps"]),
        selected_ids=selected_ids,
    )


def completed_results(state: RoundState) -> list[RoundResult]:
    """The `RoundResult` of every round a state has completed, selections included."""
    return [
        _result_from_state(metrics, state.selections[i] if i < len(state.selections) else None)
        for i, metrics in enumerate(state.results)
    ]


def run_loop(
    run: ActiveLearningRun,
    on_round: Callable[[RoundResult], None] | None = None,
    resume: RoundState | None = None,
) -> list[RoundResult]:
    """Run all rounds (or, given ``resume``, the rounds after it); call ``on_round`` after each new one.

    Returns the results of all rounds, the resumed ones included.
    """
    data = run.dataset.to(run.device)
    settings = run.loop
    pool_generator = derive_generator(run.seed, "pool")
    train_generator = derive_generator(run.seed, "train")
    select_generator = derive_generator(run.seed, "select")
    generators = {"pool": pool_generator, "train": train_generator, "select": select_generator}
    all_ids = torch.arange(data.train_size)
    needs = needed_inputs(run.strategy, settings)
    model = None

    if resume is None:
        initial_generator = derive_generator(run.seed, "initial")
        labelled_ids = initial_labelled_ids(data.train_y, settings.initial_size, settings.initial_selection, initial_generator)
        fixed_candidates = None
        if settings.pool_subset is not None and not settings.pool_subset_refresh:
            fixed_candidates = draw_pool(all_ids[~torch.isin(all_ids, labelled_ids)], settings.pool_subset, pool_generator, None)
        state = RoundState(
            next_round=0, labelled_ids=labelled_ids, config_hash=run.config_hash, run_uid=run.run_uid,
            fixed_candidates=fixed_candidates, config=run.config,
        )
    else:
        state = resume
        labelled_ids, fixed_candidates = state.labelled_ids, state.fixed_candidates
        for name, generator in generators.items():
            generator.set_state(state.generators[name])
        if settings.warm_start and state.model_weights is not None:
            model = run.build_model()
            model.load_state_dict(state.model_weights)
            model = model.to(run.device)
    state.mlflow_run_id = run.mlflow_run_id
    results = completed_results(state)
    if state.finished:
        return results

    history_store = history_tracker = None
    if settings.record_history:
        history_store = HistoryStore(run.workdir / "history", data.num_classes, owner=run.run_uid or None)
        # a killed run may have recorded the round it did not finish; that round is redone
        history_store.drop_rounds_from(state.next_round)
        # the history statistics, updated one round at a time (never re-read), resumed with the run
        history_tracker = HistoryTracker.for_strategy(run.strategy.name, run.strategy_params, history_store, run.device)
        if state.history_state is not None:
            history_tracker.load_state_dict(state.history_state)
    state_path = run.workdir / STATE_FILE
    strategy_state = state.strategy_state  # what a stateful strategy carries from round to round

    for round_index in range(state.next_round, settings.rounds + 1):
        raise_if_interrupted()  # a SIGTERM/SIGINT stops the run between rounds at the latest
        torch.manual_seed(derive_seed(run.seed, f"round-{round_index}"))  # init, dropout masks
        if model is None or not settings.warm_start:
            model = run.build_model().to(run.device)
        device_labelled = labelled_ids.to(run.device)
        train, train_seconds = _timed(
            train_model, model, data.train_x[device_labelled], data.train_y[device_labelled],
            run.trainer, train_generator, device=run.device,
        )
        raise_if_interrupted()
        scores = evaluate(model, data.test_x, data.test_y, run.inference.batch_size)

        remaining_budget = (settings.budget - labelled_ids.shape[0]) if settings.budget is not None else settings.query_size
        query_size = min(settings.query_size, remaining_budget)
        selected_ids, infer_seconds, record_seconds, select_seconds, pool_size = None, 0.0, 0.0, 0.0, 0
        select_peak_memory_mb = 0.0
        if round_index < settings.rounds and query_size > 0:
            unlabelled_ids = all_ids[~torch.isin(all_ids, labelled_ids)]
            pool_ids = draw_pool(unlabelled_ids, settings.pool_subset, pool_generator, fixed_candidates)
            pool_size = int(pool_ids.shape[0])
            device_pool = pool_ids.to(run.device)
            pool, infer_seconds = _timed(
                infer_pool, model, data.train_x[device_pool], device_pool, needs, run.inference,
                # gathering the labelled inputs is a copy: only when the strategy embeds them
                labelled_x=data.train_x[device_labelled] if "labelled_emb" in needs else None,
                device=run.device,
            )
            if history_store is not None:
                # RECORD before SELECT: the history a strategy sees includes this round
                _, record_seconds = _timed(history_store.append, round_index, pool_ids, pool.probs_N_C, device=run.device)
                _, update_seconds = _timed(history_tracker.update, round_index, pool_ids, pool.probs_N_C, device=run.device)
                record_seconds += update_seconds
                if "history" in needs:
                    pool = dataclasses.replace(pool, history=history_tracker.view(pool_ids, run.device))
            pool = dataclasses.replace(pool, strategy_state=strategy_state)
            (selection, select_seconds), select_peak_memory_mb = _peak_memory_mb(
                lambda: _timed(
                    select, run.strategy, pool, query_size, run.strategy_params, select_generator, device=run.device
                ),
                device=run.device,
            )
            strategy_state = selection.strategy_state
            if history_store is not None:
                history_store.save_selection(round_index, pool_ids, selection)  # for history_summary.png
            labelled_ids, selected_ids = label(labelled_ids, pool_ids, selection)

        result = RoundResult(
            round_index=round_index,
            labelled_count=int(device_labelled.shape[0]),
            pool_size=pool_size,
            test_accuracy=scores.accuracy,
            test_loss=scores.loss,
            train_seconds=train_seconds,
            infer_seconds=infer_seconds,
            record_seconds=record_seconds,
            select_seconds=select_seconds,
            train_steps=train.steps,
            select_peak_memory_mb=select_peak_memory_mb,
            selected_ids=selected_ids,
        )
        results.append(result)
        finished = round_index == settings.rounds or query_size <= 0
        state = dataclasses.replace(
            state,
            next_round=round_index + 1,
            finished=finished,
            labelled_ids=labelled_ids,
            selections=[*state.selections, selected_ids] if selected_ids is not None else state.selections,
            results=[*state.results, dict(result.metrics(), round_index=round_index)],
            generators={name: generator.get_state() for name, generator in generators.items()},
            strategy_state=strategy_state,
            history_state=history_tracker.state_dict() if history_tracker is not None else None,
            model_weights={k: v.detach().cpu().clone() for k, v in model.state_dict().items()} if settings.warm_start else None,
        )
        raise_if_interrupted()  # a round whose selection is done but not saved is redone on resume
        state.save(state_path)
        log.info(
            "%s seed=%d round %d/%d: %d labelled, test acc %.4f, train %.1fs infer %.1fs select %.2fs",
            run.strategy.name, run.seed, round_index, settings.rounds, result.labelled_count,
            result.test_accuracy, train_seconds, infer_seconds, select_seconds,
        )
        if on_round is not None:
            on_round(result)
        if finished and round_index < settings.rounds:
            log.info("budget of %d labels reached after round %d", settings.budget, round_index)
            break
    return results
