"""Registry behaviour: lookup errors, registration rules, entry-point plugins."""

from __future__ import annotations

import sys
import textwrap
from importlib import metadata

import pytest
import torch

import strategies.registry as registry
from strategies import PoolView, Selection, UnknownNameError, available_strategies, get_strategy, register_strategy


def test_unknown_name_lists_valid_names_and_closest_match():
    with pytest.raises(UnknownNameError) as raised:
        get_strategy("bals")
    message = str(raised.value)
    assert message.startswith("unknown strategy 'bals' (key 'strategy.name'); did you mean 'bald'?")
    assert "valid: " in message and "coreset" in message and "\n" not in message


def test_the_slice_registers_one_strategy_per_input_kind():
    names = set(available_strategies())
    assert {"random", "least_confidence", "margin", "entropy", "ratio", "bald", "coreset", "tod", "flip_rate"} <= names
    needs = {need for name in names for need in get_strategy(name).needs}
    assert needs == {"probs", "mc_log_probs", "emb", "labelled_emb", "history"}


def test_registration_rejects_bad_specs():
    with pytest.raises(ValueError, match="snake_case"):
        register_strategy(name="NotSnake", version="1")
    with pytest.raises(ValueError, match="unknown needs"):
        register_strategy(name="x_strategy", version="1", needs=("logits",))
    with pytest.raises(TypeError, match="signature"):
        register_strategy(name="no_generator", version="1")(lambda pool, query_size: None)
    with pytest.raises(ValueError, match="already registered"):
        @register_strategy(name="entropy", version="9")
        def impostor(pool, query_size, *, generator):  # noqa: ARG001
            return Selection(torch.arange(1))


def test_declared_parameters_become_defaults():
    spec = get_strategy("flip_rate")
    assert dict(spec.defaults) == {"prior_a": 1.0, "prior_b": 1.0}


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    (tmp_path / "alsweep_test_plugin.py").write_text(textwrap.dedent('''
        import torch
        from strategies import Selection, register_strategy

        @register_strategy(name="first_in_pool", version="0.1", paper="test plugin")
        def first_in_pool(pool, query_size, *, generator):
            return Selection(torch.arange(min(query_size, pool.size)))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = metadata.EntryPoint(name="first_in_pool", value="alsweep_test_plugin", group=registry.ENTRY_POINT_GROUP)
    broken = metadata.EntryPoint(name="broken", value="alsweep_no_such_module", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [plugin, broken] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_PLUGIN_FAILURES", {})
    with pytest.warns(UserWarning, match="could not load strategy plugin 'broken'"):
        assert "first_in_pool" in available_strategies()
    assert get_strategy("first_in_pool").origin == "plugin:alsweep_test_plugin"
    assert get_strategy("entropy").origin == "builtin"
    assert registry.plugin_failures()["broken"][0] == "alsweep_no_such_module"
    assert "ModuleNotFoundError" in registry.plugin_failures()["broken"][1]
    assert len(get_strategy("first_in_pool").code_hash) == 16
    selection = get_strategy("first_in_pool")(PoolView(pool_ids_N=torch.arange(5)), 3, generator=torch.Generator())
    assert selection.indices_B.tolist() == [0, 1, 2]
    sys.modules.pop("alsweep_test_plugin", None)


def test_plugin_returning_duplicates_is_caught(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_strategy(name="broken_duplicates", version="0")
    def broken_duplicates(pool, query_size, *, generator):  # noqa: ARG001
        return Selection(torch.zeros(query_size, dtype=torch.int64))

    with pytest.raises(RuntimeError, match="duplicate pool positions"):
        broken_duplicates(PoolView(pool_ids_N=torch.arange(5)), 2, generator=torch.Generator())
