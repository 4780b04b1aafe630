"""``alsweep strategies | datasets | models [--json]``: what the registries hold, plugins included.

    alsweep strategies            a table: name, version, family, needs, batch-aware, params, paper, code hash
    alsweep strategies --json     the same as a JSON list, for scripts
    alsweep datasets              name, module, options with defaults, description, origin
    alsweep models                idem

Entry-point plugins are marked with their distribution (``plugin:<dist>``);
a plugin that failed to import is listed too, with its error in place of a hash.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from experiments.errors import OneLineArgumentParser

LISTINGS = ("strategies", "datasets", "models")
FAILED = "import failed"


def _params(defaults: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in defaults.items()) or "-"


def strategy_rows() -> list[dict[str, Any]]:
    from strategies import available_strategies, get_strategy
    from strategies.registry import plugin_failures

    rows = []
    for name in available_strategies():
        spec = get_strategy(name)
        rows.append(
            {
                "name": name,
                "version": spec.version,
                "family": spec.family,
                "needs": list(spec.needs),
                "batch_aware": spec.batch_aware,
                "params": dict(spec.defaults),
                "paper": spec.paper,
                "code_hash": spec.code_hash,
                "origin": spec.origin,
            }
        )
    for name, (value, error) in sorted(plugin_failures().items()):
        rows.append(
            {
                "name": name, "version": None, "family": value, "needs": [], "batch_aware": None, "params": {},
                "paper": "", "code_hash": f"{FAILED}: {error}", "origin": "plugin (failed)",
            }
        )
    return rows


def _registry_rows(kind: str) -> list[dict[str, Any]]:
    if kind == "datasets":
        from experiments.datasets import DATASETS as registry
    else:
        from experiments.models import MODELS as registry

    rows = [
        {
            "name": name,
            "module": spec.module,
            "options": dict(spec.defaults),
            "description": spec.description,
            "origin": spec.origin,
        }
        for name, spec in ((name, registry.get(name)) for name in registry.names())
    ]
    for name, (value, error) in sorted(registry.plugin_failures().items()):
        rows.append(
            {"name": name, "module": value, "options": {}, "description": f"{FAILED}: {error}", "origin": "plugin (failed)"}
        )
    return rows


def rows_for(kind: str) -> list[dict[str, Any]]:
    return strategy_rows() if kind == "strategies" else _registry_rows(kind)


def _print_table(kind: str, rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"alsweep {kind}", show_lines=False)
    if kind == "strategies":
        columns = ("name", "version", "family", "needs", "batch-aware", "params", "paper", "code hash", "origin")
        for column in columns:
            # names and hashes are looked up and copied: never wrap them
            table.add_column(column, overflow="fold", no_wrap=column in ("name", "version", "family", "code hash"))
        for row in rows:
            table.add_row(
                row["name"],
                row["version"] or "-",
                row["family"],
                ", ".join(row["needs"]) or "-",
                "-" if row["batch_aware"] is None else ("yes" if row["batch_aware"] else "no"),
                _params(row["params"]),
                row["paper"] or "-",
                row["code_hash"],
                row["origin"],
                style="red" if row["origin"] == "plugin (failed)" else None,
            )
    else:
        for column in ("name", "module", "options", "description", "origin"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                row["name"], row["module"], _params(row["options"]), row["description"] or "-", row["origin"],
                style="red" if row["origin"] == "plugin (failed)" else None,
            )
    Console(width=max(Console().width, 160)).print(table)


def main(argv: list[str]) -> int:
    """``argv[0]`` is the listing (``strategies``, ``datasets`` or ``models``), the rest its options."""
    kind, rest = argv[0], argv[1:]
    parser = OneLineArgumentParser(prog=f"alsweep {kind}", description=f"List the registered {kind}, plugins included.")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(rest)
    with warnings.catch_warnings():
        # a broken plugin is shown in the listing itself, not as a warning above it
        warnings.simplefilter("ignore", UserWarning)
        rows = rows_for(kind)
    if args.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        _print_table(kind, rows)
    return 0
