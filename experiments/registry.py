"""Name -> spec registries for datasets and models, in the pattern of the strategy registry.

A built-in module registers its entries on import; another package adds more
through an entry-point group (``alsweep.datasets``, ``alsweep.models``) whose
entry points name a module whose import registers them. A plugin that fails
to import warns once and is listed as failed; it never breaks the suite.
An unknown name raises `UnknownNameError` with the valid names and the closest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from strategies.errors import UnknownNameError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Spec:
    """One registered dataset or model.

    Attributes:
        name: snake_case key, the config option (``dataset=<name>`` / ``model=<name>``).
        fn: the loader or builder.
        defaults: the options it accepts, with their defaults.
        description: one line for ``alsweep datasets`` / ``alsweep models``.
        origin: ``builtin`` or ``plugin:<distribution>``.
        extras: kind-specific callables (a dataset's ``sizes``).
    """

    name: str
    fn: Callable[..., Any] = field(repr=False)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    origin: str = "builtin"
    extras: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def module(self) -> str:
        return self.fn.__module__


class Registry(Generic[F]):
    """Specs of one kind (``dataset``, ``model``), keyed by name; plugins load on first lookup."""

    def __init__(self, kind: str, entry_point_group: str, config_key: str):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.config_key = config_key
        self._specs: dict[str, Spec] = {}
        self._plugins_loaded = False
        self._loading_plugin: str | None = None
        self._failures: dict[str, tuple[str, str]] = {}

    def register(
        self, *, name: str, defaults: Mapping[str, Any] | None = None, description: str = "", **extras: Any
    ) -> Callable[[F], F]:
        """Decorator: register ``fn`` under ``name``; returns ``fn`` unchanged.

        The same function may be registered under several names (one loader
        for MNIST and Fashion-MNIST); registering a name twice from different
        functions is an error.
        """
        if not name.isidentifier() or name != name.lower():
            raise ValueError(f"{self.kind} name must be snake_case; got '{name}'")

        def decorator(fn: F) -> F:
            existing = self._specs.get(name)
            if existing is not None and (existing.fn.__module__, existing.fn.__qualname__) != (
                fn.__module__,
                fn.__qualname__,
            ):
                raise ValueError(f"{self.kind} '{name}' is already registered by {existing.fn.__module__}")
            self._specs[name] = Spec(
                name=name,
                fn=fn,
                defaults=MappingProxyType(dict(defaults or {})),
                description=description,
                origin=self._loading_plugin or "builtin",
                extras=MappingProxyType(extras),
            )
            return fn

        return decorator

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry_point in metadata.entry_points(group=self.entry_point_group):
            distribution = getattr(getattr(entry_point, "dist", None), "name", None) or entry_point.value.partition(".")[0]
            self._loading_plugin = f"plugin:{distribution}"
            try:
                entry_point.load()
            except Exception as error:  # noqa: BLE001 - any import failure of foreign code
                self._failures[entry_point.name] = (entry_point.value, f"{type(error).__name__}: {error}")
                warnings.warn(
                    f"alsweep: could not load {self.kind} plugin '{entry_point.name}' ({entry_point.value}): {error}",
                    stacklevel=3,
                )
            finally:
                self._loading_plugin = None

    def names(self) -> tuple[str, ...]:
        """Sorted names, plugins included."""
        self._load_plugins()
        return tuple(sorted(self._specs))

    def get(self, name: str) -> Spec:
        self._load_plugins()
        try:
            return self._specs[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self._specs, key=self.config_key) from None

    def plugin_failures(self) -> dict[str, tuple[str, str]]:
        """Entry points of this kind that failed to import: name -> (value, error)."""
        self._load_plugins()
        return dict(self._failures)

    def resolve_options(self, name: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """The spec's defaults overridden by ``given``; an unknown key is a ConfigError naming it."""
        from experiments.errors import ConfigError

        defaults = self.get(name).defaults
        for key in given:
            if key not in defaults:
                accepted = ", ".join(sorted(defaults)) or "none"
                raise ConfigError(
                    f"{self.config_key.partition('.')[0]}.{key}: unknown option for {self.kind} '{name}'; "
                    f"accepted options: {accepted}"
                )
        return {**defaults, **given}


class LiveNames(Sequence[str]):
    """The sorted names of a registry, read at each use, so that plugins count.

    Stands where a tuple of names used to be (``DATASET_NAMES``, ``MODEL_NAMES``):
    ``name in DATASET_NAMES``, iteration and ``tuple(...)`` see plugins too.
    """

    def __init__(self, registry: Registry):
        self._registry = registry

    def __getitem__(self, index):  # type: ignore[override]
        return self._registry.names()[index]

    def __len__(self) -> int:
        return len(self._registry.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.names())

    def __contains__(self, name: object) -> bool:
        return name in self._registry.names()

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, LiveNames)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(self._registry.names())
