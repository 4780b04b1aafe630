"""Tests for the Hydra config tree (conf/) and experiments.config: every group and
preset composes and validates, the strategy yamls mirror the registry, and bad
values fail before any training with one line naming the key and the value."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import experiments.cli
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
from experiments.errors import ConfigError
from experiments.loop import LoopSettings
from strategies import StrategyInputError, UnknownNameError, available_strategies, get_strategy

CONF = Path(experiments.cli.CONFIG_DIR)
GROUPS = ("dataset", "model", "strategy", "loop", "trainer", "tracking", "experiment")
LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


@pytest.fixture(scope="module")
def composer():
    """``compose(overrides)`` against conf/, with Hydra's own config, cleared afterwards."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield lambda overrides=(): compose("config", overrides=list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def smoke(composer) -> dict:
    """The smoke preset as resolved plain containers (mutate a deep copy per test)."""
    return resolved_container(composer(["experiment=smoke"]))


def _with(container: dict, **dotted) -> dict:
    """A deep copy of ``container`` with ``{"loop.query_size": 0}``-style keys set (``__`` stands for ``.``)."""
    result = copy.deepcopy(container)
    for dotted_key, value in dotted.items():
        *parents, last = dotted_key.split("__")
        node = result
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return result


# --------------------------------------------------------------------------- composition


def test_every_group_has_options():
    for group in GROUPS:
        assert _options(group), f"conf/{group}/ has no yaml"


@pytest.mark.parametrize(
    "group, option", [(group, option) for group in GROUPS for option in _options(group)]
)
def test_every_option_of_every_group_composes_and_validates(composer, group, option):
    cfg = composer([f"{group}={option}"])
    assert cfg.hydra.runtime.choices[group] == option
    settings = parse_settings(cfg)
    assert isinstance(settings, ExperimentSettings)
    if group in ("dataset", "model", "strategy"):
        assert getattr(settings, group).name == option
    if group == "tracking":
        assert settings.tracking.enabled == (option != "disabled")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes(composer, launcher):
    cfg = composer([f"hydra/launcher={launcher}", "experiment=smoke"])
    assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher
    target = cfg.hydra.launcher._target_
    expected = {
        "basic": "BasicLauncher",
        "joblib": "JoblibLauncher",
        "submitit_local": "LocalLauncher",
        "submitit_slurm": "SlurmLauncher",
    }[launcher]
    assert target.endswith(expected)
    settings = parse_settings(cfg)
    assert settings.strategy.name == "entropy" and settings.dataset.name == "synthetic"


def test_default_config(composer):
    cfg = composer()
    settings = parse_settings(cfg)
    assert (settings.dataset.name, settings.model.name, settings.strategy.name) == ("fashion_mnist", "cnn", "random")
    assert settings.tracking.uri == "sqlite:///mlflow.db" and settings.tracking.enabled
    assert cfg.hydra.mode is None  # under compose(); the CLI sets RUN / MULTIRUN
    assert cfg.hydra.job.chdir is False


def test_demo_preset_is_a_multirun_over_all_strategies_and_three_seeds(composer):
    cfg = composer(["experiment=demo"])
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    params = cfg.hydra.sweeper.params
    strategies = [name.strip() for name in params.strategy.split(",")]
    # issue 5: the demo keeps its 9 strategies unless more fit its 15 minutes; the registry grows beyond it
    assert set(strategies) <= set(available_strategies()) and len(strategies) == 9
    assert len(set(strategies)) == len(strategies)
    assert [seed.strip() for seed in str(params.seed).split(",")] == ["0", "1", "2"]
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "joblib"
    settings = parse_settings(cfg)
    assert settings.dataset.name == "fashion_mnist" and settings.tracking.experiment == "demo"
    assert settings.loop.pool_subset == 5000 and settings.loop.pool_subset_refresh is False
    # every strategy of the sweep validates with the demo's settings (model has dropout, history on)
    for name in strategies:
        settings = parse_settings(composer(["experiment=demo", f"strategy={name}"]))
        check_needs(settings, supports_mc_dropout=settings.model.options["dropout"] > 0)


def test_benchmark_fmnist_preset_mirrors_cdalbench_and_covers_every_strategy(composer):
    cfg = composer(["experiment=benchmark_fmnist"])
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    params = cfg.hydra.sweeper.params
    strategies = [name.strip() for name in params.strategy.split(",")]
    # the registry grows as strategies are added: the preset must list every one
    assert sorted(strategies) == sorted(available_strategies())
    assert len(set(strategies)) == len(strategies)
    assert len(str(params.seed).split(",")) >= 5
    settings = parse_settings(cfg)
    assert settings.dataset.name == "fashion_mnist" and settings.model.name == "resnet18"
    assert settings.device == "cuda" and settings.tracking.experiment == "benchmark_fmnist"
    assert (settings.trainer.optimizer, settings.trainer.lr, settings.trainer.batch_size) == ("nadam", 0.001, 64)
    assert settings.trainer.weight_decay == 0.0
    assert settings.loop.initial_size == 1000 and settings.loop.initial_selection == "balanced"  # 100 per class
    assert settings.loop.budget - settings.loop.initial_size == 1000
    for name in strategies:
        settings = parse_settings(composer(["experiment=benchmark_fmnist", f"strategy={name}"]))
        check_needs(settings, supports_mc_dropout=settings.model.options.get("dropout", 0.5) > 0)


def test_smoke_preset(composer):
    settings = parse_settings(composer(["experiment=smoke"]))
    assert (settings.dataset.name, settings.model.name, settings.strategy.name) == ("synthetic", "mlp", "entropy")
    assert settings.tracking.experiment == "smoke"
    check_against_dataset(settings.loop, settings.dataset.options["train_size"])


def test_command_line_overrides_beat_the_preset(composer):
    settings = parse_settings(composer(["experiment=smoke", "strategy=bald", "loop.query_size=7", "seed=3"]))
    assert settings.strategy.name == "bald" and settings.loop.query_size == 7 and settings.seed == 3


def test_run_dir_interpolates_strategy_dataset_and_seed(composer):
    cfg = composer(["experiment=smoke", "strategy=tod", "seed=4"])
    # resolved inside the job, where hydra.job.num exists
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "${hydra.job.num}_${strategy.name}_s${seed}"
    run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"]
    # a per-launch id last, so that two identical commands in the same second get two folders
    assert re.search(r"_tod_synthetic_s4_[0-9a-f]{6}$", run_dir), run_dir
    assert re.search(r"_[0-9a-f]{6}$", cfg.hydra.sweep.dir)


# --------------------------------------------------------------------------- strategy yamls == registry


def test_strategy_yamls_mirror_the_registry():
    assert tuple(_options("strategy")) == available_strategies()
    for stem in _options("strategy"):
        node = yaml.safe_load((CONF / "strategy" / f"{stem}.yaml").read_text())
        assert set(node) == {"name", "params"}, stem
        assert node["name"] == stem
        spec = get_strategy(stem)
        params = node["params"] or {}
        assert set(params) == set(spec.defaults), stem
        for key, value in params.items():
            assert value == spec.defaults[key], (stem, key)


# --------------------------------------------------------------------------- parse_settings errors


@pytest.mark.parametrize(
    "change, key, value",
    [
        ({"loop__query_size": 0}, "loop.query_size", "0"),
        ({"loop__rounds": -1}, "loop.rounds", "-1"),
        ({"loop__initial_size": -5}, "loop.initial_size", "-5"),
        ({"loop__initial_selection": "stratified"}, "loop.initial_selection", "stratified"),
        ({"loop__budget": 0}, "loop.budget", "0"),
        ({"loop__budget": 10}, "loop.budget", "10"),  # smaller than initial_size 20
        ({"loop__pool_subset": 0}, "loop.pool_subset", "0"),
        ({"loop__record_history": "yes"}, "loop.record_history", "yes"),
        ({"loop__foo": 1}, "loop.foo", None),
        ({"trainer__optimizer": "rmsprop"}, "trainer.optimizer", "rmsprop"),
        ({"trainer__lr": 0}, "trainer.lr", "0"),
        ({"trainer__batch_size": 0}, "trainer.batch_size", "0"),
        ({"trainer__epochs": 0, "trainer__min_steps": 0}, "trainer.epochs", None),
        ({"trainer__bogus": 1}, "trainer.bogus", None),
        ({"trainer__lr_schedule": "step"}, "trainer.lr_schedule", "step"),
        ({"trainer__warmup_steps": -1}, "trainer.warmup_steps", "-1"),
        ({"trainer__ema_decay": 1.0}, "trainer.ema_decay", "1.0"),
        ({"trainer__ema_decay": -0.1}, "trainer.ema_decay", "-0.1"),
        ({"device": "tpu"}, "device", "tpu"),
        ({"seed": -1}, "seed", "-1"),
        ({"seed": "zero"}, "seed", "zero"),
        ({"threads": 0}, "threads", "0"),
        ({"inference__mc_samples": 1}, "inference.mc_samples", "1"),
        ({"inference__mc_mode": "partial"}, "inference.mc_mode", "partial"),
        ({"inference__batch_size": 0}, "inference.batch_size", "0"),
        ({"dataset__download": "no"}, "dataset.download", "no"),
        ({"tracking__endpoint": "x"}, "tracking.endpoint", None),
        ({"strategy__params": {"foo": 1}}, "strategy.params.foo", None),
        ({"strategy__params": {"prior_c": 1}, "strategy__name": "flip_rate"}, "strategy.params.prior_c", None),
        ({"strategy__params": [1]}, "strategy.params", "[1]"),
        ({"extra": 1}, "extra", None),
    ],
)
def test_bad_values_name_the_key_and_the_value_in_one_line(smoke, change, key, value):
    with pytest.raises((ConfigError, StrategyInputError)) as info:
        parse_settings(_with(smoke, **change))
    message = str(info.value)
    assert "\n" not in message
    assert key in message, message
    if value is not None:
        assert value in message, message


def test_bool_is_not_an_int(smoke):
    with pytest.raises(ConfigError, match="loop.query_size"):
        parse_settings(_with(smoke, loop__query_size=True))


@pytest.mark.parametrize(
    "change, kind, given, closest",
    [
        ({"strategy__name": "bals"}, "strategy", "bals", "bald"),
        ({"strategy__name": "entrpy"}, "strategy", "entrpy", "entropy"),
        ({"dataset__name": "fashion_mnst"}, "dataset", "fashion_mnst", "fashion_mnist"),
        ({"model__name": "resnet81"}, "model", "resnet81", "resnet18"),
    ],
)
def test_unknown_names_suggest_the_closest(smoke, change, kind, given, closest):
    with pytest.raises(UnknownNameError) as info:
        parse_settings(_with(smoke, **change))
    message = str(info.value)
    assert "\n" not in message
    assert f"'{given}'" in message and f"did you mean '{closest}'" in message
    assert f"{kind}.name" in message
    assert info.value.closest == [closest]


def test_parse_settings_types(smoke):
    settings = parse_settings(smoke)
    assert settings.loop == LoopSettings(initial_size=20, query_size=20, rounds=3)
    assert settings.model.options == {"dropout": 0.5, "hidden": [32]}
    assert settings.dataset.options["train_size"] == 1200 and "name" not in settings.dataset.options
    assert settings.inference.mc_samples == 4
    assert settings.strategy is get_strategy("entropy") and settings.strategy_params == {}
    flip = parse_settings(_with(smoke, strategy__name="flip_rate", strategy__params={"prior_a": 2.0}))
    assert flip.strategy_params == {"prior_a": 2.0}


def test_parse_settings_accepts_dictconfig_and_dict(composer, smoke):
    cfg = composer(["experiment=smoke"])
    assert parse_settings(cfg) == parse_settings(smoke)
    # a hydra node in a plain container is ignored too
    assert parse_settings({**smoke, "hydra": {"anything": 1}}) == parse_settings(smoke)


# --------------------------------------------------------------------------- cross checks


def test_check_needs_bald_without_dropout(smoke):
    settings = parse_settings(_with(smoke, strategy__name="bald", model__dropout=0.0))
    with pytest.raises(ConfigError) as info:
        check_needs(settings, supports_mc_dropout=False)
    message = str(info.value)
    assert "model.dropout" in message and "bald" in message and "\n" not in message
    check_needs(parse_settings(_with(smoke, strategy__name="bald")), supports_mc_dropout=True)
    # strategies without mc needs do not care about dropout
    check_needs(parse_settings(_with(smoke, strategy__name="entropy", model__dropout=0.0)), supports_mc_dropout=False)


@pytest.mark.parametrize("name", ["tod", "flip_rate"])
def test_check_needs_history_strategy_without_history(smoke, name):
    settings = parse_settings(_with(smoke, strategy__name=name, loop__record_history=False))
    with pytest.raises(ConfigError) as info:
        check_needs(settings, supports_mc_dropout=True)
    assert "loop.record_history" in str(info.value) and name in str(info.value)
    check_needs(parse_settings(_with(smoke, strategy__name=name)), supports_mc_dropout=True)
    check_needs(parse_settings(_with(smoke, loop__record_history=False)), supports_mc_dropout=True)


@pytest.mark.parametrize(
    "loop, key, value",
    [
        (LoopSettings(initial_size=101, query_size=1, rounds=0), "loop.initial_size", "101"),
        (LoopSettings(initial_size=10, query_size=10, rounds=1, budget=101), "loop.budget", "101"),
        (LoopSettings(initial_size=10, query_size=10, rounds=10), "loop.rounds", "110"),
    ],
)
def test_check_against_dataset(loop, key, value):
    with pytest.raises(ConfigError) as info:
        check_against_dataset(loop, train_size=100)
    message = str(info.value)
    assert key in message and value in message and "(100)" in message and "\n" not in message


def test_check_against_dataset_accepts_what_fits():
    check_against_dataset(LoopSettings(initial_size=100, query_size=1, rounds=0), train_size=100)
    check_against_dataset(LoopSettings(initial_size=10, query_size=10, rounds=9), train_size=100)
    # a budget lets rounds x query_size overshoot: the loop stops at the budget
    check_against_dataset(LoopSettings(initial_size=10, query_size=10, rounds=50, budget=100), train_size=100)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ConfigError, match="'cuda'") as info:
            resolve_device("cuda")
        assert "device" in str(info.value) and "\n" not in str(info.value)


def test_resolve_device_cuda_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


# --------------------------------------------------------------------------- workflow id and params


def test_workflow_id_ignores_seed_and_tracking_only(composer):
    def wid(*overrides):
        return workflow_id(resolved_container(composer(["experiment=smoke", *overrides])))

    base = wid()
    assert len(base) == 16 and all(c in "0123456789abcdef" for c in base)
    assert wid() == base  # stable
    assert wid("seed=7") == base
    assert wid("tracking=disabled") == base
    assert wid("tracking.experiment=other", "seed=1") == base
    assert wid("hydra/launcher=joblib") == base
    assert wid("strategy=tod") != base
    assert wid("loop.query_size=10") != base
    assert wid("model.dropout=0.25") != base
    assert wid("dataset.data_seed=1") != base


def test_workflow_id_is_order_independent():
    a = {"seed": 0, "loop": {"rounds": 1, "query_size": 2}, "strategy": {"name": "x"}}
    b = {"strategy": {"name": "x"}, "loop": {"query_size": 2, "rounds": 1}, "seed": 5}
    assert workflow_id(a) == workflow_id(b)


def test_flatten_config_shape():
    flat = flatten_config(
        {
            "seed": 0,
            "threads": None,
            "loop": {"query_size": 100, "budget": None, "record_history": True},
            "model": {"name": "mlp", "hidden": [32, 16]},
            "strategy": {"name": "flip_rate", "params": {"prior_a": 1.0}},
            "empty": {},
        }
    )
    assert flat == {
        "seed": "0",
        "threads": "None",
        "loop.query_size": "100",
        "loop.budget": "None",
        "loop.record_history": "True",
        "model.name": "mlp",
        "model.hidden": "[32, 16]",
        "strategy.name": "flip_rate",
        "strategy.params.prior_a": "1.0",
        "empty": "{}",
    }
    assert all(isinstance(value, str) for value in flat.values())


def test_flatten_config_of_a_composed_config(smoke):
    flat = flatten_config(smoke)
    assert flat["loop.query_size"] == "20"
    assert flat["strategy.name"] == "entropy"
    assert flat["model.hidden"] == "[32]"
    assert flat["strategy.params"] == "{}"
    assert not any(key.startswith("hydra") for key in flat)
