"""Contract tests generated from the registry: every strategy, same promises."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from strategies import NEED_FIELDS, StrategyInputError, TensorHistory, available_strategies, get_strategy
from tests.strategies.conftest import full_pool, labelled_ids

ALL = available_strategies()


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def check_selection(pool, selection, labelled, query_size: int) -> None:
    """The output contract, as the loop uses it: positions -> dataset ids, none labelled, finite scores."""
    indices = selection.indices_B
    expected = min(query_size, pool.size)
    assert indices.dtype == torch.int64 and indices.shape == (expected,)
    assert torch.unique(indices).numel() == expected
    assert ((indices >= 0) & (indices < pool.size)).all()
    chosen_ids = pool.pool_ids_N[indices]  # what experiments.loop.label does
    assert not torch.isin(chosen_ids, labelled).any(), "selected a labelled sample"
    if selection.scores_N is not None:
        assert selection.scores_N.shape == (pool.size,)
        assert torch.isfinite(selection.scores_N).all(), "non-finite scores"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("query_size", [1, 17, 300])
@pytest.mark.parametrize("labelled_size", [10, 0])
def test_returns_b_unique_pool_positions_never_labelled(name, query_size, labelled_size):
    pool = full_pool(labelled_size=labelled_size)
    selection = get_strategy(name)(pool, query_size, generator=generator())
    check_selection(pool, selection, labelled_ids(labelled_size=labelled_size), query_size)


@pytest.mark.parametrize("name", ALL)
def test_empty_pool_gives_an_empty_selection(name):
    # decided: N = 0 is not an error; min(B, N) = 0 positions, no scores (see register_strategy)
    pool = full_pool(pool_size=0)
    selection = get_strategy(name)(pool, 5, generator=generator())
    assert selection.indices_B.dtype == torch.int64 and selection.indices_B.shape == (0,)
    assert selection.scores_N is None


@pytest.mark.parametrize("name", ALL)
def test_query_larger_than_pool_returns_the_whole_pool(name):
    pool = full_pool(pool_size=20)
    selection = get_strategy(name)(pool, 1000, generator=generator())
    assert sorted(selection.indices_B.tolist()) == list(range(20))


@pytest.mark.parametrize("name", ALL)
def test_reproducible_for_a_seed(name):
    pool = full_pool(seed=3)
    first = get_strategy(name)(pool, 25, generator=generator(7)).indices_B
    second = get_strategy(name)(pool, 25, generator=generator(7)).indices_B
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad_size", [0, -3, 2.5, True])
def test_bad_query_size_names_the_parameter(name, bad_size):
    with pytest.raises(StrategyInputError, match=rf"^{name}: 'query_size' must be a positive integer; got"):
        get_strategy(name)(full_pool(), bad_size, generator=generator())


@pytest.mark.parametrize("name", [n for n in ALL if get_strategy(n).needs])
def test_each_missing_input_is_named(name):
    spec = get_strategy(name)
    for need in spec.needs:
        pool = dataclasses.replace(full_pool(), **{NEED_FIELDS[need]: None})
        with pytest.raises(StrategyInputError, match=rf"^{name}: needs '{need}'"):
            spec(pool, 5, generator=generator())


MALFORMED = {
    "probs": [
        (lambda p: p.probs_N_C[:, :1], r"'probs' must have shape \(N=300, C\) with C >= 2; got \(300, 1\)"),
        (lambda p: p.probs_N_C.clone().index_fill_(0, torch.tensor([4]), math.nan), r"'probs' contains NaN or infinite values \(first at pool row 4\)"),
        (lambda p: p.probs_N_C * 2, r"'probs' must be normalised over classes"),
        (lambda p: p.probs_N_C[:10], r"'probs' must have shape \(N=300, C\)"),
    ],
    "mc_log_probs": [
        (lambda p: p.mc_log_probs_N_K_C[:, 0], r"'mc_log_probs' must have shape \(N=300, K, C\) with K >= 2; got \(300, 5\)"),
        (lambda p: p.mc_log_probs_N_K_C[:, :1], r"with K >= 2; got \(300, 1, 5\)"),
        (lambda p: p.mc_log_probs_N_K_C.exp(), r"'mc_log_probs' must be normalised over classes"),
    ],
    "emb": [
        (lambda p: p.emb_N_D[:, 0], r"'emb' must have shape \(N=300, D\); got \(300,\)"),
        (lambda p: p.emb_N_D.clone().fill_(math.inf), r"'emb' contains NaN or infinite values"),
    ],
    "labelled_emb": [
        (lambda p: p.labelled_emb_L_D[:, :2], r"'labelled_emb' must have shape \(L, D=6\); got \(10, 2\)"),
        (lambda p: p.labelled_emb_L_D.clone().fill_(math.nan), r"'labelled_emb' contains NaN or infinite values"),
    ],
    "history": [
        (lambda p: TensorHistory(p.history.hist_T_N_C[:, :10], p.history.observed_T_N[:, :10]), r"'history' must be aligned to the pool \(N=300\)"),
        (lambda p: TensorHistory(p.history.hist_T_N_C[:0], p.history.observed_T_N[:0]), r"'history' must hold at least one recorded round"),
        (lambda p: p.history.hist_T_N_C, r"'history' must be a HistoryView"),
    ],
}


@pytest.mark.parametrize("name", ALL)
def test_malformed_inputs_fail_with_a_one_line_message(name):
    check_malformed(get_strategy(name))


def check_malformed(spec) -> None:
    name = spec.name
    checked = 0
    for need in spec.needs:
        for corrupt, message in MALFORMED.get(need, []):
            pool = full_pool()
            bad_pool = dataclasses.replace(pool, **{NEED_FIELDS[need]: corrupt(pool)})
            with pytest.raises(StrategyInputError, match=rf"^{name}: .*{message}") as raised:
                spec(bad_pool, 5, generator=generator())
            assert "\n" not in str(raised.value)
            checked += 1
    assert set(spec.needs) <= set(MALFORMED)  # every kind of input has malformed cases
    assert checked or not spec.needs


@pytest.mark.parametrize("name", ALL)
def test_generator_must_be_explicit(name):
    with pytest.raises(StrategyInputError, match=rf"^{name}: 'generator' must be a torch.Generator; got int"):
        get_strategy(name)(full_pool(), 5, generator=0)


@pytest.mark.parametrize("name", ALL)
def test_unknown_parameter_is_named(name):
    with pytest.raises(StrategyInputError, match=rf"^{name}: unknown parameter 'params.temperature'"):
        get_strategy(name)(full_pool(), 5, generator=generator(), temperature=1.0)


@pytest.mark.parametrize("name", ALL)
def test_spec_is_complete(name):
    spec = get_strategy(name)
    assert spec.name == name and spec.version and spec.paper
    assert set(spec.needs) <= set(NEED_FIELDS)
    assert spec.fn.__name__ == name  # one name end to end: registry key == function name


@pytest.mark.parametrize("name", ALL)
def test_inputs_are_not_modified(name):
    pool = full_pool()
    before = {field: getattr(pool, field).clone() for field in ("probs_N_C", "mc_log_probs_N_K_C", "emb_N_D", "labelled_emb_L_D")}
    get_strategy(name)(pool, 17, generator=generator())
    for field, value in before.items():
        assert torch.equal(getattr(pool, field), value), field
