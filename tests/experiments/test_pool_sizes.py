"""`pool_sizes_at_select` predicts, from the settings alone, the pool each SELECT of the loop sees.

The runner compares strategy parameters (an EPIG target set, ...) and the query size with
these sizes before any training, so they must equal what the loop really does.
"""

from __future__ import annotations

import pytest

from experiments.config import check_against_dataset, pool_sizes_at_select
from experiments.datasets import load_dataset
from experiments.errors import ConfigError
from experiments.loop import LoopSettings, run_loop
from tests.experiments.test_loop import make_run

LAYOUTS = {
    "whole_pool": {},
    "fixed_subset": {"pool_subset": 50, "pool_subset_refresh": False},
    "refreshed_subset": {"pool_subset": 50, "pool_subset_refresh": True},
    "subset_larger_than_pool": {"pool_subset": 5000},
    "budget_shrinks_last_query": {"budget": 45, "rounds": 4},
}


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic", train_size=300, test_size=100)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_predicted_sizes_equal_the_loops(dataset, tmp_path, monkeypatch, layout):
    monkeypatch.chdir(tmp_path)
    run = make_run(dataset, tmp_path / "run", strategy="random", **LAYOUTS[layout])
    results = run_loop(run)
    observed = [(result.pool_size, len(result.selected_ids)) for result in results if result.selected_ids is not None]
    assert pool_sizes_at_select(run.loop, dataset.train_size) == observed


def test_a_query_larger_than_a_rounds_pool_is_one_line_naming_the_key():
    loop = LoopSettings(initial_size=20, query_size=30, rounds=3, pool_subset=70, pool_subset_refresh=False)
    # the fixed subset of 70 holds 70, 40, 10: the third query of 30 cannot be filled
    assert pool_sizes_at_select(loop, 300) == [(70, 30), (40, 30), (10, 30)]
    with pytest.raises(ConfigError, match=r"^loop.query_size must be <= the pool .* round 2 would query 30 from a pool of 10 "):
        check_against_dataset(loop, 300)
    check_against_dataset(LoopSettings(initial_size=20, query_size=30, rounds=2, pool_subset=70, pool_subset_refresh=False), 300)
