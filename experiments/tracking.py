"""MLflow tracking: one MLflow run per AL run, FAILED when the run crashes.

mlflow is imported lazily (``import mlflow`` costs seconds) and its telemetry
is switched off, since it can crash logging calls offline. The default store
is a SQLite file in the launch directory; the database and the experiment are
created once, by `PrepareTrackingStore`, before a multirun's jobs start,
because parallel jobs racing to migrate a fresh SQLite schema fail.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.errors import ConfigError, TrackingError

log = logging.getLogger(__name__)

#: MLflow rejects more than 100 params per log_batch call and longer values than this.
_PARAMS_PER_BATCH = 100
_MAX_PARAM_LENGTH = 6000
_URI_SCHEMES = ("sqlite:///", "http://", "https://", "postgresql", "mysql", "databricks")


@dataclass(frozen=True)
class TrackingSettings:
    """``tracking.*`` config."""

    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "alsweep"
    artifact_location: str | None = "mlruns"


def import_mlflow():
    """Import mlflow with telemetry off (set before the first import takes effect)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import mlflow

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


def prepare_store(settings: TrackingSettings, base_dir: Path) -> str:
    """Create the tracking database (if new) and the experiment; return the experiment id.

    Raises TrackingError (one line) when the store cannot be reached, e.g. a server that is down.
    """
    mlflow = import_mlflow()
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(settings.uri, base_dir)
    client = mlflow.MlflowClient(uri)
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
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingError(
            f"tracking.uri: cannot use the MLflow store at '{uri}' (experiment '{settings.experiment}'): {reason}"
        ) from error


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


class RunTracker:
    """Logs one AL run to MLflow through the client API (safe in parallel worker processes)."""

    def __init__(self, settings: TrackingSettings, base_dir: Path):
        self.settings = settings
        self.base_dir = base_dir
        self.run_id: str | None = None
        self._client = None

    @contextmanager
    def run(self, run_name: str, tags: Mapping[str, str], params: Mapping[str, str]) -> Iterator[RunTracker]:
        """Open the MLflow run; it ends FINISHED, or FAILED (KILLED on Ctrl-C) if the body raises."""
        mlflow = import_mlflow()
        self._client = mlflow.MlflowClient(resolve_tracking_uri(self.settings.uri, self.base_dir))
        experiment_id = prepare_store(self.settings, self.base_dir)
        run = self._client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        self.run_id = run.info.run_id
        status = "FAILED"
        try:
            self.log_params(params)
            yield self
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self._client.set_terminated(self.run_id, status=status)

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in sorted(params.items())]
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=items[start : start + _PARAMS_PER_BATCH], synchronous=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """All of one round's numbers in ONE write: SQLite under parallel jobs is slow per call."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        batch = [Metric(key, float(value), timestamp, step) for key, value in metrics.items()]
        self._client.log_batch(self.run_id, metrics=batch, synchronous=True)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True)

    def log_artifact(self, path: Path) -> None:
        self._client.log_artifact(self.run_id, str(path))


class NullTracker:
    """Stands in for `RunTracker` when ``tracking.enabled=false``."""

    run_id = None

    @contextmanager
    def run(self, run_name: str, tags: Mapping[str, str], params: Mapping[str, str]) -> Iterator[NullTracker]:
        yield self

    def log_params(self, params: Mapping[str, str]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass
