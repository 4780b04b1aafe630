"""Dataset and model registries: lookup errors, options, entry-point plugins, live name lists."""

from __future__ import annotations

import sys
import textwrap
from importlib import metadata

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import experiments.datasets.registry as dataset_registry
import experiments.models as models
from experiments.cli import CONFIG_DIR
from experiments.config import parse_settings
from experiments.datasets import DATASET_NAMES, ALDataset, dataset_sizes, get_dataset, load_dataset, register_dataset
from experiments.errors import ConfigError
from experiments.models import MODEL_NAMES, build_model, get_model
from experiments.registry import Registry
from strategies.errors import UnknownNameError


@pytest.fixture
def fresh(monkeypatch):
    """Registries whose additions vanish after the test."""
    for registry in (dataset_registry.DATASETS, models.MODELS):
        monkeypatch.setattr(registry, "_specs", dict(registry._specs))
        monkeypatch.setattr(registry, "_failures", {})
        monkeypatch.setattr(registry, "_plugins_loaded", False)
    return monkeypatch


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownNameError, match=r"unknown model 'cnnn' \(key 'model.name'\); did you mean 'cnn'\?"):
        build_model("cnnn", input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(UnknownNameError, match="did you mean 'synthetic'"):
        get_dataset("synthetc")


def test_specs_list_options_with_defaults():
    assert dict(get_model("cnn").defaults) == {"dropout": 0.5, "width": 32, "embedding_dim": 128}
    assert get_dataset("digits").defaults["test_fraction"] == 0.25 and get_dataset("mnist").defaults == {}
    assert get_dataset("fashion_mnist").module == "experiments.datasets.idx"
    with pytest.raises(ConfigError, match=r"^model.depth: unknown option for model 'mlp'; accepted options: dropout, hidden$"):
        build_model("mlp", input_shape=(4,), num_classes=2, depth=3)


def test_a_registered_dataset_and_model_are_usable_everywhere(fresh):
    @register_dataset(name="tiny_blobs", defaults={"n": 6}, description="test dataset")
    def tiny_blobs(name, root, download, options) -> ALDataset:
        n = options["n"]
        x = torch.arange(2 * n, dtype=torch.float32).reshape(n, 2)
        y = torch.arange(n) % 2
        return ALDataset(name, x, y, x[:2], y[:2], 2, (2,), "fp", "memory")

    @models.register_model(name="linear_probe", defaults={"dropout": 0.0})
    def linear_probe(input_shape, num_classes, options):
        return models.ALModel(torch.nn.Flatten(), int(torch.tensor(input_shape).prod()), num_classes, options["dropout"])

    assert "tiny_blobs" in DATASET_NAMES and "linear_probe" in MODEL_NAMES
    assert load_dataset("tiny_blobs", n=4).train_size == 4
    assert dataset_sizes("tiny_blobs") == (6, 2)  # no sizes function: measured by loading
    with pytest.raises(ConfigError, match="dataset.m: unknown option for dataset 'tiny_blobs'; accepted options: n"):
        load_dataset("tiny_blobs", m=1)
    assert build_model("linear_probe", input_shape=(2,), num_classes=2).embedding_dim == 2
    # the config layer (another module, unchanged) sees them through the live name lists
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("config", overrides=["experiment=smoke", "dataset.name=tiny_blobs", "model.name=linear_probe"])
    GlobalHydra.instance().clear()
    settings = parse_settings(cfg)
    assert settings.dataset.name == "tiny_blobs" and settings.model.name == "linear_probe"


def test_live_name_lists_behave_like_the_old_tuples():
    assert tuple(DATASET_NAMES) == ("cifar10", "digits", "fashion_mnist", "mnist", "synthetic")
    assert MODEL_NAMES == ("cnn", "mlp", "resnet18") and len(MODEL_NAMES) == 3 and MODEL_NAMES[0] == "cnn"
    assert "nope" not in MODEL_NAMES


def test_registration_rules():
    registry = Registry("widget", "alsweep.test_widgets", config_key="widget.name")
    with pytest.raises(ValueError, match="snake_case"):
        registry.register(name="BadName")
    registry.register(name="one")(len)
    registry.register(name="one")(len)  # the same object again: a re-import, fine
    with pytest.raises(ValueError, match="already registered"):
        registry.register(name="one")(sorted)


@pytest.mark.parametrize("kind", ["dataset", "model"])
def test_entry_point_plugins_load_and_failures_are_kept(fresh, tmp_path, kind):
    module_name = f"alsweep_test_{kind}_plugin"
    if kind == "dataset":
        body = '''
            import torch
            from experiments.datasets import ALDataset, register_dataset

            @register_dataset(name="plugin_data", description="from a plugin")
            def plugin_data(name, root, download, options):
                x = torch.zeros(4, 3)
                return ALDataset(name, x, torch.tensor([0, 1, 0, 1]), x, torch.tensor([0, 1, 0, 1]), 2, (3,), "fp", "plugin")
        '''
        registry, group, name = dataset_registry.DATASETS, "alsweep.datasets", "plugin_data"
    else:
        body = '''
            import torch
            from experiments.models import ALModel, register_model

            @register_model(name="plugin_net", defaults={"dropout": 0.1})
            def plugin_net(input_shape, num_classes, options):
                return ALModel(torch.nn.Flatten(), 3, num_classes, options["dropout"], name="plugin_net")
        '''
        registry, group, name = models.MODELS, "alsweep.models", "plugin_net"
    (tmp_path / f"{module_name}.py").write_text(textwrap.dedent(body))
    fresh.syspath_prepend(str(tmp_path))
    good = metadata.EntryPoint(name=name, value=module_name, group=group)
    broken = metadata.EntryPoint(name="broken", value="alsweep_no_such_module", group=group)
    fresh.setattr(
        "experiments.registry.metadata.entry_points", lambda group: [good, broken] if group == registry.entry_point_group else []
    )
    with pytest.warns(UserWarning, match=f"could not load {kind} plugin 'broken'"):
        assert name in registry.names()
    assert registry.get(name).origin == f"plugin:{module_name}"
    assert "ModuleNotFoundError" in registry.plugin_failures()["broken"][1]
    if kind == "dataset":
        assert load_dataset(name).source == "plugin"
    else:
        assert build_model(name, input_shape=(3,), num_classes=2).dropout == 0.1
    sys.modules.pop(module_name, None)
