"""A SIGTERM that lands while the tracker opens or closes an MLflow run must not leave it RUNNING.

The signal is sent to this process from inside the MLflow client call, after
the database has done its work, which is where a launcher's forwarded SIGTERM
could leave a run RUNNING. The other cause of the RUNNING runs a SIGTERM to a
joblib sweep's launcher left (test_sweeps_survive) was loky: once one worker
exits, it SIGKILLs the others, so the launcher signals only workers inside a run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from experiments import signals
from experiments.tracking import RunTracker, TrackingSettings


@pytest.fixture
def tracker(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setattr(signals, "_pending", None)  # the handler's record of a signal is per process
    return RunTracker(TrackingSettings(experiment="signals_test"), tmp_path)


def _signal_after(monkeypatch, client, method: str, when=lambda *a, **k: True) -> list[str]:
    """Make ``client.method`` do its work, then SIGTERM this process, as a forwarded signal would."""
    real = getattr(client, method)
    sent = []

    def call(*args, **kwargs):
        result = real(*args, **kwargs)
        if when(*args, **kwargs) and not sent:
            sent.append(method)
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(client, method, call)
    return sent


def _statuses(tracker) -> list[str]:
    experiment = tracker.client.get_experiment_by_name("signals_test")
    return [run.info.status for run in tracker.client.search_runs([experiment.experiment_id])]


def test_sigterm_while_the_run_is_created_marks_it_killed(tracker, monkeypatch):
    sent = _signal_after(monkeypatch, tracker.client, "create_run")
    body_ran = False
    with pytest.raises(signals.RunInterrupted), signals.interruptible():
        with tracker.run("r", {"seed": "0"}, {"a": "1"}):
            body_ran = True
    assert sent == ["create_run"]
    assert not body_ran, "a run interrupted while it opens must not start its rounds"
    assert _statuses(tracker) == ["KILLED"]


def test_sigterm_while_a_resumed_run_is_reopened_marks_it_killed(tracker, monkeypatch):
    with signals.interruptible(), tracker.run("r", {"seed": "0"}, {"a": "1"}):
        pass
    first = tracker.run_id
    sent = _signal_after(monkeypatch, tracker.client, "update_run")
    with pytest.raises(signals.RunInterrupted), signals.interruptible():
        with tracker.run("r", {"seed": "0"}, {"a": "1"}, resume_run_id=first):
            pass
    assert sent == ["update_run"]
    assert tracker.client.get_run(first).info.status == "KILLED"


def test_sigterm_while_the_run_is_closed_still_ends_it_and_then_stops(tracker, monkeypatch):
    sent = _signal_after(monkeypatch, tracker.client, "set_terminated")
    with pytest.raises(signals.RunInterrupted), signals.interruptible():
        with tracker.run("r", {"seed": "0"}, {"a": "1"}):
            pass
    assert sent == ["set_terminated"]
    assert _statuses(tracker) == ["FINISHED"], "its rounds all completed before the signal"


def test_sigterm_in_the_body_marks_the_run_killed(tracker, monkeypatch):
    with pytest.raises(signals.RunInterrupted), signals.interruptible():
        with tracker.run("r", {"seed": "0"}, {"a": "1"}):
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("the handler raises in the body")  # pragma: no cover
    assert _statuses(tracker) == ["KILLED"]


def test_sigterm_right_after_a_metric_write_is_held_until_the_step_is_recorded(tracker, monkeypatch):
    """The write committed, then the signal: the step must count as logged, or the finish of the
    interrupted run logs that round a second time (a duplicated step, seen in test_resume_cli)."""
    reached_safe_point = False
    with pytest.raises(signals.RunInterrupted), signals.interruptible():
        with tracker.run("r", {"seed": "0"}, {"a": "1"}):
            sent = _signal_after(monkeypatch, tracker.client, "log_batch", when=lambda *a, **k: bool(k.get("metrics")))
            tracker.log_metrics({"test_accuracy": 0.5}, step=0)
            reached_safe_point = True
            signals.raise_if_interrupted()  # the caller's safe point acts on the held signal
            raise AssertionError("the held signal is raised at the safe point")  # pragma: no cover
    assert sent == ["log_batch"]
    assert reached_safe_point and tracker.logged_steps == {0}
    assert _statuses(tracker) == ["KILLED"]
    assert [m.step for m in tracker.client.get_metric_history(tracker.run_id, "test_accuracy")] == [0]


def _child(code: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_the_launcher_signals_only_workers_inside_a_run_and_waits_for_them(tmp_path):
    # a pool whose idle worker dies SIGKILLs the busy ones (loky): the idle one must not be signalled
    done = tmp_path / "marked-killed"
    idle = _child("import time; print('ready', flush=True); time.sleep(120)")
    busy = _child(
        "import signal, sys, time\n"
        "def stop(signum, frame):\n"
        "    time.sleep(0.5)  # marking the run KILLED takes a while\n"
        f"    open({str(done)!r}, 'w').write('KILLED')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    try:
        assert signals._in_a_run(busy.pid) and not signals._in_a_run(idle.pid)
        signals.forward_and_wait(signal.SIGTERM, grace_seconds=30)
        assert done.read_text() == "KILLED", "the launcher returned before the worker finished its clean-up"
        assert busy.wait(timeout=10) == 0
        assert idle.poll() is None, "an idle worker was signalled"
    finally:
        signals.stop_file(os.getpid()).unlink(missing_ok=True)
        for process in (idle, busy):
            process.kill()
            process.wait()
