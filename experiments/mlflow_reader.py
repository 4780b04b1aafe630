"""The thin reader: MLflow runs of an experiment -> `RunRecord` arrays for ``experiments.comparison``.

Calls are bounded: one run search per experiment, then one bulk metric-history
call per metric key and per chunk of ``BULK_RUNS`` runs (the REST API's
limit), whatever the number of runs.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from experiments.comparison import RunRecord
from experiments.tracking import import_mlflow

#: per-round metrics the views need
METRIC_KEYS = ("test_accuracy", "labelled_count", "select_seconds", "infer_seconds", "select_peak_memory_mb")
#: run ids per bulk metric-history request (MLflow's server accepts at most 100)
BULK_RUNS = 100
#: rounds per run a bulk request may return (MLflow samples beyond it; no AL run has that many rounds)
MAX_ROUNDS = 2_500
#: top-level config keys that do not make a different setting (the strategy is what a setting compares)
NON_SETTING_KEYS = ("seed", "tracking", "hydra", "strategy")


def quote_filter_value(value: str) -> str | None:
    """``value`` quoted for an MLflow filter string, or None when it cannot be.

    MLflow's parser strips the outer quotes and has no escape sequences, so a
    value is quoted with the quote character it does not contain; one holding
    both kinds has to be matched on the client side.
    """
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def setting_id(params: Mapping[str, str]) -> str:
    """Hash of a run's flattened config without strategy, seed, tracking and Hydra keys."""
    content = {k: v for k, v in params.items() if k.split(".", 1)[0] not in NON_SETTING_KEYS}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def code_version(tags: Mapping[str, str]) -> str:
    """The hash of the code the run executed (tag ``alsweep_code_hash``), so that commits that touch
    only docs, tests or comments do not split rows; for runs older than that tag, the git commit
    (marked when the tree was dirty), else the package version."""
    if tags.get("alsweep_code_hash"):
        return "code-" + tags["alsweep_code_hash"][:12]
    commit = tags.get("git_commit")
    if commit:
        return commit[:12] + ("-dirty" if tags.get("git_dirty") == "true" else "")
    return tags.get("alsweep_version", "")


def _metric_histories(client, run_ids: Sequence[str], keys: Sequence[str]) -> dict[str, dict[str, dict[int, float]]]:
    """``{run_id: {key: {step: value}}}`` with one bulk call per key and chunk of runs."""
    histories: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    store = client._tracking_client.store  # the bulk call is not on MlflowClient in MLflow 3.17
    for key in keys:
        for start in range(0, len(run_ids), BULK_RUNS):
            chunk = list(run_ids[start : start + BULK_RUNS])
            for item in store.get_metric_history_bulk_interval(chunk, key, MAX_ROUNDS, None, None):
                histories[item.run_id][key][int(item.step)] = float(item.value)
    return histories


def fetch_runs(tracking_uri: str, experiment: str, sweep_dir: str | None = None) -> list[RunRecord]:
    """Finished alsweep runs of ``experiment`` (optionally of one Hydra sweep directory) with their curves."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    query = "attributes.status = 'FINISHED'"
    quoted = quote_filter_value(sweep_dir) if sweep_dir else None
    if quoted is not None:
        query += f" and tags.hydra_sweep_dir = {quoted}"
    runs = [
        run for run in client.search_runs([found.experiment_id], filter_string=query, max_results=50_000)
        if "strategy" in run.data.tags and (not sweep_dir or run.data.tags.get("hydra_sweep_dir") == sweep_dir)
    ]
    histories = _metric_histories(client, [run.info.run_id for run in runs], METRIC_KEYS)
    records = []
    for run in runs:
        tags, metrics = run.data.tags, histories.get(run.info.run_id, {})
        accuracy = metrics.get("test_accuracy", {})
        rounds = np.array(sorted(accuracy), dtype=np.int64)
        if rounds.size == 0:
            continue

        def per_round(key: str, missing: float) -> np.ndarray:
            values = metrics.get(key, {})
            return np.array([values.get(int(r), missing) for r in rounds], dtype=np.float64)

        records.append(
            RunRecord(
                run_id=run.info.run_id,
                dataset=tags.get("dataset", "?"),
                strategy=tags["strategy"],
                strategy_version=tags.get("strategy_version", "?"),
                workflow_id=tags.get("workflow_id", run.info.run_id),
                seed=tags.get("seed", run.info.run_id),
                start_time=run.info.start_time or 0,
                rounds_R=rounds,
                labelled_counts_R=per_round("labelled_count", np.nan),
                accuracies_R=per_round("test_accuracy", np.nan),
                select_seconds_R=per_round("select_seconds", 0.0),
                infer_seconds_R=per_round("infer_seconds", np.nan),
                select_peak_memory_mb_R=per_round("select_peak_memory_mb", np.nan),
                setting_id=setting_id(run.data.params) if run.data.params else "",
                code_version=code_version(tags),
                strategy_code_hash=tags.get("strategy_code_hash", ""),
                device=tags.get("device", ""),
                sweep_dir=tags.get("hydra_sweep_dir", ""),
            )
        )
    return records


def latest_sweep_dir(tracking_uri: str, experiment: str) -> str | None:
    """The Hydra sweep directory of the most recently started run of ``experiment``."""
    mlflow = import_mlflow()
    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id], filter_string="tags.hydra_sweep_dir != ''", order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].data.tags.get("hydra_sweep_dir") if runs else None
