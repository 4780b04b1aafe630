"""Kill and resume through the ``alsweep`` command, as a researcher would meet it:
a run SIGKILLed at three different rounds and rerun with the same command ends
with exactly the selections, per-round accuracies and final metrics of a run
that was never killed, in the same MLflow run; SIGTERM and SIGINT stop a run
with one line, mark it KILLED with its completed rounds logged and its
selections uploaded; ``alsweep runs --reap`` marks a SIGKILLed run KILLED;
a different config is refused; two identical commands get two folders."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from experiments.round_state import STATE_FILE, RoundState
from experiments.tracking import import_mlflow
from tests.experiments.cli_helpers import alsweep_executable, cli_env

pytestmark = pytest.mark.slow

ROUNDS = 6
FAST = [
    "experiment=smoke", f"loop.rounds={ROUNDS}", "loop.query_size=10", "trainer.min_steps=10", "trainer.epochs=1",
    "dataset.train_size=300", "dataset.test_size=100", "threads=1",
]


def _start(directory: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [alsweep_executable(), *FAST, *extra], cwd=directory, env=cli_env(directory),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _run(directory: Path, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [alsweep_executable(), *FAST, *extra], cwd=directory, env=cli_env(directory),
        capture_output=True, text=True, timeout=timeout,
    )
    return result


def _rounds_done(directory: Path) -> int:
    for path in directory.glob(f"outputs/runs/*/{STATE_FILE}"):
        try:
            return RoundState.load(path).next_round
        except Exception:  # noqa: BLE001 - read while it was being replaced
            return 0
    return 0


def _wait_for_round(directory: Path, next_round: int, process: subprocess.Popen, timeout: float = 240) -> int:
    """Wait until some run under ``directory`` has saved a state with ``next_round`` rounds done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before round {next_round}: {process.communicate()[1][-2000:]}"
        for path in directory.glob(f"outputs/runs/*/{STATE_FILE}"):
            try:
                done = RoundState.load(path).next_round
            except Exception:  # noqa: BLE001 - read while it was being replaced
                continue
            if done >= next_round:
                return done
        time.sleep(0.05)
    raise AssertionError(f"no round state with next_round >= {next_round} after {timeout} s")


def _runs(directory: Path):
    client = import_mlflow().MlflowClient(f"sqlite:///{directory / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    return client, ([] if experiment is None else client.search_runs([experiment.experiment_id]))


def _outcome(directory: Path) -> dict:
    """What must not depend on a kill: selections, per-round accuracies, final metrics (from MLflow)."""
    client, runs = _runs(directory)
    assert len(runs) == 1, [(r.info.run_id, r.info.status) for r in runs]
    (run,) = runs
    assert run.info.status == "FINISHED"
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "test_accuracy"))
    assert [step for step, _ in history] == list(range(ROUNDS + 1)), "a round is missing or logged twice"
    return {
        "run_id": run.info.run_id,
        "selections": (Path(run.data.tags["output_dir"]) / "selections.csv").read_text(),
        "test_accuracy": [value for _, value in history],
        "final": {k: run.data.metrics[k] for k in ("final_test_accuracy", "learning_curve_area")},
    }


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and len(lines[0]) < 300
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("reference")
    result = _run(directory)
    assert result.returncode == 0, result.stderr[-3000:]
    return _outcome(directory)


def test_sigkill_at_three_rounds_then_resume_is_exact(reference, tmp_path):
    # the three runs are killed concurrently: each only waits for its own round
    directories = {after: tmp_path / f"kill_after_{after}" for after in (1, 3, 5)}
    processes = {}
    for after, directory in directories.items():
        directory.mkdir()
        processes[after] = _start(directory)
    killed_at = {}
    deadline = time.monotonic() + 300
    while len(killed_at) < len(processes) and time.monotonic() < deadline:
        for after, process in processes.items():
            if after not in killed_at and _rounds_done(directories[after]) >= after:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                killed_at[after] = _rounds_done(directories[after])
            assert after in killed_at or process.poll() is None, "a run ended before it could be killed"
        time.sleep(0.02)
    assert len(killed_at) == len(processes)
    for after, directory in directories.items():
        _, (stale,) = _runs(directory)
        assert stale.info.status == "RUNNING"  # nothing can run on SIGKILL
        resumed = _run(directory)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        outcome = _outcome(directory)
        assert outcome["run_id"] == stale.info.run_id, "the resume must reopen the same MLflow run"
        for key in ("selections", "test_accuracy", "final"):
            assert outcome[key] == reference[key], f"{key} differs after a kill at round {killed_at[after]}"
        assert "resuming at round" in resumed.stdout + resumed.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_leave_a_killed_run_that_resumes(reference, tmp_path, signum):
    process = _start(tmp_path)
    done = _wait_for_round(tmp_path, 2, process)
    os.kill(process.pid, signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum
    line = _one_line(stderr)
    assert line.startswith(f"alsweep: interrupted by {signal.Signals(signum).name}") and "resume" in line
    client, (run,) = _runs(tmp_path)
    assert run.info.status == "KILLED"
    logged = sorted(m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy"))
    assert logged == list(range(len(logged))) and len(logged) >= done
    selections = Path(client.download_artifacts(run.info.run_id, "selections.csv", str(tmp_path))).read_text()
    assert len(selections.splitlines()) - 1 == 10 * len(logged)  # every completed round's selection uploaded
    if signum == signal.SIGINT:
        return  # resuming after SIGTERM below, and after SIGKILL above, covers the resume
    resumed = _run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    outcome = _outcome(tmp_path)
    assert outcome["run_id"] == run.info.run_id
    assert {k: outcome[k] for k in ("selections", "test_accuracy", "final")} == {
        k: reference[k] for k in ("selections", "test_accuracy", "final")
    }


def test_reaper_marks_a_sigkilled_run_killed_and_resume_refuses_another_config(tmp_path):
    process = _start(tmp_path)
    _wait_for_round(tmp_path, 1, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    env = cli_env(tmp_path)
    listed = subprocess.run([alsweep_executable(), "runs", "--experiment", "smoke"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "process gone" in listed.stdout, listed.stdout + listed.stderr
    reaped = subprocess.run([alsweep_executable(), "runs", "--reap", "--experiment", "smoke"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert reaped.returncode == 0 and "reaped 1 stale run" in reaped.stdout, reaped.stdout + reaped.stderr
    _, (run,) = _runs(tmp_path)
    assert run.info.status == "KILLED"

    # the run's own folder, given again with another config: refused, naming the key
    (state_dir,) = [p.parent for p in tmp_path.glob(f"outputs/runs/*/{STATE_FILE}")]
    refused = _run(tmp_path, f"hydra.run.dir={state_dir}", "loop.query_size=12")
    assert refused.returncode == 2
    line = _one_line(refused.stderr)
    assert "loop.query_size" in line and "resume=never" in line
    # resume=must with nothing of this config to continue
    must = _run(tmp_path, "seed=5", "resume=must")
    assert must.returncode == 2 and "resume=must" in _one_line(must.stderr)
