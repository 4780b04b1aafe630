"""Tests for the ``alsweep`` command: each user error exits non-zero with ONE line
``alsweep: error: ...`` naming the key and the value, never a traceback, and before
any run is tracked; plus unit tests of the group-override check done before Hydra starts.

The error cases run as subprocesses, all started at once (each in its own directory)
so that their start-up costs overlap."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from experiments.cli import CHECKED_GROUPS, check_group_overrides, group_options
from strategies import UnknownNameError, available_strategies
from tests.experiments.cli_helpers import alsweep_executable, cli_env


# name -> (arguments, text that must be in the error line, caught before Hydra starts a job).
# Cases whose error has nothing to do with tracking run with tracking=disabled: importing
# mlflow costs seconds per process.
ERROR_CASES = {
    "strategy_typo": (["experiment=smoke", "strategy=bals"], ["strategy", "'bals'", "did you mean 'bald'"], True),
    "dataset_typo": (
        ["experiment=smoke", "dataset=fashion_mnst"], ["dataset", "'fashion_mnst'", "did you mean 'fashion_mnist'"], True,
    ),
    "query_size_zero": (["experiment=smoke", "loop.query_size=0"], ["loop.query_size", "got 0"], False),
    "initial_size_too_large": (
        ["experiment=smoke", "loop.initial_size=100000"], ["loop.initial_size", "100000", "pool size (1200)"], False,
    ),
    "bald_without_dropout": (
        ["experiment=smoke", "model.dropout=0", "strategy=bald", "tracking=disabled"], ["model.dropout", "bald"], False,
    ),
    "missing_dataset_files": (
        ["experiment=smoke", "dataset=mnist", "dataset.root={empty}", "dataset.download=false", "tracking=disabled"],
        ["'mnist'", "not found", "{empty}", "dataset.root"],
        False,
    ),
    "multirun_typo": (["-m", "experiment=smoke", "strategy=entropy,bals"], ["strategy", "'bals'", "did you mean 'bald'"], True),
    "model_option_typo": (["experiment=smoke", "+model.widht=3", "tracking=disabled"], ["model.widht", "mlp"], False),
    "bad_tracking_uri": (["experiment=smoke", "tracking.uri=mlruns"], ["tracking.uri", "'mlruns'"], False),
}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Run every error case concurrently; name -> (returncode, stdout, stderr, directory)."""
    executable = alsweep_executable()
    started = {}
    for name, (arguments, _, _) in ERROR_CASES.items():
        directory = tmp_path_factory.mktemp(name)
        empty = directory / "empty_root"
        empty.mkdir()
        arguments = [argument.replace("{empty}", str(empty)) for argument in arguments]
        started[name] = (
            subprocess.Popen(
                [executable, *arguments], cwd=directory, env=cli_env(directory),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ),
            directory,
        )
    results = {}
    for name, (process, directory) in started.items():
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results[name] = (process.returncode, stdout, stderr, directory)
    return results


def _run_count(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("select count(*) from runs").fetchone()[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_user_errors_are_one_line(cli_results, name):
    returncode, stdout, stderr, directory = cli_results[name]
    _, expected, before_hydra = ERROR_CASES[name]
    assert returncode != 0, stdout + stderr
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("alsweep: error:")]
    assert len(error_lines) == 1, stderr
    line = error_lines[0]
    message = line[len("alsweep: error:"):].strip()
    assert stderr.count(message) == 1, stderr  # not repeated as a warning or a log record
    for text in expected:
        text = text.replace("{empty}", str(directory / "empty_root"))
        assert text in line, line
    assert "alsweep: error:" not in stdout
    if before_hydra:
        # caught before Hydra composed anything: no job directory, no tracking store
        assert not (directory / "outputs").exists()
        assert not (directory / "mlflow.db").exists()
    elif (directory / "mlflow.db").exists():
        # the store may be prepared by the Hydra callback, but no run was created
        assert _run_count(directory / "mlflow.db") == 0


@pytest.mark.slow
def test_a_valid_single_run(tmp_path):
    result = subprocess.run(
        [alsweep_executable(), "experiment=smoke", "tracking=disabled", "loop.rounds=1"],
        cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    assert re.search(r"_entropy_synthetic_s0_[0-9a-f]{6}$", run_dir.name), run_dir.name  # + the launch's uid
    for name in ("config.yaml", "selections.csv", "learning_curve.csv", "learning_curve.png", "alsweep.log"):
        assert (run_dir / name).is_file(), name
    assert not (tmp_path / "mlflow.db").exists()


# --------------------------------------------------------------------------- check_group_overrides


def test_group_options_are_the_yaml_stems():
    assert group_options("strategy") == list(available_strategies())
    assert "smoke" in group_options("experiment") and "demo" in group_options("experiment")
    for group in CHECKED_GROUPS:
        assert group_options(group), group


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["strategy=bald"],
        ["strategy=entropy,tod", "seed=0,1"],
        ["strategy=entropy, tod"],
        ["strategy=choice(entropy,tod)"],
        ["strategy='bald'", 'dataset="mnist"'],
        ["+strategy=bald"],
        ["~strategy"],
        ["experiment=smoke", "model=cnn", "loop=default", "trainer=default", "tracking=disabled"],
        ["strategy=range(1,3)"],  # a sweep expression it does not parse: left to Hydra
        ["strategy=glob(*)"],
        ["loop.query_size=0"],  # not a group choice
        ["strategy.name=bals"],  # a value, checked later by parse_settings
        ["hydra/launcher=joblib"],
        ["-m", "strategy=bald"],
        ["leaderboard_like_positional"],
        ["hydra.searchpath=[file:///elsewhere]", "strategy=my_plugin_strategy"],  # options may live elsewhere
    ],
)
def test_valid_group_overrides_pass(arguments):
    check_group_overrides(arguments)


@pytest.mark.parametrize(
    "arguments, key, given, closest",
    [
        (["strategy=bals"], "strategy", "bals", "bald"),
        (["strategy=entropy,bals"], "strategy", "bals", "bald"),
        (["strategy=choice(entropy,bals)"], "strategy", "bals", "bald"),
        (["strategy=choice(tod, 'margn')"], "strategy", "margn", "margin"),
        (["+strategy=bals"], "strategy", "bals", "bald"),
        (["~strategy=bals"], "strategy", "bals", "bald"),
        (["++dataset=fashion_mnst"], "dataset", "fashion_mnst", "fashion_mnist"),
        (["model=resnet"], "model", "resnet", "resnet18"),
        (["experiment=smok"], "experiment", "smok", "smoke"),
        (["tracking=sqllite"], "tracking", "sqllite", "sqlite"),
        (["loop=defualt"], "loop", "defualt", "default"),
        (["trainer=defaults"], "trainer", "defaults", "default"),
        (["seed=0", "strategy=entropy", "dataset=synthetic", "strategy=xyzzy"], "strategy", "xyzzy", None),
    ],
)
def test_unknown_group_options_are_caught(arguments, key, given, closest):
    with pytest.raises(UnknownNameError) as info:
        check_group_overrides(arguments)
    error = info.value
    assert error.key == key and error.given == given
    assert error.closest == ([closest] if closest else [])
    message = str(error)
    assert "\n" not in message and f"'{given}'" in message and f"key '{key}'" in message
    assert ", ".join(group_options(key)) in message  # lists the valid options
