"""The strategy registry: one spec per querying strategy, keyed by its snake_case name.

A strategy is a pure function ``fn(pool, query_size, *, generator, **params) -> Selection``
registered with `register_strategy`, which records what it needs from INFER
and wraps it so every call validates its inputs and its output. Third-party
packages add strategies through the entry-point group ``alsweep.strategies``:
each entry point names a module (or object) whose import registers them.

    from strategies import get_strategy
    spec = get_strategy("bald")
    selection = spec(pool, 64, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Any

import torch

from strategies.errors import StrategyInputError, UnknownNameError
from strategies.params import ParamChecker
from strategies.pool_view import (
    NEED_FIELDS,
    PoolView,
    Selection,
    validate_pool,
    validate_query_size,
    validate_selection,
)

ENTRY_POINT_GROUP = "alsweep.strategies"

StrategyFn = Callable[..., Selection]


@dataclass(frozen=True)
class StrategySpec:
    """What the registry knows of a strategy.

    Attributes:
        name: snake_case key, used end to end (config file, MLflow tag, leaderboard row).
        version: bumped whenever the output changes for the same input; logged with every run.
        needs: the `PoolView` inputs INFER must compute (keys of ``NEED_FIELDS``).
        batch_aware: True if the B picks are chosen jointly (not a top-B of independent scores).
        paper: the reference the implementation follows.
        fn: the validating callable (the decorated function).
        defaults: keyword parameters the strategy accepts, with their defaults.
        value_checker: checks the parameters' values (see `strategies.params`); None: any value.
    """

    name: str
    version: str
    needs: tuple[str, ...]
    batch_aware: bool
    paper: str
    fn: StrategyFn = field(repr=False)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    origin: str = "builtin"
    value_checker: ParamChecker | None = field(default=None, repr=False)

    @property
    def family(self) -> str:
        """The module that defines the strategy (``strategies.uncertainty``, or a plugin's module)."""
        return inspect.unwrap(self.fn).__module__

    @functools.cached_property
    def code_hash(self) -> str:
        """Hash of the code the strategy runs: its function, the kernels and selectors it reaches.

        See `strategies.code_hash` for the method and its limits.
        """
        from strategies.code_hash import strategy_code_hash

        return strategy_code_hash(self.fn)

    def __call__(self, pool: PoolView, query_size: int, *, generator: torch.Generator, **params: Any) -> Selection:
        return self.fn(pool, query_size, generator=generator, **params)

    def check_params(self, params: Mapping[str, Any], key_prefix: str = "strategy.params") -> None:
        """Raise StrategyInputError naming the key if ``params`` has a name the strategy does not take."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise StrategyInputError(
                f"{self.name}: unknown parameter '{key_prefix}.{unknown[0]}'; allowed: {allowed}"
            )

    def check_param_values(
        self, params: Mapping[str, Any], pool_size: int | None = None, key_prefix: str = "strategy.params"
    ) -> None:
        """Raise StrategyInputError naming ``key_prefix.<key>`` for a parameter value the strategy refuses.

        ``pool_size``: the smallest pool the strategy will be called on (None: unknown, so the
        checks against N are skipped). Names are checked first (`check_params`).
        """
        self.check_params(params, key_prefix)
        if self.value_checker is not None:
            self.value_checker({**self.defaults, **params}, pool_size, f"{key_prefix}.")


_REGISTRY: dict[str, StrategySpec] = {}
_entry_points_loaded = False
#: "plugin:<distribution>" while an entry point's module is being imported, so its specs say where they came from.
_loading_plugin: str | None = None
#: Entry points that failed to import: entry-point name -> (value, one-line error).
_PLUGIN_FAILURES: dict[str, tuple[str, str]] = {}


def _keyword_defaults(fn: StrategyFn, name: str) -> dict[str, Any]:
    """The tunable keyword-only parameters of ``fn``: all but ``generator``, each with a default."""
    signature = inspect.signature(fn)
    positional = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = {p.name: p for p in signature.parameters.values() if p.kind == p.KEYWORD_ONLY}
    if len(positional) != 2 or "generator" not in keyword:
        raise TypeError(f"strategy '{name}' must have the signature fn(pool, query_size, *, generator, **params)")
    defaults = {}
    for param_name, param in keyword.items():
        if param_name == "generator":
            continue
        if param.default is param.empty:
            raise TypeError(f"strategy '{name}': keyword parameter '{param_name}' needs a default")
        defaults[param_name] = param.default
    return defaults


def register_strategy(
    *, name: str, version: str, needs: tuple[str, ...] = (), batch_aware: bool = False, paper: str = "",
    check_params: ParamChecker | None = None,
) -> Callable[[StrategyFn], StrategyFn]:
    """Decorator: register ``fn`` under ``name`` and return it wrapped with input/output validation.

    ``check_params(params, pool_size, key_prefix)`` checks the parameter values (see
    `strategies.params`); the runner also calls it before any training, so keep value
    checks there rather than in ``fn``.

    The wrapper validates the query size, the generator, the parameters' names and values, and the
    inputs in ``needs``; an empty pool (N = 0) then returns an empty `Selection` (no
    scores, the strategy state passed through) without calling ``fn``, so every strategy
    has the same defined result there.

    The returned function keeps ``fn``'s name and docstring and carries its
    `StrategySpec` as ``.spec``.
    """
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"strategy name must be snake_case; got '{name}'")
    unknown_needs = sorted(set(needs) - set(NEED_FIELDS))
    if unknown_needs:
        raise ValueError(f"strategy '{name}': unknown needs {unknown_needs}; allowed: {sorted(NEED_FIELDS)}")
    needs = tuple(needs)

    def decorator(fn: StrategyFn) -> StrategyFn:
        defaults = _keyword_defaults(fn, name)

        @functools.wraps(fn)
        def validated(pool: PoolView, query_size: int, *, generator: torch.Generator, **params: Any) -> Selection:
            query_size = validate_query_size(name, query_size)
            if not isinstance(generator, torch.Generator):
                raise StrategyInputError(
                    f"{name}: 'generator' must be a torch.Generator; got {type(generator).__name__}"
                )
            validate_pool(name, pool, needs)
            # with N = 0 nothing is compared with N: the empty pool has one defined answer below
            spec.check_param_values(params, pool.size or None, key_prefix="params")
            if pool.size == 0:
                # N = 0 has one defined answer, min(B, N) = 0 positions; no strategy has to handle it
                empty = torch.empty(0, dtype=torch.int64, device=pool.device)
                return Selection(empty, None, pool.strategy_state)
            selection = fn(pool, query_size, generator=generator, **params)
            validate_selection(name, selection, pool.size, query_size)
            return selection

        spec = StrategySpec(
            name=name,
            version=str(version),
            needs=needs,
            batch_aware=batch_aware,
            paper=paper,
            fn=validated,
            defaults=MappingProxyType(defaults),
            origin=_loading_plugin or "builtin",
            value_checker=check_params,
        )
        existing = _REGISTRY.get(name)
        if existing is not None and existing.fn.__module__ + existing.fn.__qualname__ != fn.__module__ + fn.__qualname__:
            raise ValueError(f"strategy '{name}' is already registered by {existing.fn.__module__}")
        _REGISTRY[name] = spec
        validated.spec = spec  # type: ignore[attr-defined]
        return validated

    return decorator


def _load_entry_points() -> None:
    """Import third-party strategy modules once; a broken plugin warns instead of breaking the suite."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    global _loading_plugin
    _entry_points_loaded = True
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = getattr(getattr(entry_point, "dist", None), "name", None) or entry_point.value.partition(".")[0]
        _loading_plugin = f"plugin:{distribution}"
        try:
            entry_point.load()
        except Exception as error:  # noqa: BLE001 - any import failure of foreign code
            _PLUGIN_FAILURES[entry_point.name] = (entry_point.value, f"{type(error).__name__}: {error}")
            warnings.warn(
                f"alsweep: could not load strategy plugin '{entry_point.name}' ({entry_point.value}): {error}",
                stacklevel=2,
            )
        finally:
            _loading_plugin = None


def plugin_failures() -> dict[str, tuple[str, str]]:
    """Strategy entry points that failed to import: name -> (entry-point value, error)."""
    _load_entry_points()
    return dict(_PLUGIN_FAILURES)


def available_strategies() -> tuple[str, ...]:
    """Sorted names of all registered strategies, plugins included."""
    _load_entry_points()
    return tuple(sorted(_REGISTRY))


def get_strategy(name: str) -> StrategySpec:
    """The spec registered under ``name``; UnknownNameError lists valid names and the closest one."""
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("strategy", name, _REGISTRY, key="strategy.name") from None
