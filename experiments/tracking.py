"""MLflow tracking: one MLflow run per AL run, FAILED when the run crashes.

mlflow is imported lazily (``import mlflow`` costs seconds) and its telemetry
is switched off, since it can crash logging calls offline. The default store
is a SQLite file in the launch directory; the database and the experiment are
created once, by `PrepareTrackingStore`, before a multirun's jobs start,
because parallel jobs racing to migrate a fresh SQLite schema fail.
"""

from __future__ import annotations

import fcntl
import getpass
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments import signals
from experiments.errors import ConfigError, TrackingError
from experiments.settings import TrackingSettings

log = logging.getLogger(__name__)

#: MLflow rejects more than 100 params per log_batch call and longer values than this.
_PARAMS_PER_BATCH = 100
_MAX_PARAM_LENGTH = 6000
_URI_SCHEMES = ("sqlite:///", "http://", "https://", "postgresql", "mysql", "databricks")
#: Seconds the connectivity probe waits for a tracking server before giving up: MLflow's own
#: retries take minutes to fail, and a sweep would pay them once per job.
PROBE_TIMEOUT_SECONDS = 3.0
#: Tags that let a later process tell whether a RUNNING run's process is still alive.
HOST_TAG, PID_TAG, PID_START_TAG = "alsweep.host", "alsweep.pid", "alsweep.pid_start"
CONFIG_HASH_TAG = "config_hash"
_LOCKED_RETRIES = 8


def import_mlflow():
    """Import mlflow with telemetry off (set before the first import takes effect)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import mlflow

    # "Creating initial MLflow database tables..." on stderr would bury alsweep's one-line messages
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    return mlflow


def resolve_tracking_uri(uri: str, base_dir: Path) -> str:
    """Make a relative ``sqlite:///`` path absolute against ``base_dir`` (the launch directory).

    Jobs of a multirun may run with another working directory, and every job
    must write to the same database.
    """
    if not uri.startswith(_URI_SCHEMES):
        raise ConfigError(
            f"tracking.uri must start with one of {', '.join(_URI_SCHEMES)} "
            f"(MLflow's file store is not supported); got '{uri}'"
        )
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(base_dir / uri[len('sqlite:///'):]).resolve()}"
    return uri


def resolve_artifact_location(settings: TrackingSettings, base_dir: Path) -> str | None:
    """Local artifact folders become absolute ``file://`` URIs; remote stores choose their own."""
    if settings.artifact_location is None or not settings.uri.startswith("sqlite:"):
        return settings.artifact_location
    if "://" in settings.artifact_location:
        return settings.artifact_location
    return (base_dir / settings.artifact_location).resolve().as_uri()


def probe_store(uri: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Fail in seconds, with one line, when nothing listens at an http(s) tracking URI.

    Only opens a TCP connection: a server that answers but errors is left to MLflow.
    """
    if not uri.startswith(("http://", "https://")):
        return
    parts = urlsplit(uri)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if isinstance(error, TimeoutError) or isinstance(error, socket.timeout):
            reason = f"no answer within {timeout:g} s"
        raise TrackingError(
            f"tracking.uri: no MLflow server reachable at '{uri}' ({reason}); start it, "
            "or use tracking=sqlite (a local file) or tracking=disabled"
        ) from None


def require_existing_store(uri: str, option: str = "--tracking-uri") -> None:
    """A command that only reads runs must find a store there: it never creates an empty ``mlflow.db``.

    Raises TrackingError (one line) for a SQLite file that does not exist or a server that does not answer.
    """
    probe_store(uri)
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise TrackingError(
            f"{option}: no MLflow store at '{path}'; run a sweep here first, or give {option} sqlite:///PATH "
            "(or http://HOST:PORT)"
        )


def sqlite_path(uri: str) -> Path | None:
    """The database file of an absolute ``sqlite:///`` URI, else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise creating a SQLite store across processes (an flock on ``<db>.lock`` beside it).

    Processes racing to migrate a fresh database fail with alembic errors and
    leave it half-migrated; under the lock the first one creates it and the
    others find it complete. Other stores need no lock.
    """
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - held for the block
    except OSError as error:
        raise TrackingError(
            f"tracking.uri: cannot create the SQLite store in '{path.parent}' ({error.strerror}); "
            "launch from a writable folder or set tracking.uri=sqlite:////ABSOLUTE/PATH.db"
        ) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def prepare_store(settings: TrackingSettings, base_dir: Path) -> str:
    """Create the tracking database (if new) and the experiment; return the experiment id.

    Raises TrackingError (one line) when the store cannot be reached, e.g. a server that is down.
    """
    uri = resolve_tracking_uri(settings.uri, base_dir)
    probe_store(uri)
    with store_lock(uri):
        return _prepare_store_locked(settings, base_dir, uri)


def _prepare_store_locked(settings: TrackingSettings, base_dir: Path, uri: str) -> str:
    mlflow = import_mlflow()
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(uri)
    path = sqlite_path(uri)
    existed = path is not None and path.exists() and path.stat().st_size > 0
    try:
        experiment = client.get_experiment_by_name(settings.experiment)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(
                settings.experiment, artifact_location=resolve_artifact_location(settings, base_dir)
            )
        except MlflowException:
            # another process created it between our lookup and our create
            experiment = client.get_experiment_by_name(settings.experiment)
            if experiment is None:
                raise
            return experiment.experiment_id
    except Exception as error:  # noqa: BLE001 - any failure to reach the store means the same to the user
        if path is not None and not existed:
            _remove_half_created(path)
        shown = uri if len(uri) <= 80 else f"sqlite:///.../{path.name}" if path is not None else uri[:80]
        raise TrackingError(
            f"tracking.uri: cannot use the MLflow store at '{shown}' (experiment '{settings.experiment}'): "
            f"{_one_line(error)}"
        ) from None


def _remove_half_created(path: Path) -> None:
    """A database this process began to create but could not finish (full disk, ...) would break every later run."""
    for leftover in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        try:
            leftover.unlink()
        except OSError:
            pass


def tracking_settings(config: DictConfig) -> TrackingSettings:
    node = config.get("tracking", {})
    return TrackingSettings(
        enabled=bool(node.get("enabled", True)),
        uri=str(node.get("uri", TrackingSettings.uri)),
        experiment=str(node.get("experiment", TrackingSettings.experiment)),
        artifact_location=node.get("artifact_location", TrackingSettings.artifact_location),
    )


class PrepareTrackingStore(Callback):
    """Hydra callback: set up the store in the launching process, before any job starts."""

    def _prepare(self, config: DictConfig) -> None:
        settings = tracking_settings(config)
        if settings.enabled:
            try:
                prepare_store(settings, Path.cwd())
            except (ConfigError, TrackingError):
                # Hydra would turn it into a multi-line UserWarning; the job reports it as one line
                log.debug("tracking store not prepared: invalid tracking settings", exc_info=True)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._prepare(config)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._prepare(config)


def process_start_time(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot, from /proc), or None if it is gone.

    With the pid it identifies a process even after the pid is reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def run_process_alive(tags: Mapping[str, str]) -> bool | None:
    """Whether the process that logs a RUNNING run is still alive; None when it runs on another host."""
    if tags.get(HOST_TAG) != socket.gethostname() or PID_TAG not in tags:
        return None
    started = process_start_time(int(tags[PID_TAG]))
    return started is not None and started == tags.get(PID_START_TAG, started)


def reap_stale_runs(client, experiment_ids: list[str]) -> tuple[list[str], list[str]]:
    """Mark KILLED every RUNNING run whose process is gone (checked on this host only).

    Returns (reaped run ids, run ids left alone because they run on another host).
    """
    reaped, elsewhere = [], []
    for run in client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=50000):
        alive = run_process_alive(run.data.tags)
        if alive is None:
            elsewhere.append(run.info.run_id)
        elif not alive:
            client.set_terminated(run.info.run_id, status="KILLED")
            reaped.append(run.info.run_id)
    return reaped, elsewhere


def system_tags(source_name: str, git_commit: str | None) -> dict[str, str]:
    """MLflow's standard tags, which fill the UI's Source, User and Version columns, and where the run lives."""
    tags = {
        "mlflow.user": getpass.getuser(),
        "mlflow.source.name": source_name,
        "mlflow.source.type": "LOCAL",
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        PID_START_TAG: process_start_time(os.getpid()) or "",
    }
    if git_commit:
        tags["mlflow.source.git.commit"] = git_commit
    return tags


def _retry_when_locked(call: Callable[[], Any]) -> Any:
    """SQLite answers "database is locked" when many jobs write at once: wait and retry."""
    for attempt in range(_LOCKED_RETRIES):
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - only the lock error is retried
            if "database is locked" not in str(error) or attempt == _LOCKED_RETRIES - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    return None


def _permission_denied(error: BaseException) -> bool:
    """An MLflow server with logins refused the call (HTTP 403), as opposed to failing."""
    if getattr(error, "error_code", None) == "PERMISSION_DENIED":
        return True
    status = getattr(error, "get_http_status_code", None)
    if callable(status) and status() == 403:
        return True
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None) == 403


class RunTracker:
    """Logs one AL run to MLflow through the client API (safe in parallel worker processes)."""

    def __init__(self, settings: TrackingSettings, base_dir: Path):
        self.settings = settings
        self.base_dir = base_dir
        self.run_id: str | None = None
        self.logged_steps: set[int] = set()
        self._client = None
        self._experiment_id: str | None = None

    @property
    def client(self):
        if self._client is None:
            mlflow = import_mlflow()
            self._experiment_id = prepare_store(self.settings, self.base_dir)
            self._client = mlflow.MlflowClient(resolve_tracking_uri(self.settings.uri, self.base_dir))
        return self._client

    def find_runs(self, config_hash: str) -> list:
        """This experiment's runs of one config hash, newest first."""
        client = self.client
        return _retry_when_locked(lambda: client.search_runs(
            [self._experiment_id], filter_string=f"tags.{CONFIG_HASH_TAG} = '{config_hash}'",
            order_by=["attributes.start_time DESC"], max_results=1000,
        ))

    def _run_exists(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.experiment_id == self._experiment_id
        except Exception:  # noqa: BLE001 - MLflow raises for an unknown id
            return False

    def mark_killed(self, run_id: str) -> None:
        _retry_when_locked(lambda: self.client.set_terminated(run_id, status="KILLED"))

    @contextmanager
    def run(
        self, run_name: str, tags: Mapping[str, str], params: Mapping[str, str], resume_run_id: str | None = None
    ) -> Iterator[RunTracker]:
        """Open the MLflow run, or reopen ``resume_run_id``; it ends FINISHED, FAILED if the body
        raises, KILLED when a signal (SIGINT, SIGTERM, a scheduler's exit) stops it."""
        # Only the body can be interrupted: a signal while the run is being opened or closed is
        # held back until its status is written, so that no run is ever left RUNNING by one.
        with signals.deferred():
            client = self.client
            self.logged_steps = set()
            if resume_run_id is not None and not self._run_exists(resume_run_id):
                log.warning("MLflow run %s of the resumed state is not in this store; logging to a new run",
                            resume_run_id)
                resume_run_id = None
            if resume_run_id is not None:
                self.run_id = resume_run_id
                _retry_when_locked(lambda: client.update_run(resume_run_id, status="RUNNING"))
                self.set_tags(tags)  # the new host and pid, for the reaper
                self.logged_steps = {m.step for m in client.get_metric_history(resume_run_id, "test_accuracy")}
            else:
                try:
                    run = _retry_when_locked(
                        lambda: client.create_run(self._experiment_id, run_name=run_name, tags=dict(tags))
                    )
                except Exception as error:  # noqa: BLE001 - only a refusal is turned into one line
                    if not _permission_denied(error):
                        raise
                    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
                    raise TrackingError(
                        f"tracking.experiment: {user} may not create runs in experiment '{self.settings.experiment}' "
                        f"at {self.settings.uri} (HTTP 403, PERMISSION_DENIED); ask its owner for EDIT, "
                        "or log to an experiment of your own with tracking.experiment=NAME"
                    ) from None
                self.run_id = run.info.run_id
            status = "FAILED"
            try:
                with signals.delivered():
                    if resume_run_id is None or not client.get_run(resume_run_id).data.params:
                        self.log_params(params)
                    yield self
                status = "FINISHED"
            except (KeyboardInterrupt, SystemExit):
                status = "KILLED"
                raise
            finally:
                _retry_when_locked(lambda: client.set_terminated(self.run_id, status=status))
        signals.raise_if_interrupted()  # one that came while the run was being closed

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in sorted(params.items())]
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            batch = items[start : start + _PARAMS_PER_BATCH]
            _retry_when_locked(lambda batch=batch: self._client.log_batch(self.run_id, params=batch, synchronous=True))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """All of one round's numbers in ONE write: SQLite under parallel jobs is slow per call."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        batch = [Metric(key, float(value), timestamp, step) for key, value in metrics.items()]
        # the write and its record in logged_steps go together: a signal between them made the
        # run's finish log the same round again (a duplicated step in the KILLED run). A signal held
        # back here is raised by the caller's next safe point (on_round, the loop), not here: the
        # finish of an interrupted run logs through this method too.
        with signals.deferred():
            _retry_when_locked(lambda: self._client.log_batch(self.run_id, metrics=batch, synchronous=True))
            self.logged_steps.add(step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        _retry_when_locked(lambda: self._client.log_batch(self.run_id, tags=batch, synchronous=True))

    def log_artifact(self, path: Path) -> None:
        self._client.log_artifact(self.run_id, str(path))


class NullTracker:
    """Stands in for `RunTracker` when ``tracking.enabled=false``."""

    run_id = None
    logged_steps: set[int] = frozenset()

    def find_runs(self, config_hash: str) -> list:
        return []

    @contextmanager
    def run(
        self, run_name: str, tags: Mapping[str, str], params: Mapping[str, str], resume_run_id: str | None = None
    ) -> Iterator[NullTracker]:
        yield self

    def log_params(self, params: Mapping[str, str]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass
