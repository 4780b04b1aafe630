"""A tracking server's refusal (HTTP 403) to create a run is one line naming the user, the experiment and the fix."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

from experiments.errors import TrackingError
from experiments.tracking import RunTracker, TrackingSettings


class RefusingClient:
    def __init__(self, error_code):
        self.error_code = error_code

    def create_run(self, *args, **kwargs):
        raise MlflowException("Permission denied\nmore lines from the server", error_code=self.error_code)


def tracker_with(client) -> RunTracker:
    tracker = RunTracker(TrackingSettings(uri="http://127.0.0.1:5000", experiment="alice-fmnist"), base_dir=None)
    tracker._client, tracker._experiment_id = client, "1"
    return tracker


def test_a_refused_run_is_one_tracking_error(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    with pytest.raises(TrackingError) as raised:
        with tracker_with(RefusingClient(PERMISSION_DENIED)).run("r", {}, {}):
            pass
    assert str(raised.value) == (
        "tracking.experiment: bob may not create runs in experiment 'alice-fmnist' at http://127.0.0.1:5000 "
        "(HTTP 403, PERMISSION_DENIED); ask its owner for EDIT, or log to an experiment of your own with "
        "tracking.experiment=NAME"
    )


def test_other_failures_are_not_disguised_as_a_refusal():
    with pytest.raises(MlflowException):
        with tracker_with(RefusingClient(RESOURCE_DOES_NOT_EXIST)).run("r", {}, {}):
            pass
