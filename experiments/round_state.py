"""Everything a run needs in order to continue: one `RoundState`, saved once per round.

The loop builds a new `RoundState` at the end of every round and saves it
with `save` (a side file, fsync, rename, fsync of the directory), so a kill at
any instant leaves either the previous round's state or this round's, never
half of one. `load` uses ``torch.load(weights_only=True)``: the file holds only
tensors and plain containers, so loading it cannot run code.

Selections, per-round metrics and the learning curve are derived from the
state (``selections`` and ``results``), which is why a resumed run can rebuild
``selections.csv`` and log exactly the rounds MLflow is missing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

#: Bumped when the layout changes; a state of another version is not resumed.
STATE_VERSION = 1
STATE_FILE = "round_state.pt"
#: Config keys that do not change what a run computes, left out of the config hash: where
#: results are logged and the resume policy itself. ``threads`` and ``device`` stay in: both
#: can change float results, and a resume must compute exactly what the first run would have.
NON_HASHED_KEYS = ("hydra", "tracking", "resume")


@dataclass
class RoundState:
    """The state of one run after its last completed round.

    Attributes:
        next_round: the round a resumed run starts with (rounds ``0 .. next_round-1`` are done).
        finished: True once the last round (or the budget) has been reached.
        labelled_ids: dataset indices of the labelled set after the last completed round (sorted).
        selections: the dataset ids chosen in each acquisition round, in order.
        results: each completed round's metrics (`RoundResult.metrics()` plus ``round_index``).
        fixed_candidates: the run's fixed pool subset (``loop.pool_subset_refresh=false``), else None.
        generators: ``torch.Generator.get_state()`` of every generator the loop draws from.
        strategy_state: what a stateful strategy carries between rounds (`Selection.strategy_state`).
        history_state: the incremental history-statistics state (None where no strategy keeps one).
        model_weights: the last model's ``state_dict`` when ``loop.warm_start`` (else None).
        run_uid: an id of the run that does not depend on MLflow; it owns the output directory.
        mlflow_run_id: the MLflow run the rounds are logged to (None without tracking).
        config_hash: `config_hash` of the run's config; a resume under another hash is refused.
        config: the hashed config itself, to name the first key that differs.
    """

    next_round: int
    labelled_ids: torch.Tensor
    config_hash: str
    run_uid: str
    finished: bool = False
    selections: list[torch.Tensor] = field(default_factory=list)
    results: list[dict[str, float]] = field(default_factory=list)
    fixed_candidates: torch.Tensor | None = None
    generators: dict[str, torch.Tensor] = field(default_factory=dict)
    strategy_state: dict | None = None
    history_state: dict | None = None
    model_weights: dict[str, torch.Tensor] | None = None
    mlflow_run_id: str | None = None
    config: dict = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        """Write atomically and durably: the file at ``path`` is always a complete state."""
        payload = {"version": STATE_VERSION, **dataclasses.asdict(self)}
        return save_durably(payload, path)

    @classmethod
    def load(cls, path: Path) -> RoundState:
        """Read a saved state (``weights_only=True``); ValueError if it is not one of ours."""
        payload = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION:
            raise ValueError(f"{path} is not an alsweep round state of version {STATE_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in payload.items() if key in names})


def save_durably(obj: object, path: Path) -> Path:
    """``torch.save`` to a side file, fsync it, rename it over ``path``, fsync the directory.

    Without the fsyncs a machine that loses power right after the rename can
    come back with an empty file under the new name.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def hashed_config(container: Mapping) -> dict:
    """The part of the resolved config that decides what a run computes."""
    return {key: value for key, value in container.items() if key not in NON_HASHED_KEYS}


def config_hash(container: Mapping) -> str:
    """Hash of the resolved config without tracking, resume and Hydra keys (the seed counts)."""
    content = json.dumps(hashed_config(container), sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def first_difference(old: Any, new: Any, prefix: str = "") -> str | None:
    """The dotted key of the first difference between two configs (sorted key order), or None."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}{key}"
            if key not in old or key not in new:
                return name
            found = first_difference(old[key], new[key], f"{name}.")
            if found is not None:
                return found
        return None
    return None if old == new else prefix.rstrip(".") or "<config>"
