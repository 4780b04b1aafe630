"""The yaml a user reads and the settings dataclasses must give the same defaults.

Every option of the ``trainer`` and ``loop`` groups, the ``inference`` and ``kernels``
nodes and the sqlite ``tracking`` option is composed with Hydra and compared, key by key,
against the dataclass defaults: a default changed in one place only fails here.
"""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from experiments.cli import CONFIG_DIR, group_options
from experiments.config import ExperimentSettings, resolved_container
from experiments.inference import InferenceSettings
from experiments.loop import LoopSettings
from experiments.tracking import TrackingSettings
from experiments.training import TrainerSettings

GROUPS = {"trainer": TrainerSettings, "loop": LoopSettings}


def _compose(*overrides: str) -> dict:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return resolved_container(compose("config", overrides=list(overrides)))
    finally:
        GlobalHydra.instance().clear()


def _defaults(settings_class: type) -> dict:
    return {field.name: field.default for field in dataclasses.fields(settings_class)}


@pytest.mark.parametrize(
    ("group", "option"), [(group, option) for group in GROUPS for option in group_options(group)]
)
def test_each_group_option_equals_the_dataclass_defaults(group, option):
    composed = _compose(f"{group}={option}")[group]
    assert composed == _defaults(GROUPS[group])


def test_the_top_level_nodes_equal_the_dataclass_defaults():
    composed = _compose()
    assert composed["inference"] == _defaults(InferenceSettings)
    assert composed["tracking"] == _defaults(TrackingSettings)
    experiment = _defaults(ExperimentSettings)
    assert composed["resume"] == experiment["resume"]
    assert composed["kernels"] == {"backend": experiment["kernels_backend"]}


def test_a_changed_default_is_caught():
    """The comparison can fail: a yaml value that differs from the dataclass is seen."""
    composed = _compose("trainer.epochs=29")["trainer"]
    assert composed != _defaults(TrainerSettings)
