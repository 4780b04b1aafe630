"""A 2-job sweep through hydra-ray-launcher on a local Ray instance, tracked in MLflow.

Runs only where the ``[ray]`` extra is installed (``pip install -e '.[ray]'``); CI does not
install it (about 60 packages and minutes of install time against CI's 20-minute budget).
"""

from __future__ import annotations

import subprocess

import pytest

from experiments.tracking import import_mlflow
from tests.experiments.cli_helpers import alsweep_executable, cli_env

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMOKE_ROUNDS = 3  # conf/experiment/smoke.yaml


def test_two_job_sweep_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the [ray] extra is not installed")
    env = cli_env(tmp_path)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    result = subprocess.run(
        [alsweep_executable(), "-m", "experiment=smoke", "seed=0,1", "tracking.experiment=ray_smoke",
         "hydra/launcher=ray",
         # a private local instance: two CPUs, one per job, no dashboard server
         "+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false",
         "+hydra.launcher.ray.remote.num_cpus=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Ray Launcher is launching 2 jobs" in result.stdout + result.stderr

    client = import_mlflow().MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ray_smoke")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(run.data.tags["seed"] for run in runs) == ["0", "1"]
    assert sorted(run.data.tags["hydra_job_num"] for run in runs) == ["0", "1"]
    assert len({run.data.tags["output_dir"] for run in runs}) == 2
    # the jobs ran in Ray worker processes: Ray prefixes their log lines with the task and its pid
    assert "(_run_job pid=" in result.stdout + result.stderr
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "test_accuracy")
        assert sorted(metric.step for metric in history) == list(range(SMOKE_ROUNDS + 1))
