"""``alsweep rerun``: run a tracked run again from its MLflow record and say whether it is the same.

    alsweep rerun RUN_ID [--tracking-uri URI] [--allow-drift] [--output-dir DIR]

1. Fetch the run's tags and its ``config.yaml`` artifact (the resolved config).
2. Report each drift between the record and this machine in one line:
   ``git_commit`` / ``git_dirty``, ``dataset_fingerprint`` (against the local
   data), ``strategy_version``, ``strategy_code_hash``, ``kernels_code_hash``
   (against the local registry) and ``alsweep_version``.
3. Refuse (exit 3) on a code or data drift unless ``--allow-drift``.
4. Run the config again as a NEW MLflow run tagged ``rerun_of=RUN_ID``:
   ``resume=never``, since resume=auto would find the FINISHED original by
   its config hash and skip the run.
5. Print whether the selections and the per-round metrics equal the original's
   (exit 0 if they do, 1 if not).

The config is run directly from the artifact, never through
``--config-dir DIR --config-name config``, which would silently compose the
package's own config.yaml first.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from experiments.errors import ConfigError, OneLineArgumentParser

#: Drifts of these kinds refuse a rerun unless --allow-drift.
BLOCKING = ("code", "data")
#: Metrics that must be equal for a rerun to count as identical (timings are not).
COMPARED_METRICS = (
    "labelled_count", "pool_size", "test_accuracy", "test_loss", "train_steps", "final_test_accuracy", "learning_curve_area",
)
CODE_PATHS = ("strategies", "kernels", "experiments", "conf")


@dataclass(frozen=True)
class Drift:
    key: str
    recorded: str
    local: str
    kind: str  # "code", "data" or "info"
    note: str = ""

    def line(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"drift [{self.kind}] {self.key}: recorded {self.recorded}, local {self.local}{note}"


def _git_code_changed(recorded_commit: str) -> bool | None:
    """Whether code under CODE_PATHS differs between ``recorded_commit`` and HEAD; None if unknowable."""
    from experiments.runner import REPO_ROOT

    try:
        result = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "diff", "--quiet", recorded_commit, "HEAD", "--", *CODE_PATHS],
            capture_output=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: False, 1: True}.get(result.returncode)


def git_drifts(tags: Mapping[str, str], saved_diff: Path | None = None) -> list[Drift]:
    """Commit and dirtiness of the record against this checkout; ``saved_diff``: the run's git_diff.patch, if logged."""
    from experiments.runner import git_commit

    local = git_commit()
    recorded_commit, recorded_dirty = tags.get("git_commit"), tags.get("git_dirty")
    if recorded_commit is None and local is None:
        return []
    if local is None:
        return [Drift("git_commit", recorded_commit or "-", "not a git checkout", "info", "code identity rests on the code hashes")]
    drifts = []
    commit, dirty = local
    if recorded_commit != commit:
        changed = _git_code_changed(recorded_commit) if recorded_commit else None
        if changed is None:
            drifts.append(Drift("git_commit", recorded_commit or "-", commit, "code", "recorded commit unknown here"))
        elif changed:
            drifts.append(Drift("git_commit", recorded_commit, commit, "code", f"{', '.join(CODE_PATHS)} differ"))
        else:
            drifts.append(Drift("git_commit", recorded_commit, commit, "info", "no change under " + ", ".join(CODE_PATHS)))
    if recorded_dirty == "true":
        drifts.append(Drift("git_dirty", "true", str(dirty).lower(), "info", _dirty_note(saved_diff)))
    elif dirty:
        drifts.append(Drift("git_dirty", recorded_dirty or "-", "true", "info", "local uncommitted changes"))
    return drifts


def _dirty_note(saved_diff: Path | None) -> str:
    if saved_diff is None:
        return "the recorded uncommitted changes were not saved"
    text = saved_diff.read_text(errors="replace")
    files = sum(1 for line in text.splitlines() if line.startswith("diff --git "))
    return (
        f"the run had uncommitted changes to {files} file(s), saved as its git_diff.patch artifact; "
        "this rerun runs the local code: apply that patch to the recorded commit to rerun exactly them"
    )


def _optional_artifact(client: Any, run_id: str, name: str, scratch: str) -> Path | None:
    """An artifact that runs from before it was logged lack: None for them."""
    if name not in {artifact.path for artifact in client.list_artifacts(run_id)}:
        return None
    return Path(client.download_artifacts(run_id, name, scratch))


def registry_drifts(tags: Mapping[str, str], container: Mapping[str, Any]) -> list[Drift]:
    from experiments.runner import package_version
    from strategies import get_strategy
    from strategies.code_hash import kernels_code_hash

    spec = get_strategy(container["strategy"]["name"])
    local = {
        "strategy_version": ("code", spec.version),
        "strategy_code_hash": ("code", spec.code_hash),
        "kernels_code_hash": ("code", kernels_code_hash()),
        "alsweep_version": ("info", package_version()),
    }
    drifts = []
    for key, (kind, value) in local.items():
        recorded = tags.get(key)
        if recorded is None:
            drifts.append(Drift(key, "not recorded", value, kind, "a run from before this tag existed"))
        elif recorded != value:
            drifts.append(Drift(key, recorded, value, kind))
    return drifts


def data_drift(tags: Mapping[str, str], container: Mapping[str, Any]) -> list[Drift]:
    from experiments.datasets import load_dataset

    node = dict(container["dataset"])
    name, root, _ = node.pop("name"), node.pop("root", None), node.pop("download", None)
    try:
        fingerprint = load_dataset(name, root=root, download=False, **node).fingerprint
    except Exception as error:  # noqa: BLE001 - any failure to load means the data cannot be checked
        return [Drift("dataset_fingerprint", tags.get("dataset_fingerprint", "-"), "unavailable", "data", str(error))]
    if tags.get("dataset_fingerprint") != fingerprint:
        return [Drift("dataset_fingerprint", tags.get("dataset_fingerprint", "not recorded"), fingerprint, "data")]
    return []


def _read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def compare(client: Any, original_id: str, new_id: str, original_selections: Path, new_selections: Path) -> list[str]:
    """One line per difference between the two runs' selections and compared metrics (empty: identical)."""
    differences = []
    old_rows, new_rows = _read_rows(original_selections), _read_rows(new_selections)
    if old_rows != new_rows:
        first = next((i for i, (a, b) in enumerate(zip(old_rows, new_rows)) if a != b), min(len(old_rows), len(new_rows)))
        differences.append(f"selections differ from row {first} ({len(old_rows) - 1} recorded, {len(new_rows) - 1} now)")
    for key in COMPARED_METRICS:
        old = [(m.step, m.value) for m in sorted(client.get_metric_history(original_id, key), key=lambda m: m.step)]
        new = [(m.step, m.value) for m in sorted(client.get_metric_history(new_id, key), key=lambda m: m.step)]
        if old != new:
            differences.append(f"metric {key} differs: recorded {old[:3]}..., now {new[:3]}...")
    return differences


def schema_checked(recorded) -> dict:
    """The recorded config merged onto the config schema, as the CLI's composition would give it.

    A key the schema gained since the run takes its default; a key it lost, or a value of
    the wrong type, is a one-line ConfigError instead of OmegaConf's multi-line block.
    """
    from omegaconf.errors import OmegaConfBaseException

    from experiments.settings import schema_node
    from experiments.validate import schema_error_line

    try:
        return OmegaConf.to_container(OmegaConf.merge(schema_node(), recorded), resolve=True)
    except OmegaConfBaseException as error:
        line = schema_error_line(error) or str(error).strip().splitlines()[0]
        raise ConfigError(line) from None


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="alsweep rerun", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store holding the run (default: ./mlflow.db)")
    parser.add_argument("--allow-drift", action="store_true", help="rerun even if the code or the data drifted")
    parser.add_argument("--output-dir", type=Path, help="the rerun's folder (default: outputs/reruns/<run id>-<time>)")
    args = parser.parse_args(argv)

    from experiments.runner import run_experiment
    from experiments.tracking import (
        import_mlflow,
        require_existing_store,
        resolve_tracking_uri,
    )

    mlflow = import_mlflow()
    launch_dir = Path.cwd()
    tracking_uri = resolve_tracking_uri(args.tracking_uri, launch_dir)
    require_existing_store(tracking_uri)  # looking a run up must not create an empty store
    client = mlflow.tracking.MlflowClient(tracking_uri)
    try:
        record = client.get_run(args.run_id)
    except Exception as error:  # noqa: BLE001 - MlflowException and store errors alike
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"alsweep: error: run '{args.run_id}' not found in {tracking_uri}: {first}", file=sys.stderr)
        return 2
    tags = record.data.tags
    with tempfile.TemporaryDirectory() as scratch:
        try:
            config_path = Path(client.download_artifacts(args.run_id, "config.yaml", scratch))
            original_selections = Path(client.download_artifacts(args.run_id, "selections.csv", scratch))
            overrides_path = _optional_artifact(client, args.run_id, "overrides.txt", scratch)
            saved_diff = _optional_artifact(client, args.run_id, "git_diff.patch", scratch)
        except Exception as error:  # noqa: BLE001 - a missing artifact or an unreachable artifact store
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"alsweep: error: run '{args.run_id}' cannot fetch its config.yaml/selections.csv artifacts: {first}", file=sys.stderr)
            return 2
        try:
            container = schema_checked(OmegaConf.load(config_path))
        except ConfigError as error:
            print(f"alsweep: error: run '{args.run_id}' has a config.yaml this version cannot run: {error}", file=sys.stderr)
            return 2
        # the resolved config is what runs; the overrides say how it was asked for, and go to the new run too
        overrides = overrides_path.read_text().splitlines() if overrides_path is not None else []
        if overrides_path is None:
            print("recorded overrides: not logged (a run from before overrides.txt existed)")
        else:
            print(f"recorded overrides: {' '.join(overrides) or '(none)'}")

        drifts = [*git_drifts(tags, saved_diff), *registry_drifts(tags, container), *data_drift(tags, container)]
        for drift in drifts:
            print(drift.line())
        if not drifts:
            print("no drift: code, data and versions match the record")
        blocking = [d for d in drifts if d.kind in BLOCKING]
        if blocking and not args.allow_drift:
            print(f"alsweep: error: rerun refused: {len(blocking)} code/data drift(s); pass --allow-drift to rerun anyway", file=sys.stderr)
            return 3

        container["tracking"] = {**container["tracking"], "uri": tracking_uri, "enabled": True}
        # a new run: resume=auto would find the FINISHED original by its config hash and run nothing
        container["resume"] = "never"
        output_dir = (args.output_dir or Path("outputs") / "reruns" / f"{args.run_id}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
        opened: list[str | None] = []
        run_experiment(
            OmegaConf.create(container), output_dir=output_dir, launch_dir=launch_dir,
            extra_tags={"rerun_of": args.run_id}, on_run_open=opened.append, overrides=overrides,
        )
        new_id = opened[0]
        differences = compare(client, args.run_id, new_id, original_selections, output_dir / "selections.csv")
    for line in differences:
        print(line)
    verdict = "identical to" if not differences else "different from"
    print(f"rerun {new_id}: selections and metrics {verdict} run {args.run_id}")
    return 0 if not differences else 1


if __name__ == "__main__":
    sys.exit(main())
