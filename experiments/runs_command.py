"""``alsweep runs``: list the RUNNING runs of a tracking store; ``--reap`` marks the dead ones KILLED.

A run killed with SIGKILL (out of memory, ``kill -9``, a node failure) cannot
mark itself; it stays RUNNING. Each run records its host, pid and the pid's
start time as tags, so this command (and a resume, on its way) can check that
the process is gone before marking the run KILLED. Runs on other hosts are
listed but left alone: their process cannot be checked from here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.errors import USER_ERRORS, OneLineArgumentParser, TrackingError
from experiments.tracking import (
    HOST_TAG,
    PID_TAG,
    TrackingSettings,
    import_mlflow,
    reap_stale_runs,
    require_existing_store,
    resolve_tracking_uri,
    run_process_alive,
)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="alsweep runs", description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=TrackingSettings.uri, help="MLflow store (default: %(default)s)")
    parser.add_argument("--experiment", default=None, help="only this MLflow experiment (default: all)")
    parser.add_argument("--reap", action="store_true", help="mark RUNNING runs whose process is gone KILLED")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    try:
        uri = resolve_tracking_uri(arguments.tracking_uri, Path.cwd())
        require_existing_store(uri)  # listing runs must not create a store
        experiments = import_mlflow().MlflowClient(uri).search_experiments()
        if arguments.experiment is not None:
            names = sorted(e.name for e in experiments)
            experiments = [e for e in experiments if e.name == arguments.experiment]
            if not experiments:
                raise TrackingError(
                    f"--experiment: no experiment '{arguments.experiment}' in {uri}; experiments there: "
                    f"{', '.join(names) or 'none'}"
                )
        experiment_ids = [e.experiment_id for e in experiments]
    except USER_ERRORS as error:
        print(f"alsweep: error: {error}", file=sys.stderr)
        return 2
    client = import_mlflow().MlflowClient(uri)
    running = client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=50000)
    for run in running:
        alive = run_process_alive(run.data.tags)
        state = {True: "alive", False: "process gone", None: "other host, not checked"}[alive]
        print(f"{run.info.run_id}  {run.info.run_name}  {run.data.tags.get(HOST_TAG, '?')}:"
              f"{run.data.tags.get(PID_TAG, '?')}  {state}")
    if arguments.reap:
        reaped, elsewhere = reap_stale_runs(client, experiment_ids)
        print(f"reaped {len(reaped)} stale run(s) as KILLED; {len(elsewhere)} on other hosts left RUNNING")
    return 0
