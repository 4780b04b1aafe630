"""The config schema: every default and type of an ``alsweep`` config, in one place.

Each config group's dataclass here is registered in Hydra's ConfigStore by
`register_configs` (as ``<group>/base_<group>``, plus the primary schema
``alsweep_schema``), and the yaml files in conf/ extend it through their
defaults lists. So the yaml files hold only comments for users and the values
that differ from the schema; Hydra rejects a yaml key the schema lacks and
converts or rejects a value of the wrong type (``loop.rounds=abc``), and
changing a default here changes every composed config.

Free-form parts stay free-form: ``strategy.params`` (their defaults come from
the strategy function's signature), and the builder options of ``dataset.*``
and ``model.*`` (their defaults come from the dataset and model registries);
only the keys every dataset or model has are typed.

The settings classes are frozen, because a run must not change its settings;
the nodes given to the ConfigStore are writable copies, because Hydra merges
the yaml files and the command line into them.

No torch here: the CLI registers the schema before Hydra composes anything,
including for ``--help`` and ``--cfg``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

#: Name of the primary config schema in the ConfigStore (first entry of conf/config.yaml's defaults list).
PRIMARY_SCHEMA = "alsweep_schema"


@dataclass(frozen=True)
class LoopSettings:
    """``loop.*`` config.

    Attributes:
        initial_size: labelled samples before the first round.
        initial_selection: "balanced" (same count per class, as far as possible) or "random".
        query_size: B, samples labelled per round.
        rounds: R, acquisition rounds (R + 1 trained models and learning-curve points).
        budget: optional cap on the labelled-set size; the last queries shrink to fit it.
        pool_subset: score only a random subset of M unlabelled samples (None: the whole pool).
        pool_subset_refresh: draw a new subset every round (True) or one for the whole run.
        record_history: RECORD every round's pool probabilities (needed by history strategies).
        warm_start: keep training the previous round's model instead of a fresh one.
    """

    initial_size: int = 100
    initial_selection: str = "balanced"
    query_size: int = 100
    rounds: int = 10
    budget: int | None = None
    pool_subset: int | None = None
    pool_subset_refresh: bool = True
    record_history: bool = True
    warm_start: bool = False


@dataclass(frozen=True)
class TrainerSettings:
    """``trainer.*`` config: the training recipe of issue 7 (numbers in the README).

    The number of optimiser steps is ``max(epochs * ceil(L / batch_size), min_steps)``:
    early rounds have few labels, and a fixed epoch count would then give the
    model only a handful of updates.

    ``optimizer``: adam | adamw | nadam | sgd (``momentum`` is read by sgd only).
    ``lr_schedule="cosine"`` anneals the learning rate to 0 over those steps
    after ``warmup_steps`` of linear warm-up, so the model that is evaluated
    sits at the end of an annealed run instead of wherever the last noisy
    step left it. ``ema_decay > 0`` keeps an exponential moving average of the
    weights (and batch-norm buffers) over the second half of the steps and
    evaluates that average: an average of the last checkpoints, which smooths
    what a single step leaves behind (0 = off).
    """

    epochs: int = 30
    min_steps: int = 300
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    lr_schedule: str = "cosine"
    warmup_steps: int = 30
    ema_decay: float = 0.99


@dataclass(frozen=True)
class InferenceSettings:
    """``inference.*`` config: batch size of every forward pass and the MC-dropout setup.

    ``mc_samples`` is K, for strategies that need mc_log_probs. ``mc_mode``: head
    (the backbone once, K dropout masks on the head as one batched op) or full
    (K full-network passes).
    """

    batch_size: int = 1024
    mc_samples: int = 20
    mc_mode: str = "head"


@dataclass(frozen=True)
class TrackingSettings:
    """``tracking.*`` config: the MLflow store (a SQLite file beside the launch folder by default)."""

    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "alsweep"
    artifact_location: str | None = "mlruns"


@dataclass
class KernelsSchema:
    """``kernels.*``: ``backend`` is auto (fused CuPy kernels on CUDA where one exists, torch elsewhere),
    torch, or cupy (fails before training without CUDA + CuPy)."""

    backend: str = "auto"


@dataclass
class StrategySchema:
    """``strategy.*``: the registry name; ``params`` is free-form, its defaults are the strategy function's."""

    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetSchema:
    """``dataset.*``: the keys every dataset has. The node is open: a dataset's own builder
    options (``num_classes``, ``test_fraction`` ...) sit beside them, with the registry's defaults."""

    name: str = MISSING
    root: str | None = None
    download: bool = True


@dataclass
class ModelSchema:
    """``model.*``: the registry name; the node is open for the model's builder options."""

    name: str = MISSING


@dataclass
class AlsweepSchema:
    """The primary config (conf/config.yaml extends it). ``threads``: torch intra-op threads per job
    (None = torch's default); ``resume``: auto | never | must (see the README)."""

    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    resume: str = "auto"
    dataset: DatasetSchema = field(default_factory=DatasetSchema)
    model: ModelSchema = field(default_factory=ModelSchema)
    strategy: StrategySchema = field(default_factory=StrategySchema)
    loop: LoopSettings = field(default_factory=LoopSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    kernels: KernelsSchema = field(default_factory=KernelsSchema)


#: Config groups with yaml options in conf/<group>/ and their base schema ``<group>/base_<group>``.
GROUP_SCHEMAS: dict[str, type] = {
    "dataset": DatasetSchema,
    "model": ModelSchema,
    "loop": LoopSettings,
    "trainer": TrainerSettings,
    "tracking": TrackingSettings,
}
#: Nodes whose keys are not all known in advance (builder options); the rest of the schema is closed.
OPEN_NODES = ("dataset", "model")


def schema_node(schema: type = AlsweepSchema) -> DictConfig:
    """The schema as a writable DictConfig (frozen settings classes give read-only nodes)."""
    node = OmegaConf.structured(schema)
    _clear_readonly(node)
    if schema is AlsweepSchema:
        for key in OPEN_NODES:
            OmegaConf.set_struct(node[key], False)
    elif schema in (DatasetSchema, ModelSchema):
        OmegaConf.set_struct(node, False)
    return node


def _clear_readonly(node: DictConfig) -> None:
    OmegaConf.set_readonly(node, None)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _clear_readonly(child)


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore; call before anything composes a config. Idempotent:
    storing a name again replaces the same node."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name=PRIMARY_SCHEMA, node=schema_node(AlsweepSchema))
    for group, schema in GROUP_SCHEMAS.items():
        store.store(group=group, name=f"base_{group}", node=schema_node(schema))


def schema_defaults() -> dict:
    """The schema's defaults as plain containers; a MISSING value (a name) is left out."""
    return _without_missing(OmegaConf.to_container(OmegaConf.structured(AlsweepSchema)))


def _without_missing(values: Mapping) -> dict:
    kept = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            kept[key] = _without_missing(value)
        elif value != MISSING:
            kept[key] = value
    return kept


def field_type(schema: type, name: str) -> Any:
    """The declared type of a schema field (annotations are strings under ``from __future__``)."""
    import typing

    return typing.get_type_hints(schema).get(name)


def field_names(schema: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(schema))
