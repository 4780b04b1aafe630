"""The contract checks fail on deliberately broken strategies: none of them passes by construction."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import strategies.pool_view as pool_view
import strategies.registry as registry
from kernels.kcenter import min_squared_distances
from strategies import Selection, get_strategy, register_strategy
from tests.strategies.conftest import full_pool, labelled_ids
from tests.strategies.test_contract import check_malformed, check_selection


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_never_labelled_check_catches_a_strategy_that_picks_labelled_samples(scratch_registry):
    @register_strategy(name="broken_picks_labelled", version="0", needs=("emb", "labelled_emb"), paper="test")
    def broken_picks_labelled(pool, query_size, *, generator):  # noqa: ARG001
        # treats the labelled set as candidates: takes the pool rows nearest to it
        return Selection(torch.topk(-min_squared_distances(pool.emb_N_D, pool.labelled_emb_L_D), query_size).indices)

    pool, labelled = full_pool(), labelled_ids()
    # the pool may hold samples the labelled set also has (a stale pool, a duplicated id)
    stale = dataclasses.replace(
        pool,
        pool_ids_N=torch.cat([labelled[:3], pool.pool_ids_N[3:]]),
        emb_N_D=torch.cat([pool.labelled_emb_L_D[:3], pool.emb_N_D[3:]]),
    )
    with pytest.raises(AssertionError, match="selected a labelled sample"):
        check_selection(stale, broken_picks_labelled(stale, 3, generator=torch.Generator()), labelled, 3)
    # a correct strategy on the same pool is not flagged just for the pool's content
    check_selection(stale, get_strategy("random")(stale, 3, generator=torch.Generator().manual_seed(2)), labelled[3:], 3)


def test_finite_scores_check_catches_infinite_scores_at_l_zero(scratch_registry):
    @register_strategy(name="broken_inf_scores", version="0", needs=("emb", "labelled_emb"), paper="test")
    def broken_inf_scores(pool, query_size, *, generator):  # noqa: ARG001
        # coreset 1.0's scores: distance to an empty labelled set is +inf everywhere
        scores = min_squared_distances(pool.emb_N_D, pool.labelled_emb_L_D)
        return Selection(torch.arange(min(query_size, pool.size)), scores)

    with_labels = full_pool(labelled_size=10)
    check_selection(with_labels, broken_inf_scores(with_labels, 5, generator=torch.Generator()), labelled_ids(), 5)
    without = full_pool(labelled_size=0)
    with pytest.raises(AssertionError, match="non-finite scores"):
        check_selection(without, broken_inf_scores(without, 5, generator=torch.Generator()), labelled_ids(labelled_size=0), 5)


def test_malformed_check_covers_history_strategies(monkeypatch):
    check_malformed(get_strategy("tod"))
    # without the history validation the same check fails: it does exercise history inputs
    monkeypatch.setattr(pool_view, "validate_history", lambda *args: None)
    monkeypatch.setattr(registry, "validate_pool", pool_view.validate_pool)
    with pytest.raises(BaseException):  # noqa: B017 - pytest.fail or the strategy's own crash
        check_malformed(get_strategy("tod"))
