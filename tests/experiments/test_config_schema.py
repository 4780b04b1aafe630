"""The dataclasses of experiments/settings.py are the single source of the config's defaults and types.

Shown four ways: the yaml files hold no value equal to a schema default (so there is no second
copy to drift); the default choices compose to exactly the schema's defaults; a dataclass
default changed in Python reaches the composed config with no yaml touched; and the schema
rejects what it does not declare (an unknown yaml key, a value of the wrong type), with
one line for a wrong type.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import experiments.settings as settings
from experiments.cli import CONFIG_DIR, group_options
from experiments.config import parse_settings, resolved_container
from experiments.errors import ConfigError
from experiments.settings import (
    GROUP_SCHEMAS,
    AlsweepSchema,
    InferenceSettings,
    LoopSettings,
    TrackingSettings,
    TrainerSettings,
    register_configs,
    schema_defaults,
)
from experiments.validate import schema_error_line, validate_command


def _compose(config_dir: Path, *overrides: str) -> dict:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return resolved_container(compose("config", overrides=list(overrides)))
    finally:
        GlobalHydra.instance().clear()


def _defaults(settings_class: type) -> dict:
    return dataclasses.asdict(settings_class())


@pytest.fixture
def conf_copy(tmp_path) -> Path:
    """A writable copy of conf/ to break on purpose."""
    return Path(shutil.copytree(CONFIG_DIR, tmp_path / "conf"))


# --------------------------------------------------------------------------- one copy of each default


@pytest.mark.parametrize(
    ("group", "option"), [(group, option) for group in GROUP_SCHEMAS for option in group_options(group)]
)
def test_group_yaml_extends_its_schema_and_repeats_no_default(group, option):
    yaml = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml"))
    assert yaml["defaults"] == [f"base_{group}", "_self_"]
    defaults = _without_missing(dataclasses.fields(GROUP_SCHEMAS[group]))
    repeated = {key: value for key, value in yaml.items() if key in defaults and defaults[key] == value}
    assert repeated == {}, f"conf/{group}/{option}.yaml repeats schema defaults {repeated}"


def _without_missing(fields) -> dict:
    return {f.name: f.default for f in fields if f.default is not dataclasses.MISSING and f.default != "???"}


def test_primary_yaml_extends_the_schema_and_sets_no_value():
    yaml = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "config.yaml"))
    assert yaml["defaults"][0] == settings.PRIMARY_SCHEMA
    assert set(yaml) == {"defaults", "hydra"}


def test_default_choices_compose_to_exactly_the_schema_defaults():
    composed = _compose(CONFIG_DIR)
    expected = schema_defaults()
    assert composed["loop"] == _defaults(LoopSettings) == expected["loop"]
    assert composed["trainer"] == _defaults(TrainerSettings) == expected["trainer"]
    assert composed["inference"] == _defaults(InferenceSettings)
    assert composed["tracking"] == _defaults(TrackingSettings)  # tracking=sqlite is the schema as it is
    assert composed["kernels"] == expected["kernels"]
    for key in ("seed", "device", "threads", "resume"):
        assert composed[key] == expected[key]
    assert {key: composed["dataset"][key] for key in ("root", "download")} == expected["dataset"]


def test_a_changed_dataclass_default_reaches_the_composed_config(monkeypatch):
    """No yaml holds trainer.epochs, so a default changed in Python is what every config gets."""

    @dataclass(frozen=True)
    class ShortTrainer(TrainerSettings):
        epochs: int = 7

    @dataclass
    class ShortSchema(AlsweepSchema):
        trainer: TrainerSettings = field(default_factory=ShortTrainer)

    before = _compose(CONFIG_DIR)["trainer"]
    monkeypatch.setattr(settings, "AlsweepSchema", ShortSchema)
    monkeypatch.setitem(settings.GROUP_SCHEMAS, "trainer", ShortTrainer)
    register_configs()
    try:
        after = _compose(CONFIG_DIR)["trainer"]
        smoke = _compose(CONFIG_DIR, "experiment=smoke")["trainer"]
    finally:
        monkeypatch.undo()
        register_configs()
    assert before["epochs"] == 30 and after["epochs"] == 7
    assert {k: v for k, v in after.items() if k != "epochs"} == {k: v for k, v in before.items() if k != "epochs"}
    assert smoke["epochs"] == 5  # a preset's value still wins over the schema
    assert _compose(CONFIG_DIR)["trainer"]["epochs"] == 30  # and registering again restores it


def test_registering_twice_changes_nothing():
    register_configs()
    first = _compose(CONFIG_DIR, "experiment=smoke")
    register_configs()
    assert _compose(CONFIG_DIR, "experiment=smoke") == first


def test_a_container_without_keys_gets_the_schema_defaults():
    """parse_settings fills what a container lacks (a recorded or hand-written config) from the same schema."""
    parsed = parse_settings({"dataset": {"name": "synthetic"}, "model": {"name": "mlp"}, "strategy": {"name": "random"}})
    assert parsed.loop == LoopSettings()
    assert parsed.trainer == TrainerSettings()
    assert parsed.inference == InferenceSettings()
    assert parsed.tracking == TrackingSettings()
    assert (parsed.seed, parsed.device, parsed.threads, parsed.resume, parsed.kernels_backend) == (0, "auto", None, "auto", "auto")
    assert (parsed.dataset.root, parsed.dataset.download) == (None, True)


# --------------------------------------------------------------------------- the schema rejects what it does not declare


def test_a_yaml_key_not_in_the_schema_is_rejected(conf_copy):
    loop_yaml = conf_copy / "loop" / "default.yaml"
    loop_yaml.write_text(loop_yaml.read_text() + "roundz: 3\n")
    with pytest.raises(Exception) as raised:
        _compose(conf_copy)
    assert schema_error_line(raised.value) == (
        "unknown key 'loop.roundz' (did you mean 'rounds'?) in loop/default.yaml; allowed in 'loop': "
        "initial_size, initial_selection, query_size, rounds, budget, pool_subset, pool_subset_refresh, "
        "record_history, warm_start"
    )


def test_a_yaml_value_of_the_wrong_type_is_one_line(conf_copy):
    smoke = conf_copy / "experiment" / "smoke.yaml"
    smoke.write_text(smoke.read_text().replace("  rounds: 3\n", "  rounds: three\n"))
    with pytest.raises(Exception) as raised:
        _compose(conf_copy, "experiment=smoke")
    assert schema_error_line(raised.value) == "loop.rounds must be an integer; got 'three'"


def test_open_nodes_take_builder_options_but_type_their_common_keys():
    composed = _compose(CONFIG_DIR, "experiment=smoke", "+model.extra=3", "+dataset.note=x")
    assert composed["model"]["extra"] == 3 and composed["dataset"]["note"] == "x"
    with pytest.raises(Exception) as raised:
        _compose(CONFIG_DIR, "experiment=smoke", "dataset.download=perhaps")
    assert schema_error_line(raised.value) == "dataset.download must be true or false; got 'perhaps'"


def test_strategy_params_stay_free_form():
    composed = _compose(CONFIG_DIR, "strategy=entropy", "+strategy.params.free_form=2.5")
    assert composed["strategy"] == {"name": "entropy", "params": {"free_form": 2.5}}


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("loop.rounds=abc", "loop.rounds must be an integer; got 'abc'"),
        ("trainer.lr=fast", "trainer.lr must be a number; got 'fast'"),
        ("loop.budget=many", "loop.budget must be an integer or null; got 'many'"),
        ("loop.warm_start=maybe", "loop.warm_start must be true or false; got 'maybe'"),
        ("threads=two", "threads must be an integer or null; got 'two'"),
        ("inference.mc_samples=1.5", "inference.mc_samples must be an integer; got 1.5"),
    ],
)
def test_wrong_types_on_the_command_line_are_one_line(override, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        validate_command(["experiment=smoke", "tracking=disabled", override], CONFIG_DIR)
    assert str(raised.value) == line
    assert list(tmp_path.iterdir()) == []


def test_a_float_override_of_an_int_free_value_is_converted():
    """The schema converts what it can: lr=1 is the float 1.0, rounds='5' the int 5."""
    composed = _compose(CONFIG_DIR, "trainer.lr=1", "loop.rounds='5'")
    assert composed["trainer"]["lr"] == 1.0 and isinstance(composed["trainer"]["lr"], float)
    assert composed["loop"]["rounds"] == 5


def test_rerun_merges_a_recorded_config_onto_the_schema():
    """alsweep rerun runs a recorded config.yaml: keys the schema gained since take its defaults,
    a key it does not declare or a wrong type is one line."""
    from experiments.rerun import schema_checked

    recorded = _compose(CONFIG_DIR, "experiment=smoke")
    older = {key: value for key, value in recorded.items() if key != "kernels"}
    older["trainer"] = {key: value for key, value in recorded["trainer"].items() if key != "ema_decay"}
    assert schema_checked(OmegaConf.create(older)) == recorded
    with pytest.raises(ConfigError, match=r"^loop\.rounds must be an integer; got 'three'$"):
        schema_checked(OmegaConf.create({**recorded, "loop": {**recorded["loop"], "rounds": "three"}}))
    with pytest.raises(ConfigError, match=r"^unknown key 'trainer_old' \(did you mean 'trainer'\?\); allowed at the top level: seed, device"):
        schema_checked(OmegaConf.create({**recorded, "trainer_old": {}}))
