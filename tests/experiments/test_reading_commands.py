"""Commands that only read a tracking store never create one: where there is none, they say so in one line."""

from __future__ import annotations

import subprocess

import pytest

from tests.experiments.cli_helpers import alsweep_executable, cli_env

READING_COMMANDS = {
    "runs": ["runs"],
    "runs_reap": ["runs", "--reap"],
    "rerun": ["rerun", "0123456789abcdef0123456789abcdef"],
    "leaderboard": ["leaderboard", "--experiment", "demo"],
    "report": ["report", "--experiment", "demo"],
}


@pytest.mark.parametrize("name", sorted(READING_COMMANDS))
def test_no_store_is_one_line_and_no_file_is_created(tmp_path, name):
    done = subprocess.run(
        [alsweep_executable(), *READING_COMMANDS[name]], cwd=tmp_path, env=cli_env(tmp_path),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alsweep: error: --tracking-uri: no MLflow store at"), lines
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "outputs").exists()


def test_runs_names_the_missing_experiment_and_those_there(tmp_path):
    import mlflow

    mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment("demo")
    done = subprocess.run(
        [alsweep_executable(), "runs", "--experiment", "dmeo"], cwd=tmp_path, env=cli_env(tmp_path),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"alsweep: error: --experiment: no experiment 'dmeo' in sqlite:///{tmp_path / 'mlflow.db'}; "
        "experiments there: Default, demo"
    )


BAD_ARGUMENTS = {
    "rerun_without_id": (["rerun"], "alsweep rerun: the following arguments are required: run_id"),
    "leaderboard_unknown_option": (["leaderboard", "--experiment", "x", "--sweeep", "latest"], "alsweep leaderboard: unrecognized arguments: --sweeep latest"),
    "report_missing_value": (["report", "--experiment"], "alsweep report: argument --experiment: expected one argument"),
    "runs_unknown_option": (["runs", "--reep"], "alsweep runs: unrecognized arguments: --reep"),
    "listing_unknown_option": (["strategies", "--jsn"], "alsweep strategies: unrecognized arguments: --jsn"),
}


@pytest.mark.parametrize("name", sorted(BAD_ARGUMENTS))
def test_a_bad_argument_is_one_line_not_argparse_usage_block(tmp_path, name):
    arguments, reason = BAD_ARGUMENTS[name]
    done = subprocess.run(
        [alsweep_executable(), *arguments], cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"alsweep: error: {reason}"), lines
    assert "--help" in lines[0]
