"""From a composed Hydra config to validated, typed settings — before any training.

`parse_settings` checks every key the run uses and raises `ConfigError` (or
`UnknownNameError`) with one line naming the key, the allowed values and what
was given. Defaults and types are not here: they are the schema of
`experiments.settings`, which Hydra composes every config onto (a key a
container lacks takes the schema's default here too); this module checks the
values' ranges, choices and consistency. `check_against_dataset` adds the
checks that need the dataset's size. `workflow_id` and `flatten_config` feed
MLflow's tags and params.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from experiments.datasets import DATASET_NAMES
from experiments.errors import ConfigError
from experiments.inference import MC_MODES
from experiments.loop import INITIAL_SELECTIONS
from experiments.models import MODEL_NAMES
from experiments.settings import (
    AlsweepSchema,
    InferenceSettings,
    LoopSettings,
    TrackingSettings,
    TrainerSettings,
    field_names,
    schema_defaults,
)
from experiments.training import LR_SCHEDULES, OPTIMIZERS
from kernels.backend import BACKENDS, cupy_or_none
from strategies import StrategySpec, UnknownNameError, get_strategy

DEVICES = ("auto", "cpu", "cuda")
RESUME_MODES = ("auto", "never", "must")
#: Config keys that do not change what a run computes: left out of the workflow id.
NON_WORKFLOW_KEYS = ("seed", "tracking", "hydra", "resume")


@dataclass(frozen=True)
class NamedSettings:
    """A ``dataset`` / ``model`` group: its name plus the options passed to its builder."""

    name: str
    options: dict


@dataclass(frozen=True)
class DatasetSettings(NamedSettings):
    """``dataset.*``; the defaults of ``root`` and ``download`` are `experiments.settings.DatasetSchema`'s."""

    root: str | None
    download: bool


@dataclass(frozen=True)
class ExperimentSettings:
    """Everything one AL run reads from its config."""

    seed: int
    device: str
    threads: int | None
    dataset: DatasetSettings
    model: NamedSettings
    strategy: StrategySpec
    strategy_params: dict
    loop: LoopSettings
    trainer: TrainerSettings
    inference: InferenceSettings
    tracking: TrackingSettings
    resume: str
    kernels_backend: str


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(key: str, value: Any, minimum: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not _is_int(value) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or null" if optional else "")
        raise ConfigError(f"{key} must be {allowed}; got {value!r}")
    return int(value)


def _check_float(key: str, value: Any, minimum: float, inclusive: bool = True) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or value < minimum or (not inclusive and value == minimum):
        bound = ">=" if inclusive else ">"
        raise ConfigError(f"{key} must be a number {bound} {minimum}; got {value!r}")
    return float(value)


def _check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false; got {value!r}")
    return value


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _section(cfg: Mapping, key: str, allowed: tuple[str, ...]) -> dict:
    node = cfg.get(key)
    if not isinstance(node, Mapping):
        raise ConfigError(f"{key} must be a mapping of {', '.join(allowed)}; got {node!r}")
    values = dict(node)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key '{key}.{unknown[0]}'; allowed in '{key}': {', '.join(allowed)}")
    return values


def _with_schema_defaults(values: Mapping, defaults: Mapping) -> dict:
    """``values`` with every key it lacks taken from the schema's defaults, at any depth.

    A config composed by Hydra has them all already; a container from elsewhere (a recorded
    config.yaml, a test's dict) gets the same defaults, never a second copy of them.
    """
    filled = dict(values)
    for key, default in defaults.items():
        if key not in filled:
            filled[key] = default
        elif isinstance(default, Mapping) and isinstance(filled[key], Mapping):
            filled[key] = _with_schema_defaults(filled[key], default)
    return filled


def parse_loop(values: dict) -> LoopSettings:
    loop = LoopSettings(**values)
    _check_int("loop.initial_size", loop.initial_size, 0)
    _check_choice("loop.initial_selection", loop.initial_selection, INITIAL_SELECTIONS)
    _check_int("loop.query_size", loop.query_size, 1)
    _check_int("loop.rounds", loop.rounds, 0)
    _check_int("loop.budget", loop.budget, 1, optional=True)
    _check_int("loop.pool_subset", loop.pool_subset, 1, optional=True)
    for key in ("pool_subset_refresh", "record_history", "warm_start"):
        _check_bool(f"loop.{key}", getattr(loop, key))
    if loop.budget is not None and loop.budget < loop.initial_size:
        raise ConfigError(
            f"loop.budget must be >= loop.initial_size ({loop.initial_size}); got {loop.budget}"
        )
    return loop


def parse_trainer(values: dict) -> TrainerSettings:
    trainer = TrainerSettings(**values)
    _check_int("trainer.epochs", trainer.epochs, 0)
    _check_int("trainer.min_steps", trainer.min_steps, 0)
    _check_int("trainer.batch_size", trainer.batch_size, 1)
    _check_choice("trainer.optimizer", trainer.optimizer, OPTIMIZERS)
    _check_float("trainer.lr", trainer.lr, 0.0, inclusive=False)
    _check_float("trainer.weight_decay", trainer.weight_decay, 0.0)
    _check_float("trainer.momentum", trainer.momentum, 0.0)
    _check_choice("trainer.lr_schedule", trainer.lr_schedule, LR_SCHEDULES)
    _check_int("trainer.warmup_steps", trainer.warmup_steps, 0)
    _check_float("trainer.ema_decay", trainer.ema_decay, 0.0)
    if trainer.ema_decay >= 1.0:
        raise ConfigError(f"trainer.ema_decay must be in [0, 1) (0 = off); got {trainer.ema_decay}")
    if trainer.epochs == 0 and trainer.min_steps == 0:
        raise ConfigError("trainer.epochs and trainer.min_steps are both 0: the model would never be trained")
    return trainer


def parse_inference(values: dict) -> InferenceSettings:
    inference = InferenceSettings(**values)
    _check_int("inference.batch_size", inference.batch_size, 1)
    _check_int("inference.mc_samples", inference.mc_samples, 2)
    _check_choice("inference.mc_mode", inference.mc_mode, MC_MODES)
    return inference


def parse_strategy(values: dict) -> tuple[StrategySpec, dict]:
    spec = get_strategy(values.get("name"))
    params = values.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"strategy.params must be a mapping; got {params!r}")
    params = dict(params)
    spec.check_params(params)
    check_param_types(spec, params)
    return spec, params


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if _is_int(value):
        return "an integer"
    if isinstance(value, numbers.Real):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def check_param_types(spec: StrategySpec, params: Mapping[str, Any]) -> None:
    """Each given parameter must have the type of the strategy's default for it, checked before any training.

    An int is accepted where the default is a float; a None default accepts anything.
    """
    for name, value in params.items():
        default = spec.defaults.get(name)
        if default is None or value is None:
            continue
        if isinstance(default, str) and spec.value_checker is not None:
            # a string default can be a sentinel of a union (probcover's delta: a number or 'auto');
            # the strategy's own value checker knows which values it takes
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif _is_int(default):
            ok = _is_int(value)
        elif isinstance(default, numbers.Real):
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, (list, tuple))
        else:
            ok = True
        if not ok:
            raise ConfigError(
                f"strategy.params.{name} must be {_type_name(default)} (default {default!r}) for strategy "
                f"'{spec.name}'; got {value!r}"
            )


def parse_settings(cfg: DictConfig | Mapping) -> ExperimentSettings:
    """Validate the composed config; raise ConfigError / UnknownNameError naming the bad key."""
    if isinstance(cfg, DictConfig):
        cfg = resolved_container(cfg)
    cfg = {key: value for key, value in cfg.items() if key != "hydra"}
    cfg = _with_schema_defaults(cfg, schema_defaults())
    top_level = field_names(AlsweepSchema)
    unknown = sorted(set(cfg) - set(top_level))
    if unknown:
        raise ConfigError(f"unknown top-level key '{unknown[0]}'; allowed: {', '.join(top_level)}")

    dataset_node = dict(cfg.get("dataset") or {})
    model_node = dict(cfg.get("model") or {})
    if dataset_node.get("name") not in DATASET_NAMES:
        raise UnknownNameError("dataset", dataset_node.get("name"), DATASET_NAMES, key="dataset.name")
    if model_node.get("name") not in MODEL_NAMES:
        raise UnknownNameError("model", model_node.get("name"), MODEL_NAMES, key="model.name")
    strategy_spec, strategy_params = parse_strategy(_section(cfg, "strategy", ("name", "params")))
    return ExperimentSettings(
        seed=_check_int("seed", cfg["seed"], 0),
        device=_check_choice("device", cfg["device"], DEVICES),
        threads=_check_int("threads", cfg["threads"], 1, optional=True),
        dataset=DatasetSettings(
            name=str(dataset_node.pop("name", None)),
            root=dataset_node.pop("root"),
            download=_check_bool("dataset.download", dataset_node.pop("download")),
            options=dataset_node,
        ),
        model=NamedSettings(name=str(model_node.pop("name", None)), options=model_node),
        strategy=strategy_spec,
        strategy_params=strategy_params,
        loop=parse_loop(_section(cfg, "loop", field_names(LoopSettings))),
        trainer=parse_trainer(_section(cfg, "trainer", field_names(TrainerSettings))),
        inference=parse_inference(_section(cfg, "inference", field_names(InferenceSettings))),
        tracking=parse_tracking(_section(cfg, "tracking", field_names(TrackingSettings))),
        resume=_check_choice("resume", cfg["resume"], RESUME_MODES),
        kernels_backend=_check_choice("kernels.backend", _section(cfg, "kernels", ("backend",))["backend"], BACKENDS),
    )


def check_kernels_backend(settings: ExperimentSettings, device: torch.device) -> None:
    """``kernels.backend=cupy`` must be able to run: CUDA tensors and CuPy with a GPU."""
    if settings.kernels_backend != "cupy":
        return
    if device.type != "cuda":
        raise ConfigError(f"kernels.backend=cupy needs device=cuda (CuPy kernels run on CUDA tensors); got device {device.type}")
    if cupy_or_none() is None:
        raise ConfigError(
            "kernels.backend=cupy needs CuPy with a CUDA GPU; install the extra 'alsweep[gpu]' (cupy-cuda13x) "
            "or use kernels.backend=auto"
        )


def parse_tracking(values: dict) -> TrackingSettings:
    tracking = TrackingSettings(**values)
    _check_bool("tracking.enabled", tracking.enabled)
    if not isinstance(tracking.experiment, str) or not tracking.experiment.strip():
        raise ConfigError(f"tracking.experiment must be a non-empty experiment name, e.g. alsweep; got {tracking.experiment!r}")
    if not isinstance(tracking.uri, str) or not tracking.uri.strip():
        raise ConfigError(f"tracking.uri must be an MLflow store URI, e.g. sqlite:///mlflow.db; got {tracking.uri!r}")
    return tracking


def check_needs(settings: ExperimentSettings, supports_mc_dropout: bool) -> None:
    """The strategy's needs must be something this model and loop can give."""
    needs = settings.strategy.needs
    if "mc_log_probs" in needs and not supports_mc_dropout:
        raise ConfigError(
            f"strategy '{settings.strategy.name}' needs MC-dropout samples, but model '{settings.model.name}' "
            f"has no dropout (model.dropout={settings.model.options.get('dropout')!r}); set model.dropout > 0"
        )
    if "history" in needs and not settings.loop.record_history:
        raise ConfigError(
            f"strategy '{settings.strategy.name}' reads the prediction history, "
            "but loop.record_history=false; set loop.record_history=true"
        )


def pool_sizes_at_select(loop: LoopSettings, train_size: int) -> list[tuple[int, int]]:
    """(pool size, query size) of each SELECT the loop will run, computed from the settings alone.

    Mirrors `experiments.loop.run_rounds`: the pool is the unlabelled samples, or a random
    ``pool_subset`` of them (drawn once when ``pool_subset_refresh`` is false, so it shrinks
    by the picks), and the last queries shrink to fit ``budget``.
    """
    labelled = loop.initial_size
    fixed_remaining = None
    if loop.pool_subset is not None and not loop.pool_subset_refresh:
        fixed_remaining = min(loop.pool_subset, train_size - labelled)
    sizes = []
    for _ in range(loop.rounds):
        query = loop.query_size if loop.budget is None else min(loop.query_size, loop.budget - labelled)
        if query <= 0:
            break
        unlabelled = train_size - labelled
        if fixed_remaining is not None:
            pool = fixed_remaining
        else:
            pool = unlabelled if loop.pool_subset is None else min(loop.pool_subset, unlabelled)
        sizes.append((pool, query))
        picked = min(query, pool)
        labelled += picked
        if fixed_remaining is not None:
            fixed_remaining -= picked
    return sizes


def check_against_dataset(loop: LoopSettings, train_size: int) -> None:
    """Sizes that must fit in the pool (the dataset's training split, or the pool subset drawn from it)."""
    if loop.initial_size > train_size:
        raise ConfigError(f"loop.initial_size must be <= the pool size ({train_size}); got {loop.initial_size}")
    if loop.budget is not None and loop.budget > train_size:
        raise ConfigError(f"loop.budget must be <= the pool size ({train_size}); got {loop.budget}")
    if loop.budget is None and loop.initial_size + loop.rounds * loop.query_size > train_size:
        raise ConfigError(
            f"loop.rounds x loop.query_size + loop.initial_size = "
            f"{loop.initial_size + loop.rounds * loop.query_size} labels exceeds the pool size ({train_size}); "
            "lower loop.rounds or loop.query_size, or set loop.budget"
        )
    for round_index, (pool, query) in enumerate(pool_sizes_at_select(loop, train_size)):
        if query > pool:
            subset = "" if loop.pool_subset is None else f" (loop.pool_subset={loop.pool_subset}, refresh={loop.pool_subset_refresh})"
            raise ConfigError(
                f"loop.query_size must be <= the pool at every round; round {round_index} would query {query} "
                f"from a pool of {pool}{subset}; lower loop.query_size or loop.rounds, or raise loop.pool_subset"
            )


def resolve_device(name: str) -> torch.device:
    """``auto`` takes CUDA when available; an explicit ``cuda`` without a GPU is a ConfigError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device must be one of auto, cpu, cuda; got 'cuda' but no CUDA GPU is available here")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolved_container(cfg: DictConfig) -> dict:
    """The resolved config as plain containers, without Hydra's own node.

    The ``hydra`` node is dropped *before* resolving: under ``compose(return_hydra_config=True)``
    it holds job-time interpolations (``hydra.job.num``) that cannot be resolved outside a job.
    """
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), resolve=True)


def flatten_config(container: Mapping, prefix: str = "") -> dict[str, str]:
    """``{"loop.query_size": "100", ...}``: the MLflow params of a run."""
    flat: dict[str, str] = {}
    for key, value in container.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple, Mapping)) else str(value)
    return flat


def workflow_id(container: Mapping) -> str:
    """Hash of the resolved config without seed, tracking and Hydra keys: runs that differ only by seed share it."""
    content = {key: value for key, value in container.items() if key not in NON_WORKFLOW_KEYS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
