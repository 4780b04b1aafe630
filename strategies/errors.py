"""Errors raised by strategies and their inputs.

Every message is one line that names the offending parameter, what is allowed
and what was given, so that a researcher can fix the call without reading code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class StrategyInputError(ValueError):
    """A strategy was called with a malformed `PoolView`, query size or parameter."""


class UnknownNameError(ValueError):
    """A name (strategy, dataset, model, ...) is not among the registered ones.

    The message lists the valid names and the closest match, e.g.
    ``unknown strategy 'bals' (key 'strategy'); did you mean 'bald'? valid: bald, entropy``.
    """

    def __init__(self, kind: str, given: str, valid: Iterable[str], key: str | None = None):
        self.kind = kind
        self.given = given
        self.valid = sorted(valid)
        self.key = key or kind
        self.closest = difflib.get_close_matches(str(given), self.valid, n=1, cutoff=0.5)
        hint = f" did you mean '{self.closest[0]}'?" if self.closest else ""
        super().__init__(
            f"unknown {kind} '{given}' (key '{self.key}');{hint} valid: {', '.join(self.valid)}"
        )
