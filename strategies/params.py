"""Checks of a strategy's parameter *values*, shared by the call and the up-front config check.

A strategy registers one checker (``register_strategy(..., check_params=...)``) with
the signature ``checker(params, pool_size, key_prefix)``:

- ``params``: every keyword parameter, defaults filled in;
- ``pool_size``: the smallest pool the strategy will see, or None where it is not
  known yet (then checks that compare with N are skipped);
- ``key_prefix``: what to put before a parameter's name in the message, ``"params."``
  for a direct call and ``"strategy.params."`` for a config, so the message names the
  key the user actually wrote.

The runner calls the checker with the run's smallest pool before round 0 trains, so a
δ ≤ 0 or a target set larger than the pool fails in seconds, not after an hour of
training; the registry calls it again on every call, with the real N.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from strategies.errors import StrategyInputError

ParamChecker = Callable[[Mapping[str, Any], "int | None", str], None]


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_int(strategy: str, key: str, value: object, minimum: int, *, maximum: int | None = None,
                optional: bool = False, maximum_means: str = "") -> int | None:
    """An integer in [minimum, maximum]; ``optional`` also accepts None. ``key`` is shown as given."""
    if value is None and optional:
        return None
    in_range = is_int(value) and value >= minimum and (maximum is None or value <= maximum)
    if not in_range:
        allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]{maximum_means}"
        raise StrategyInputError(f"{strategy}: '{key}' must be {'null or ' if optional else ''}{allowed}; got {value!r}")
    return value


def require_number(strategy: str, key: str, value: object, allowed: str, ok: Callable[[float], bool]) -> float:
    """A finite real number for which ``ok`` holds; ``allowed`` says which, e.g. "a number > 0"."""
    if not is_number(value) or not ok(value):
        raise StrategyInputError(f"{strategy}: '{key}' must be {allowed}; got {value!r}")
    return float(value)


def require_choice(strategy: str, key: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise StrategyInputError(f"{strategy}: '{key}' must be one of {', '.join(choices)}; got {value!r}")
    return value


def require_bool(strategy: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise StrategyInputError(f"{strategy}: '{key}' must be true or false; got {value!r}")
    return value
