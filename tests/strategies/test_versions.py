"""Code hashes and the version lock: a code change under an unchanged version fails here."""

from __future__ import annotations

import sys
import textwrap

import pytest

import strategies.registry as registry
from strategies import get_strategy
from strategies.code_hash import code_parts, kernels_code_hash, strategy_code_hash
from strategies.versions import LOCK_PATH, compare, current_entries, read_lock, update


def test_versions_lock_matches_the_registry():
    """The gate: any strategy whose code changed must bump its version or be re-locked consciously."""
    problems = compare(read_lock(), current_entries())
    assert not problems, "\n".join(p.message for p in problems)


def test_lock_covers_every_builtin_strategy():
    assert set(read_lock()) == set(current_entries()) and LOCK_PATH.name == "versions.lock"


def test_hash_follows_kernels_and_selectors_without_a_list():
    parts = code_parts(get_strategy("margin").fn)
    assert "strategies.uncertainty.margin" in parts
    assert "kernels.uncertainty.margin" in parts  # through `from kernels import uncertainty as kernels`
    assert "strategies.selectors.select_top" in parts and "strategies.selectors.topk" in parts  # transitively
    assert "kernels.uncertainty.entropy" not in parts  # only what margin reaches
    assert "strategies.registry.register_strategy" not in parts  # decorators are metadata


def test_history_strategy_reaches_its_streaming_state_class():
    parts = code_parts(get_strategy("flip_rate").fn)
    assert {"strategies.history.accumulate_history", "kernels.history.HistoryStatistics", "kernels.history.flip_rate"} <= set(parts)


def _module(tmp_path, monkeypatch, name: str, source: str):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    sys.modules.pop(name, None)
    module = __import__(name)
    monkeypatch.setitem(sys.modules, name, module)
    return module


PLUGIN = '''
    """doc {doc}"""
    import torch
    from strategies import Selection, register_strategy
    from strategies.selectors import select_top

    SCALE = {scale}

    def _score(probs_N_C):
        # comment {doc}
        return probs_N_C.amax(dim=1) * SCALE

    @register_strategy(name="{name}", version="{version}", needs=("probs",))
    def {name}(pool, query_size, *, generator):
        """docstring {doc}"""
        return select_top(-_score(pool.probs_N_C), query_size, generator)
'''


def _plugin_hash(tmp_path, monkeypatch, index, **fields):
    values = {"doc": "a", "scale": "1.0", "version": "1.0", **fields}
    name = f"hash_probe_{index}"
    module = _module(tmp_path, monkeypatch, name, PLUGIN.format(name=name, **values))
    return strategy_code_hash(getattr(module, name)), code_parts(getattr(module, name))


def test_hash_changes_with_code_and_constants_not_with_docs_or_version(tmp_path, monkeypatch):
    base, parts = _plugin_hash(tmp_path, monkeypatch, 0)
    # a plugin's own helpers are followed: its top-level package is tracked
    assert any(key.endswith("._score") for key in parts) and "strategies.selectors.topk" in parts
    renamed = {key.replace("hash_probe_0", "hash_probe_X"): value.replace("hash_probe_0", "hash_probe_X") for key, value in parts.items()}
    for index, fields, same in (
        (1, {"doc": "changed text"}, True),
        (2, {"version": "9.9"}, True),
        (3, {"scale": "2.0"}, False),
    ):
        other, other_parts = _plugin_hash(tmp_path, monkeypatch, index, **fields)
        renamed_other = {
            key.replace(f"hash_probe_{index}", "hash_probe_X"): value.replace(f"hash_probe_{index}", "hash_probe_X")
            for key, value in other_parts.items()
        }
        assert (renamed_other == renamed) is same, fields


def test_spec_code_hash_is_the_function_hash():
    spec = get_strategy("bald")
    assert spec.code_hash == strategy_code_hash(spec.fn)
    assert len(spec.code_hash) == 16 and len(kernels_code_hash()) == 16
    assert len({get_strategy(n).code_hash for n in ("margin", "entropy", "ratio", "least_confidence")}) == 4


def test_update_refuses_code_change_under_same_version_unless_told(tmp_path, monkeypatch):
    lock = tmp_path / "versions.lock"
    entries = current_entries()
    stale = {name: dict(entry) for name, entry in entries.items()}
    stale["margin"]["code_hash"] = "0" * 16
    stale["entropy"]["version"] = "0.9"
    stale["entropy"]["code_hash"] = "1" * 16
    from strategies import versions

    versions.write_lock(stale, lock)
    kinds = {p.name: p.kind for p in compare(read_lock(lock), entries)}
    assert kinds == {"margin": "code changed, version not", "entropy": "version changed"}

    written, refused = update(path=lock)
    assert [p.name for p in refused] == ["margin"]
    assert written["margin"]["code_hash"] == "0" * 16 and written["entropy"] == entries["entropy"]
    written, refused = update(same_output=["margin"], path=lock)
    assert not refused and read_lock(lock) == entries


def test_check_command_reports_a_stale_lock(tmp_path, monkeypatch, capsys):
    from strategies import versions

    lock = tmp_path / "versions.lock"
    entries = current_entries()
    entries.pop("ratio")
    versions.write_lock(entries, lock)
    monkeypatch.setattr(versions, "LOCK_PATH", lock)
    assert versions.main([]) == 1
    assert "ratio: not in versions.lock; run `python -m strategies.versions --update`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        versions.main(["--same-output", "ratio"])


_AST_PROBE = """
import hashlib, importlib.util, pathlib, sys
spec = importlib.util.spec_from_file_location("code_hash_probe", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
digest = hashlib.sha256()
for path in sorted(pathlib.Path(sys.argv[2]).glob("*/*.py")):
    if path.parent.name in ("strategies", "kernels"):
        digest.update(module.normalised_source(path.read_text()).encode())
print(digest.hexdigest())
"""


def test_normalised_source_is_the_same_on_every_python_here():
    """ast.dump differs between 3.11, 3.12 and 3.13; the lock must not depend on the interpreter."""
    import shutil
    import subprocess
    from pathlib import Path

    import strategies.code_hash as code_hash

    repo = Path(code_hash.__file__).resolve().parents[1]
    candidates = {shutil.which(f"python3.{minor}") for minor in range(10, 15)} - {None}
    candidates |= {str(path) for path in Path.home().glob(".pyenv/versions/3.1[0-9]*/bin/python3")}
    digests: dict[str, str] = {}
    for python in sorted(candidates | {sys.executable}):
        result = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2] >= (3, 10))"], capture_output=True, text=True, timeout=60
        )
        if result.stdout.strip() != "True":
            continue  # a pyenv shim without a selected version, or too old a Python: nothing to compare
        result = subprocess.run([python, "-c", _AST_PROBE, code_hash.__file__, str(repo)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True).stdout
        digests[version.strip()] = result.stdout.strip()
    if len(digests) < 2:
        pytest.skip(f"only one Python version here ({', '.join(digests)}): nothing to compare")
    assert len(set(digests.values())) == 1, digests
