"""Whole AL runs on CUDA, one per kind of strategy input (skipped without a GPU)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import experiments.cli
from experiments.runner import run_experiment

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("strategy", ["entropy", "bald", "coreset", "tod", "flip_rate"])
def test_smoke_run_on_cuda(strategy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(experiments.cli.CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=smoke", f"strategy={strategy}", "device=cuda", "tracking=disabled"])
    GlobalHydra.instance().clear()
    summary = run_experiment(cfg, output_dir=tmp_path / "out", launch_dir=tmp_path)
    assert 0.0 < summary["final_test_accuracy"] <= 1.0
    assert (tmp_path / "out" / "selections.csv").read_text().count("\n") == 1 + 3 * 20
