"""`package_source_hash`: code changes change it, comments and docstrings do not."""

from __future__ import annotations

import importlib
import sys

import pytest

from strategies.code_hash import package_source_hash


@pytest.fixture
def make_package(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str):
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        (folder / "__init__.py").write_text("")
        (folder / "core.py").write_text(source)
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    return write


def test_comments_and_docstrings_leave_the_hash_unchanged(make_package):
    base = package_source_hash(make_package("pkg_a", "def f(x):\n    return x + 1\n"))
    commented = package_source_hash(
        make_package("pkg_a", '"""A module."""\n\n# why\ndef f(x):\n    """Add one."""\n    return x + 1  # one\n')
    )
    changed = package_source_hash(make_package("pkg_a", "def f(x):\n    return x + 2\n"))
    assert base == commented
    assert base != changed


def test_several_packages_hash_together(make_package):
    first = make_package("pkg_b", "A = 1\n")
    second = make_package("pkg_c", "B = 2\n")
    both = package_source_hash(first, second)
    assert both != package_source_hash(first) and both != package_source_hash(second)
    assert len(both) == 16
