"""The example plugin (examples/alsweep_example_plugin): pip-installed, found by its entry point, run by the CLI.

pip installs the plugin with ``--target`` into a temporary folder (a real
install: a dist-info with entry_points.txt), so the shared environment is not
changed; that folder goes on PYTHONPATH of the ``alsweep`` subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import strategies.registry as registry
from strategies import StrategyInputError
from tests.experiments.cli_helpers import alsweep_executable, cli_env
from tests.strategies.conftest import full_pool

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "examples" / "alsweep_example_plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    assert list(site.glob("alsweep_example_plugin-*.dist-info/entry_points.txt"))
    return site


def _env(tmp_path: Path, site: Path) -> dict[str, str]:
    env = cli_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(site)])
    return env


def test_listing_marks_the_installed_plugin(tmp_path, plugin_site):
    result = subprocess.run(
        [alsweep_executable(), "strategies", "--json"],
        cwd=tmp_path, env=_env(tmp_path, plugin_site), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    plugin = rows["power_margin"]
    assert plugin["origin"] == "plugin:alsweep-example-plugin" and plugin["family"] == "alsweep_example_plugin.strategies"
    assert plugin["params"] == {"beta": 1.0} and plugin["batch_aware"] is True and len(plugin["code_hash"]) == 16
    assert rows["margin"]["origin"] == "builtin"


@pytest.mark.slow
def test_the_cli_runs_the_plugin_strategy_through_hydra_searchpath(tmp_path, plugin_site):
    result = subprocess.run(
        [
            alsweep_executable(), "experiment=smoke", "tracking=disabled", "strategy=power_margin",
            "strategy.params.beta=2.0", "hydra.searchpath=[pkg://alsweep_example_plugin.conf]", "hydra.run.dir=run",
        ],
        cwd=tmp_path, env=_env(tmp_path, plugin_site), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "power_margin-synthetic-s0 done" in result.stdout + result.stderr
    rows = (tmp_path / "run" / "selections.csv").read_text().splitlines()
    assert rows[0] == "round_index,dataset_index" and len(rows) > 1
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "name: power_margin" in config and "beta: 2.0" in config


def test_a_bad_plugin_parameter_is_one_line(tmp_path, plugin_site):
    result = subprocess.run(
        [
            alsweep_executable(), "experiment=smoke", "tracking=disabled", "strategy=power_margin",
            "+strategy.params.gamma=1", "hydra.searchpath=[pkg://alsweep_example_plugin.conf]", "hydra.run.dir=run",
        ],
        cwd=tmp_path, env=_env(tmp_path, plugin_site), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "power_margin: unknown parameter 'strategy.params.gamma'; allowed: beta" in result.stderr


def test_the_plugin_strategy_keeps_the_contract(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.syspath_prepend(str(PLUGIN))
    monkeypatch.delitem(sys.modules, "alsweep_example_plugin.strategies", raising=False)
    from alsweep_example_plugin.strategies import power_margin

    pool = full_pool()
    first = power_margin(pool, 50, generator=torch.Generator().manual_seed(3))
    again = power_margin(pool, 50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first.indices_B, again.indices_B) and torch.unique(first.indices_B).numel() == 50
    assert sorted(power_margin(full_pool(pool_size=20), 100, generator=torch.Generator()).indices_B.tolist()) == list(range(20))
    # a large beta concentrates the draws on the highest scores
    greedy = power_margin(pool, 20, generator=torch.Generator().manual_seed(0), beta=200.0)
    top = torch.topk(first.scores_N, 60).indices
    assert torch.isin(greedy.indices_B, top).float().mean() > 0.8
    with pytest.raises(StrategyInputError, match=r"power_margin: 'beta' must be a number > 0; got 0"):
        power_margin(pool, 5, generator=torch.Generator(), beta=0)
    sys.modules.pop("alsweep_example_plugin.strategies", None)
    sys.modules.pop("alsweep_example_plugin", None)
