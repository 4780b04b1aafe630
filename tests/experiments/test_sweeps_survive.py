"""Overnight sweeps that survive, end to end through the ``alsweep`` command:
8 writers on one SQLite store (8 processes at once, and a joblib multirun of 8)
lose nothing; SIGTERM to a joblib sweep's launcher marks its in-flight runs KILLED
and a rerun finishes the sweep, skipping what FINISHED; two identical commands in
the same second get two folders; a submitit_local job preempted with USR2 is
requeued and resumes; a full disk (a tiny tmpfs, as root) ends the run FAILED
with one line and a rerun after space is freed continues; a read-only working
directory is one line."""

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

TINY = [
    "experiment=smoke", "loop.rounds=1", "loop.query_size=10", "trainer.min_steps=2", "trainer.epochs=1",
    "dataset.train_size=200", "dataset.test_size=50", "threads=1", "loop.record_history=false",
]
PER_ROUND_KEYS = ("test_accuracy", "test_loss", "labelled_count", "pool_size", "train_seconds", "infer_seconds",
                  "record_seconds", "select_seconds", "train_steps")


def _alsweep(directory: Path, *arguments: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([alsweep_executable(), *arguments], cwd=directory, env=cli_env(directory),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _client_runs(directory: Path, experiment: str = "smoke"):
    client = import_mlflow().MlflowClient(f"sqlite:///{directory / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client, ([] if found is None else client.search_runs([found.experiment_id], max_results=1000))


def _metric_rows(client, run, rounds: int) -> int:
    """Per-round metric rows the run has; a complete run has len(PER_ROUND_KEYS) * (rounds + 1)."""
    return sum(len(client.get_metric_history(run.info.run_id, key)) for key in PER_ROUND_KEYS)


def test_eight_processes_at_once_on_a_fresh_sqlite_store(tmp_path):
    processes = [_alsweep(tmp_path, *TINY, f"seed={seed}") for seed in range(8)]
    outputs = [process.communicate(timeout=600) for process in processes]
    failed = [(p.returncode, err[-1500:]) for p, (_, err) in zip(processes, outputs) if p.returncode != 0]
    assert not failed, failed
    assert not any("database is locked" in out + err for out, err in outputs)
    client, runs = _client_runs(tmp_path)
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}  # 0 lost runs
    assert [_metric_rows(client, run, 1) for run in runs] == [2 * len(PER_ROUND_KEYS)] * 8  # 0 lost rows


def test_a_joblib_multirun_of_eight_jobs(tmp_path):
    process = _alsweep(tmp_path, "-m", *TINY, "seed=range(0,8)", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    assert "database is locked" not in out + err
    client, runs = _client_runs(tmp_path)
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
    assert [_metric_rows(client, run, 1) for run in runs] == [2 * len(PER_ROUND_KEYS)] * 8


def test_identical_commands_in_the_same_second_get_their_own_folders(tmp_path):
    processes = [_alsweep(tmp_path, *TINY, "resume=never") for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
    folders = sorted(p.parent for p in tmp_path.glob(f"outputs/runs/*/{STATE_FILE}"))
    assert len(folders) == 2
    owners = {(folder / "history" / "OWNER").read_text() for folder in folders if (folder / "history").exists()}
    assert len(owners) in (0, 2)
    _, runs = _client_runs(tmp_path)
    assert len(runs) == 2 and len({r.data.tags["output_dir"] for r in runs}) == 2


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _states_with(directory: Path, next_round: int) -> int:
    count = 0
    for path in directory.glob(f"outputs/sweeps/*/*/{STATE_FILE}"):
        try:
            count += RoundState.load(path).next_round >= next_round
        except Exception:  # noqa: BLE001 - being replaced
            pass
    return count


def test_sigterm_to_a_joblib_sweep_kills_in_flight_runs_and_a_rerun_finishes_it(tmp_path):
    sweep = ["-m", "experiment=smoke", "loop.rounds=4", "loop.query_size=10", "trainer.min_steps=10", "trainer.epochs=1",
             "dataset.train_size=300", "dataset.test_size=100", "threads=1", "seed=0,1,2,3,4,5",
             "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    process = _alsweep(tmp_path, *sweep, start_new_session=True)
    _wait(lambda: _states_with(tmp_path, 1) >= 2, 400, "two jobs with a completed round")
    os.kill(process.pid, signal.SIGTERM)  # the launcher only, as a scheduler or `kill` would
    _, err = process.communicate(timeout=200)
    assert process.returncode == 128 + signal.SIGTERM
    lines = [line for line in err.splitlines() if line.startswith("alsweep:")]
    assert lines and lines[-1].startswith("alsweep: sweep interrupted by SIGTERM"), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    time.sleep(1)
    client, runs = _client_runs(tmp_path)
    statuses = sorted(r.info.status for r in runs)
    assert statuses.count("KILLED") >= 1, statuses
    # a signal while a run is opened or closed is held back until its status is written
    # (tracking.RunTracker.run, signals.deferred; test_signals.py lands one exactly there)
    assert "RUNNING" not in statuses, statuses
    assert len(runs) < 6, "jobs that had not started must not have run"
    killed = {r.data.tags["seed"]: r.info.run_id for r in runs if r.info.status == "KILLED"}
    finished_before = {r.info.run_id for r in runs if r.info.status == "FINISHED"}

    rerun = _alsweep(tmp_path, *sweep)
    _, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, err[-3000:]
    client, runs = _client_runs(tmp_path)
    assert sorted(r.data.tags["seed"] for r in runs) == [str(s) for s in range(6)], "one run per job, none twice"
    assert {r.info.status for r in runs} == {"FINISHED"}
    by_seed = {r.data.tags["seed"]: r for r in runs}
    for seed, run_id in killed.items():
        run = by_seed[seed]
        assert run.info.run_id == run_id, "a KILLED job resumes in its own MLflow run"
        steps = sorted(m.step for m in client.get_metric_history(run_id, "test_accuracy"))
        assert steps == list(range(5))
    assert finished_before <= {r.info.run_id for r in runs}


def test_submitit_local_preemption_requeues_and_resumes(tmp_path):
    # rounds of a second or more, so that the signal lands while the job is still running
    arguments = ["-m", "experiment=smoke", "loop.rounds=6", "loop.query_size=10", "trainer.min_steps=1500",
                 "trainer.epochs=1", "dataset.train_size=300", "dataset.test_size=100", "threads=1",
                 "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=60"]
    # (with timeout_min <= 10 submitit's guaranteed walltime is 0 and it reports every signal as a timeout)
    import_mlflow()  # seconds on a busy machine: not between the round and the signal
    process = _alsweep(tmp_path, *arguments)
    _wait(lambda: _states_with(tmp_path, 1) >= 1, 400, "a completed round in the submitit job")
    client, (run,) = _client_runs(tmp_path)
    pid = int(run.data.tags["alsweep.pid"])
    # submitit's preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise), which its local
    # controller sends a task before its timeout and SLURM sends before preempting it (--signal)
    from submitit.local.local import LocalJobEnvironment

    os.kill(pid, LocalJobEnvironment._usr_sig())
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    client, runs = _client_runs(tmp_path)
    assert len(runs) == 1, "the requeued job must continue the same MLflow run"
    (run,) = runs
    assert run.info.status == "FINISHED" and int(run.data.tags["alsweep.pid"]) != pid
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy"))
    assert steps == list(range(7))
    logs = "".join(p.read_text(errors="replace") for p in sorted(tmp_path.rglob(".submitit/*/*_log.*")))
    assert "this job is preempted" in logs and "Requeued job" in logs, logs[-3000:]
    assert "resuming at round" in logs, "the requeued job continues from its round state, not from round 0"


@pytest.fixture
def tmpfs(tmp_path):
    """A mount point for a tiny tmpfs (root only); unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = []

    def mount(options: str) -> Path:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}; "
                        "test_tracking_and_runner simulates ENOSPC in-process instead")
        mounted.append(mount_point)
        return mount_point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_full_disk_fails_the_run_in_one_line_and_a_rerun_continues(tmp_path, tmpfs):
    disk = tmpfs("size=64k")
    command = [*TINY, "loop.rounds=6", "loop.record_history=true", f"hydra.run.dir={disk}/run"]
    process = _alsweep(tmp_path, *command)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 2, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "disk full" in lines[0] and len(lines[0]) < 300, err[-3000:]
    client, (run,) = _client_runs(tmp_path)
    assert run.info.status == "FAILED"
    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)  # space freed
    rerun = _alsweep(tmp_path, *command)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    client, (resumed,) = _client_runs(tmp_path)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")) == list(range(7))


def test_a_read_only_working_directory_is_one_line(tmp_path, tmpfs):
    disk = tmpfs("size=64k,ro")
    process = _alsweep(disk, *TINY)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "read-only" in lines[0] and "hydra.run.dir" in lines[0], err[-3000:]
