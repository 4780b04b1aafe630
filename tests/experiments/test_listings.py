"""``alsweep strategies | datasets | models``: every registered entry, plugins marked, failures shown."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import strategies.registry as strategy_registry
from experiments.cli import main
from strategies import available_strategies, get_strategy
from tests.experiments.cli_helpers import alsweep_executable, cli_env


def _json_listing(capsys, kind: str) -> list[dict]:
    assert main([kind, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_strategies_json_lists_the_registry_with_code_hashes(capsys):
    rows = {row["name"]: row for row in _json_listing(capsys, "strategies")}
    assert set(rows) == set(available_strategies())
    flip = rows["flip_rate"]
    assert flip == {
        "name": "flip_rate",
        "version": get_strategy("flip_rate").version,
        "family": "strategies.history",
        "needs": ["history"],
        "batch_aware": False,
        "params": {"prior_a": 1.0, "prior_b": 1.0},
        "paper": get_strategy("flip_rate").paper,
        "code_hash": get_strategy("flip_rate").code_hash,
        "origin": "builtin",
    }
    assert rows["coreset"]["batch_aware"] is True


def test_datasets_and_models_json(capsys):
    datasets = {row["name"]: row for row in _json_listing(capsys, "datasets")}
    assert {"cifar10", "digits", "fashion_mnist", "mnist", "synthetic"} <= set(datasets)
    assert datasets["synthetic"]["options"]["train_size"] == 1200
    assert datasets["mnist"]["module"] == "experiments.datasets.idx"
    models = {row["name"]: row for row in _json_listing(capsys, "models")}
    assert set(models) >= {"cnn", "mlp", "resnet18"} and models["cnn"]["options"]["width"] == 32


def test_plugins_are_marked_and_a_broken_plugin_is_shown(tmp_path, monkeypatch, capsys):
    (tmp_path / "alsweep_listing_plugin.py").write_text(textwrap.dedent('''
        import torch
        from strategies import Selection, register_strategy

        @register_strategy(name="listing_probe", version="0.3", paper="test")
        def listing_probe(pool, query_size, *, generator, depth: int = 2):
            return Selection(torch.arange(min(query_size, pool.size)))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    group = strategy_registry.ENTRY_POINT_GROUP
    points = [
        metadata.EntryPoint(name="listing_probe", value="alsweep_listing_plugin", group=group),
        metadata.EntryPoint(name="broken_probe", value="alsweep_missing_module_xyz", group=group),
    ]
    monkeypatch.setattr(strategy_registry.metadata, "entry_points", lambda group: points if group == strategy_registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(strategy_registry, "_entry_points_loaded", False)
    monkeypatch.setattr(strategy_registry, "_REGISTRY", dict(strategy_registry._REGISTRY))
    monkeypatch.setattr(strategy_registry, "_PLUGIN_FAILURES", {})
    rows = {row["name"]: row for row in _json_listing(capsys, "strategies")}
    probe, broken = rows["listing_probe"], rows["broken_probe"]
    assert probe["origin"] == "plugin:alsweep_listing_plugin" and probe["params"] == {"depth": 2}
    assert len(probe["code_hash"]) == 16 and probe["family"] == "alsweep_listing_plugin"
    assert broken["origin"] == "plugin (failed)"
    assert broken["code_hash"].startswith("import failed: ModuleNotFoundError")

    assert main(["strategies"]) == 0  # the table renders failed rows too
    table = capsys.readouterr().out
    assert "listing_probe" in table and "broken_probe" in table and "import failed" in table
    sys.modules.pop("alsweep_listing_plugin", None)


def test_the_console_script_prints_the_table(tmp_path):
    result = subprocess.run(
        [alsweep_executable(), "strategies"], capture_output=True, text=True, cwd=tmp_path, env=cli_env(tmp_path), timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "code hash" in result.stdout and get_strategy("bald").code_hash in result.stdout


def test_unknown_option_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["models", "--yaml"])
    assert raised.value.code == 2 and "unrecognized arguments: --yaml" in capsys.readouterr().err
