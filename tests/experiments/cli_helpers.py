"""Helpers for the tests that run the ``alsweep`` command as a subprocess."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def alsweep_executable() -> str:
    """The console script beside this interpreter (the venv's), else the one on PATH."""
    sibling = Path(sys.executable).with_name("alsweep")
    if sibling.is_file():
        return str(sibling)
    found = shutil.which("alsweep")
    if found is None:
        pytest.skip("the alsweep console script is not installed")
    return found


def cli_env(directory: Path) -> dict[str, str]:
    """The environment of a test subprocess: no telemetry, a private data cache, plain output."""
    env = dict(os.environ)
    env.update(MLFLOW_DISABLE_TELEMETRY="true", ALSWEEP_DATA=str(directory / "data_cache"), NO_COLOR="1")
    env.pop("HYDRA_FULL_ERROR", None)
    return env
