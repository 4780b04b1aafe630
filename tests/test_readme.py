"""The README's strategy table lists every registered strategy with its registry facts."""

from __future__ import annotations

import re
from pathlib import Path

from strategies import available_strategies, get_strategy

README = Path(__file__).resolve().parents[1] / "README.md"


def strategy_rows() -> dict[str, list[str]]:
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `([a-z_0-9]+)` \|(.*)\|$", line)
        if match and match.group(1) in available_strategies():
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_every_strategy_has_a_row_with_its_needs_batch_awareness_and_paper():
    rows = strategy_rows()
    assert sorted(rows) == sorted(available_strategies())
    for name, (family, needs, batch_aware, params, paper) in rows.items():
        spec = get_strategy(name)
        assert needs == (", ".join(f"`{need}`" for need in spec.needs) or "–"), name
        assert batch_aware == ("yes" if spec.batch_aware else "no"), name
        assert all(f"`{key}=" in params for key in spec.defaults), name
        assert paper == spec.paper, name
