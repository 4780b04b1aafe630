"""The version lock: each built-in strategy's version next to the hash of the code it runs.

``strategies/versions.lock`` (committed) maps every built-in strategy to
``{"version": ..., "code_hash": ...}``. tests/strategies/test_versions.py
fails when a strategy's code hash differs from the lock while its version
does not, so a change of code is a conscious decision:

- the output changed: bump ``version=`` in ``@register_strategy``, then
  ``python -m strategies.versions --update``;
- the output did not change (a refactor): ``python -m strategies.versions
  --update --same-output NAME`` records the new hash under the old version.

``--update --same-output all`` accepts every such change at once (for merges,
where the branches' authors made the decisions). Plugins (entry points) are
not locked here: their versions belong to their own packages.

    python -m strategies.versions            # check; exit 1 and one line per problem
    python -m strategies.versions --update   # rewrite the lock (refuses hash-only changes)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from strategies.registry import _REGISTRY, StrategySpec, available_strategies

LOCK_PATH = Path(__file__).resolve().with_name("versions.lock")
UPDATE_COMMAND = "python -m strategies.versions --update"


@dataclass(frozen=True)
class LockProblem:
    name: str
    kind: str  # "code changed, version not" | "not in lock" | "version changed" | "no longer registered"
    message: str


def builtin_specs() -> dict[str, StrategySpec]:
    """The strategies registered by this package itself (not by entry-point plugins)."""
    available_strategies()  # registers plugins too, so that they can be told apart
    return {name: spec for name, spec in sorted(_REGISTRY.items()) if spec.origin == "builtin"}


def current_entries(specs: Mapping[str, StrategySpec] | None = None) -> dict[str, dict[str, str]]:
    specs = builtin_specs() if specs is None else specs
    return {name: {"version": spec.version, "code_hash": spec.code_hash} for name, spec in sorted(specs.items())}


def read_lock(path: Path | None = None) -> dict[str, dict[str, str]]:
    path = LOCK_PATH if path is None else path
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def write_lock(entries: Mapping[str, Mapping[str, str]], path: Path | None = None) -> None:
    path = LOCK_PATH if path is None else path
    path.write_text(json.dumps(dict(sorted(entries.items())), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def compare(locked: Mapping[str, Mapping[str, str]], current: Mapping[str, Mapping[str, str]]) -> list[LockProblem]:
    """Every difference between the lock and the registry, one `LockProblem` each."""
    problems = []
    for name in sorted(set(locked) | set(current)):
        old, new = locked.get(name), current.get(name)
        if old is None:
            problems.append(LockProblem(name, "not in lock", f"{name}: not in versions.lock; run `{UPDATE_COMMAND}`"))
        elif new is None:
            problems.append(
                LockProblem(name, "no longer registered", f"{name}: in versions.lock but not registered; run `{UPDATE_COMMAND}`")
            )
        elif old["version"] == new["version"] and old["code_hash"] != new["code_hash"]:
            problems.append(
                LockProblem(
                    name,
                    "code changed, version not",
                    f"{name}: code hash {old['code_hash']} -> {new['code_hash']} under unchanged version "
                    f"{new['version']}; if the output can change, bump version= in @register_strategy, else run "
                    f"`{UPDATE_COMMAND} --same-output {name}`",
                )
            )
        elif old["version"] != new["version"]:
            problems.append(
                LockProblem(
                    name,
                    "version changed",
                    f"{name}: version {old['version']} -> {new['version']} not yet in versions.lock; run `{UPDATE_COMMAND}`",
                )
            )
    return problems


def update(same_output: Iterable[str] = (), path: Path | None = None) -> tuple[dict[str, dict[str, str]], list[LockProblem]]:
    """Rewrite the lock from the registry; returns (written entries, refused problems).

    A code change under an unchanged version is refused (its old entry kept)
    unless the strategy is named in ``same_output`` (or ``same_output`` holds ``"all"``).
    """
    accepted = set(same_output)
    locked, current = read_lock(path), current_entries()
    refused = [
        problem
        for problem in compare(locked, current)
        if problem.kind == "code changed, version not" and not ({"all", problem.name} & accepted)
    ]
    entries = dict(current)
    for problem in refused:
        entries[problem.name] = dict(locked[problem.name])
    write_lock(entries, path)
    return entries, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m strategies.versions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite strategies/versions.lock from the registry")
    parser.add_argument(
        "--same-output",
        nargs="+",
        default=[],
        metavar="NAME",
        help="with --update: record a new code hash under an unchanged version (a refactor); 'all' for every one",
    )
    args = parser.parse_args(argv)
    if args.same_output and not args.update:
        parser.error("--same-output only makes sense with --update")
    if args.update:
        entries, refused = update(args.same_output)
        for problem in refused:
            print(f"refused: {problem.message}", file=sys.stderr)
        print(f"wrote {LOCK_PATH} ({len(entries)} strategies)")
        return 1 if refused else 0
    problems = compare(read_lock(), current_entries())
    for problem in problems:
        print(problem.message, file=sys.stderr)
    if not problems:
        print(f"{LOCK_PATH.name}: {len(current_entries())} strategies match")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
