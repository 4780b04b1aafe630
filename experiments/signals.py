"""SIGTERM / SIGINT: stop between two safe points, mark the run KILLED, exit with one line.

`RunInterrupted` is raised from the signal handler wherever the process is.
Nothing the loop writes can be left half-done by that: the round state and
the history files are written to a side file and renamed, and each MLflow
write is one transaction; the round that was in progress is simply redone
on resume. The tracker marks the run KILLED and uploads the selections while
the exception unwinds.

A sweep's launcher forwards the signal to its workers that are inside a run and
waits for them to finish that clean-up before it stops itself (the pool is then
shut down), so that no in-flight run stays RUNNING; jobs that never started are
left for the rerun of the same command to pick up.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: How long a launcher waits for its workers to mark their runs KILLED before it gives up on them.
WORKER_GRACE_SECONDS = 60.0


class RunInterrupted(KeyboardInterrupt):
    """A SIGTERM or SIGINT stopped the run; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def child_pids(parent: int) -> list[int]:
    """All descendants of ``parent`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, frontier = [], [parent]
    while frontier:
        pid = frontier.pop(0)
        for child in children.get(pid, []):
            found.append(child)
            frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has finished; only its parent's wait is missing


def _is_python(pid: int) -> bool:
    """Workers are Python processes; the pool's helpers (its ``pgrep`` calls) must be left alone."""
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False


def stop_file(launcher_pid: int | str) -> Path:
    """Exists once the launcher with this pid was told to stop: a worker it starts later runs nothing."""
    return Path(tempfile.gettempdir()) / f"alsweep-stop-{launcher_pid}"


def _in_a_run(pid: int) -> bool:
    """Whether the process catches SIGTERM, i.e. is inside `interruptible` (from /proc's SigCgt mask).

    Idle pool workers, the pool's resource tracker and helpers keep the default action.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def forward_and_wait(signum: int, grace_seconds: float = WORKER_GRACE_SECONDS) -> None:
    """Send SIGTERM to every descendant that is inside a run and wait (bounded) until none is.

    Only those: a loky pool whose worker dies takes itself for broken and
    SIGKILLs all its other workers, including those still marking their run
    KILLED, so idle workers are not signalled and an interrupted worker does
    not exit (it returns from its job). The pool's manager thread may hand a
    job to a worker while we wait; the stop file makes that job run nothing.
    """
    stop_file(os.getpid()).touch()
    deadline = time.monotonic() + grace_seconds
    signalled: set[int] = set()
    while time.monotonic() < deadline:
        pids = [pid for pid in child_pids(os.getpid()) if _alive(pid) and _is_python(pid) and _in_a_run(pid)]
        if not pids:
            return
        for pid in pids:
            if pid not in signalled:
                signalled.add(pid)
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        time.sleep(0.05)


_pending: int | None = None
#: While > 0 the handler only records a signal: the code in between must not be cut (see `deferred`).
_deferring = 0


def raise_if_interrupted() -> None:
    """Raise `RunInterrupted` if a signal came; the loop calls it at its safe points.

    The handler raises at once as well, but an exception raised inside a
    ``__del__`` or a weakref callback is swallowed by Python; the flag makes
    sure the run still stops, at the next safe point.
    """
    if _pending is not None:
        raise RunInterrupted(_pending)
    launcher = os.environ.get("ALSWEEP_LAUNCHER_PID")
    if launcher is not None and launcher != str(os.getpid()) and stop_file(launcher).exists():
        raise RunInterrupted(signal.SIGTERM)  # started by a launcher that is stopping: run nothing


class _Handler:
    def __init__(self, forward: bool):
        self.forward = forward

    def __call__(self, signum, frame) -> None:
        global _pending
        if _pending is not None:
            return  # a second signal must not interrupt the clean-up of the first
        _pending = signum
        if self.forward:
            forward_and_wait(signum)
        if _deferring:
            return  # `delivered` or `raise_if_interrupted` raises it once the critical section is done
        raise RunInterrupted(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """A signal inside the block is only recorded, not raised: for writes that must happen whole.

    Opening an MLflow run and setting its final status are such writes: a
    `RunInterrupted` raised after the database committed ``create_run`` but
    before the call returned leaves a run nobody knows the id of, and one
    raised inside ``set_terminated`` leaves the run RUNNING. Call
    `raise_if_interrupted` after the block to act on a signal it held back.
    """
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


@contextmanager
def delivered() -> Iterator[None]:
    """Inside a `deferred` block: raise signals at once again, starting with one that was held back."""
    global _deferring
    held, _deferring = _deferring, 0
    try:
        raise_if_interrupted()
        yield
    finally:
        _deferring = held


_default_unraisable_hook = sys.unraisablehook


def _unraisable_hook(unraisable) -> None:
    # the handler's exception landed in a __del__ or GC callback, where Python can only print it;
    # the flag stops the run at the next safe point instead, so there is nothing to show
    if not isinstance(unraisable.exc_value, RunInterrupted):
        _default_unraisable_hook(unraisable)


def install(forward: bool) -> bool:
    """Install the handler for SIGTERM and SIGINT in this (main) thread; False when it cannot.

    Another framework's SIGTERM handler (submitit's, which checkpoints and
    requeues on SLURM) is left in place.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current not in (signal.SIG_DFL, None):
        return False  # ours already (the launcher's), or submitit's
    sys.unraisablehook = _unraisable_hook
    handler = _Handler(forward)
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, handler)
    return True


@contextmanager
def interruptible(forward: bool = False) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into `RunInterrupted` inside the block, then restore the old handlers."""
    previous = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
    installed = install(forward)
    try:
        yield
    finally:
        if installed:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
