"""The wheel works where the source tree is out of reach: build, install into a clean venv, run from /tmp.

Honest yet fast: the venv is made by the *base* interpreter (not this venv), so
it starts without alsweep, torch or anything else. Its only window on the
dependencies is a .pth line naming a folder of links to this environment's
site-packages entries, minus every alsweep entry (the editable install's
finder and metadata); a path named in a .pth file is searched but its own .pth
files are not run, so no editable hook can leak in. pip installs the wheel
with ``--no-index``: a dependency the wheel declares but the environment lacks
fails the test instead of being downloaded. Every command runs from a
temporary folder with PYTHONPATH unset, and the test checks that
``experiments`` is imported from the new venv.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What a source distribution needs to build the wheel.
SOURCE_ITEMS = ("pyproject.toml", "setup.py", "README.md", "conf", "strategies", "kernels", "experiments")
#: Site-packages entries that belong to alsweep itself (editable install, metadata, plugins under test).
OWN_PREFIXES = ("alsweep", "__editable__", "__editable___alsweep", "strategies", "kernels", "experiments")

pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true", ALSWEEP_DATA=str(tmp_path / "data_cache"), NO_COLOR="1", HOME=str(tmp_path / "home")
    )
    return env


def build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so the checkout gets no build/ or egg-info."""
    source = tmp_path / "src"
    source.mkdir()
    for item in SOURCE_ITEMS:
        origin = REPO / item
        if origin.is_dir():
            shutil.copytree(origin, source / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / item)
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(source)],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
    )
    (wheel,) = dist.glob("alsweep-*.whl")
    return wheel


def clean_venv(tmp_path: Path) -> Path:
    """A venv of the base interpreter that sees this environment's dependencies but no alsweep."""
    venv = tmp_path / "venv"
    # without pip: the venv's own old setuptools would shadow the one torch needs; pip runs from outside (--python)
    _run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=_clean_env(tmp_path))
    python = venv / "bin" / "python"
    venv_site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, _clean_env(tmp_path)).stdout.strip()
    )
    deps = tmp_path / "deps"
    deps.mkdir()
    for site_dir in site.getsitepackages():
        for entry in Path(site_dir).iterdir():
            if entry.name.startswith(OWN_PREFIXES) or entry.suffix == ".pth" or entry.name == "pip":
                continue
            if not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    (venv_site / "alsweep-test-deps.pth").write_text(f"{deps}\n")
    return venv


def test_wheel_installs_into_a_clean_venv_and_runs_the_smoke_experiment(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = clean_venv(tmp_path)
    python, alsweep = venv / "bin" / "python", venv / "bin" / "alsweep"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(tmp_path)

    probe = [str(python), "-c", "import experiments"]
    assert subprocess.run(probe, cwd=elsewhere, env=env, capture_output=True).returncode != 0, "alsweep leaks into the clean venv"

    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q", str(wheel)], cwd=elsewhere, env=env)
    where = _run(
        [str(python), "-c", "import experiments, alsweep_conf, experiments.cli as c; print(experiments.__file__); print(c.CONFIG_DIR)"],
        cwd=elsewhere,
        env=env,
    ).stdout.split()
    assert all(Path(path).is_relative_to(venv) for path in where), where

    listing = _run([str(alsweep), "strategies", "--json"], cwd=elsewhere, env=env).stdout
    assert '"name": "bald"' in listing and '"origin": "builtin"' in listing
    # the old failure of a non-editable install: "unknown strategy 'bald'; valid: " with an empty list
    typo = subprocess.run([str(alsweep), "strategy=bals"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert typo.returncode == 2 and "did you mean 'bald'?" in typo.stderr and "valid: badge, bald, batchbald" in typo.stderr  # a non-empty list: the wheel found the registry

    run = _run([str(alsweep), "experiment=smoke", "tracking=disabled"], cwd=elsewhere, env=env)
    assert "final accuracy" in run.stdout + run.stderr
    assert not (elsewhere / "mlflow.db").exists()
