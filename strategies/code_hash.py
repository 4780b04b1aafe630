"""Code hashes that follow the code: what a strategy computes with, found from its source.

``strategy_code_hash(fn)`` hashes the strategy function together with every
function, class and constant it reaches through names in its source, followed
transitively, without a hand-kept list:

1. parse the object's source (``inspect.getsource`` + ``ast``);
2. collect every name it uses (``kernels.bald`` as the chain ``kernels`` ->
   ``bald``, annotations and default values included, decorators excluded so
   that bumping ``version=`` in ``@register_strategy`` does not change the hash);
3. resolve each name in the object's module globals (and, for functions, its
   closure), walking attribute chains through modules and classes;
4. follow what resolves to a function or class defined in a *tracked* package
   (``strategies``, ``kernels`` and the top-level package of the strategy
   itself, so an entry-point plugin is hashed with its own helpers), and record
   simple constants (numbers, strings, tuples of them) by value; dicts, lists and tuples entry by entry
   (so a table name -> kernel function is followed into every kernel it holds);
5. hash the sorted (qualified name, normalised source) pairs with sha256.

Sources are normalised to their AST without docstrings (a dump that is the same on Python 3.10-3.13), so
comments, blank lines, formatting and docstrings do not change a hash; any
change to code does. Wrapped functions (``functools.wraps``) are unwrapped
first, so the registry's validating wrapper is not part of a strategy's hash.

Limits, by construction of a static walk:

- methods reached only through an *object* passed in at run time are covered
  only when their class is named somewhere in the walked source (an
  annotation such as ``history: HistoryView`` counts, and then the whole class
  is hashed); a subclass defined elsewhere (``experiments``' history store)
  is not followed;
- code outside the tracked packages (torch, numpy, the standard library) is
  not hashed: its version is a property of the environment, not of alsweep;
- names built at run time (``getattr(module, name)``, ``importlib``) are not seen;
- an object whose source cannot be read (C extensions, a REPL) contributes
  its qualified name only.

``kernels_code_hash()`` is coarser: the normalised AST of every module of the
``kernels`` package.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import inspect
import textwrap
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

#: Packages whose code is followed for every strategy; a strategy's own top-level package is added.
TRACKED_PACKAGES: tuple[str, ...] = ("strategies", "kernels")

#: Prefix of every hash: bumped if the scheme changes, so old and new hashes never compare equal.
_SCHEME = b"alsweep-code-hash-v1\n"
_HASH_CHARS = 16  # 64 bits: enough to tell versions apart, short enough for a table column

_CONSTANT_TYPES = (int, float, complex, str, bytes, bool, type(None))


def _top_package(module_name: str | None) -> str:
    return (module_name or "").partition(".")[0]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(
                body[0].value.value, str
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _dump(node: Any) -> str:
    """A stable text form of an AST across Python versions.

    ``ast.dump`` changes between versions (3.12 added ``type_params``, 3.13
    stopped printing empty and None fields), so fields that are None or empty
    are always left out, as is ``Constant.kind`` (the ``u`` prefix) and type
    comments; positions are never part of it.
    """
    if isinstance(node, ast.AST):
        fields = [
            f"{name}={_dump(value)}"
            for name, value in ast.iter_fields(node)
            if value is not None and value != [] and name not in ("kind", "type_comment")
        ]
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return "[" + ", ".join(_dump(item) for item in node) + "]"
    return repr(node)


def normalised_source(source: str) -> str:
    """The AST of ``source`` without docstrings or positions: what changes only when code changes."""
    return _dump(_strip_docstrings(ast.parse(textwrap.dedent(source))))


def _parse_definition(obj: Any) -> ast.AST | None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    tree = ast.parse(textwrap.dedent(source))
    definition = tree.body[0] if tree.body else tree
    if isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        # The decorators register the object (name, version, paper): metadata, not computation.
        definition.decorator_list = []
    return definition


def _name_chains(tree: ast.AST) -> set[tuple[str, ...]]:
    """Every ``a.b.c`` read in ``tree`` as ("a", "b", "c"); bare names as 1-tuples."""
    chains: set[tuple[str, ...]] = set()
    inner_of_chain: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner_of_chain:
            parts, current = [], node
            while isinstance(current, ast.Attribute):
                parts.append(current.attr)
                inner_of_chain.add(id(current.value))
                current = current.value
            if isinstance(current, ast.Name):
                inner_of_chain.add(id(current))
                chains.add((current.id, *reversed(parts)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in inner_of_chain:
            chains.add((node.id,))
    return chains


def _namespace(obj: Any) -> dict[str, Any]:
    if isinstance(obj, types.FunctionType):
        namespace = dict(obj.__globals__)
        try:
            namespace.update(inspect.getclosurevars(obj).nonlocals)
        except (TypeError, ValueError):
            pass
        return namespace
    module = inspect.getmodule(obj)
    return dict(vars(module)) if module is not None else {}


def _qualified_name(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _is_constant(value: Any) -> bool:
    if isinstance(value, _CONSTANT_TYPES):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_is_constant(item) for item in value)
    return False


class _Walker:
    """Collects (qualified name -> normalised source or constant repr) for everything reached."""

    def __init__(self, tracked: Iterable[str]):
        self.tracked = frozenset(tracked)
        self.parts: dict[str, str] = {}

    def _in_scope(self, obj: Any) -> bool:
        module = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
        return _top_package(module) in self.tracked

    def visit(self, obj: Any) -> None:
        obj = inspect.unwrap(obj) if callable(obj) else obj
        if isinstance(obj, functools.partial):
            self.visit(obj.func)
            return
        if not (inspect.isfunction(obj) or inspect.isclass(obj) or isinstance(obj, types.ModuleType)):
            return
        if not self._in_scope(obj):
            return
        key = _qualified_name(obj)
        if key in self.parts:
            return
        if isinstance(obj, types.ModuleType):
            # A module used as a value, not through one of its attributes: all of it may matter.
            try:
                self.parts[key] = normalised_source(inspect.getsource(obj))
            except (OSError, TypeError):
                self.parts[key] = "<source unavailable>"
            return
        definition = _parse_definition(obj)
        if definition is None:
            self.parts[key] = "<source unavailable>"
            return
        self.parts[key] = _dump(_strip_docstrings(definition))
        namespace = _namespace(obj)
        for chain in sorted(_name_chains(definition)):
            self._follow(chain, namespace, where=key)

    def _follow(self, chain: tuple[str, ...], namespace: dict[str, Any], where: str) -> None:
        head, *rest = chain
        if head not in namespace:
            return  # a local variable, a parameter or a builtin
        value = namespace[head]
        if head not in vars(builtins) or value is not getattr(builtins, head, None):
            self._record(f"{where}:{head}", value)
        for attribute in rest:
            if not isinstance(value, types.ModuleType) and not inspect.isclass(value):
                break  # an attribute of an instance: decided at run time
            if isinstance(value, types.ModuleType) and not self._in_scope(value):
                break  # torch.float32 and friends: the environment, not our code
            try:
                value = getattr(value, attribute)
            except AttributeError:
                break
            self._record(f"{where}:{head}.{attribute}", value)
            if inspect.isclass(value):
                break  # the class's whole source is hashed, its methods with it
        else:
            if isinstance(value, types.ModuleType) and len(rest) == 0:
                self.visit(value)

    def _record(self, label: str, value: Any) -> None:
        if isinstance(value, types.ModuleType):
            return  # a module on the way to an attribute; the attribute itself is followed
        if _is_constant(value):
            # sorted: a frozenset's order follows the per-process string hash seed
            self.parts[label] = repr(sorted(value, key=repr)) if isinstance(value, frozenset) else repr(value)
        elif isinstance(value, (dict, types.MappingProxyType, list, tuple)):
            # a dispatch table (name -> kernel) reaches its functions by string at run time: follow every entry
            items = sorted(value.items(), key=lambda item: repr(item[0])) if isinstance(value, (dict, types.MappingProxyType)) else enumerate(value)
            for key, item in items:
                self._record(f"{label}[{key!r}]", item)
        else:
            self.visit(value)


def _digest(parts: dict[str, str]) -> str:
    digest = hashlib.sha256(_SCHEME)
    for key in sorted(parts):
        digest.update(key.encode())
        digest.update(b"\0")
        digest.update(parts[key].encode())
        digest.update(b"\n")
    return digest.hexdigest()[:_HASH_CHARS]


def code_parts(fn: Callable[..., Any], tracked: Iterable[str] | None = None) -> dict[str, str]:
    """What ``strategy_code_hash`` hashes: qualified name -> normalised source (or constant repr)."""
    original = inspect.unwrap(fn)
    packages = set(TRACKED_PACKAGES if tracked is None else tracked)
    packages.add(_top_package(getattr(original, "__module__", None)))
    walker = _Walker(packages)
    walker.visit(original)
    return walker.parts


def strategy_code_hash(fn: Callable[..., Any], tracked: Iterable[str] | None = None) -> str:
    """16 hex digits identifying the code ``fn`` runs (see the module docstring for the method)."""
    return _digest(code_parts(fn, tracked))


def package_source_hash(*packages: ModuleType) -> str:
    """16 hex digits over the normalised source (no comments, docstrings or positions) of every module
    of ``packages``: a comment, a docstring or a file outside them (README, tests) leaves it unchanged."""
    parts = {}
    for package in packages:
        root = Path(package.__file__).resolve().parent
        # one package keeps its files' bare names, so kernels_code_hash equals the value recorded by older runs
        prefix = f"{package.__name__}/" if len(packages) > 1 else ""
        for path in sorted(root.rglob("*.py")):
            parts[f"{prefix}{path.relative_to(root)}"] = normalised_source(path.read_text(encoding="utf-8"))
    return _digest(parts)


@functools.lru_cache(maxsize=None)
def kernels_code_hash() -> str:
    """16 hex digits over the normalised source of every module in the ``kernels`` package."""
    import kernels

    return package_source_hash(kernels)
