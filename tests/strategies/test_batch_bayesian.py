"""The batchbald and epig strategies: parameters, targets, and agreement with the float64 definitions."""

from __future__ import annotations

import pytest
import torch

from strategies import PoolView, StrategyInputError, get_strategy
from tests.kernels import references


def pool_of(mc_log_probs_N_K_C: torch.Tensor) -> PoolView:
    return PoolView(pool_ids_N=torch.arange(mc_log_probs_N_K_C.shape[0]), mc_log_probs_N_K_C=mc_log_probs_N_K_C)


def random_pool(pool_size: int, num_samples_K: int, num_classes: int, seed: int) -> PoolView:
    generator = torch.Generator().manual_seed(seed)
    return pool_of(torch.log_softmax(2 * torch.randn(pool_size, num_samples_K, num_classes, generator=generator), dim=2))


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", range(3))
def test_batchbald_picks_are_the_exact_greedy_picks_on_small_pools(seed):
    pool = random_pool(16, 5, 3, seed)
    selection = get_strategy("batchbald")(pool, 5, generator=generator())
    picks, _ = references.batchbald_exact(pool.mc_log_probs_N_K_C, 5)
    assert selection.indices_B.tolist() == picks
    torch.testing.assert_close(selection.scores_N.double(), references.bald(pool.mc_log_probs_N_K_C), atol=2e-6, rtol=1e-5)


def test_batchbald_with_sampled_configurations_keeps_the_contract_and_the_generator():
    pool = random_pool(120, 6, 10, seed=4)
    spec = get_strategy("batchbald")
    first = spec(pool, 12, generator=generator(3), num_samples=60).indices_B
    again = spec(pool, 12, generator=generator(3), num_samples=60).indices_B
    assert torch.equal(first, again) and torch.unique(first).numel() == 12


def test_batchbald_whole_pool_when_b_exceeds_n():
    pool = random_pool(9, 4, 3, seed=5)
    selection = get_strategy("batchbald")(pool, 10, generator=generator())
    assert sorted(selection.indices_B.tolist()) == list(range(9))


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "many"])
def test_batchbald_num_samples_below_one_is_a_one_line_error_naming_the_key(bad):
    with pytest.raises(StrategyInputError, match=rf"^batchbald: 'params.num_samples' must be an integer >= 1; got {bad!r}$"):
        get_strategy("batchbald")(random_pool(10, 3, 2, seed=0), 3, generator=generator(), num_samples=bad)


@pytest.mark.parametrize("bad", [0, 1.5, False])
def test_batchbald_bad_exact_limit_names_the_key(bad):
    with pytest.raises(StrategyInputError, match=r"^batchbald: 'params.max_exact_configurations' must be null or an integer >= 1; got"):
        get_strategy("batchbald")(random_pool(10, 3, 2, seed=0), 3, generator=generator(), max_exact_configurations=bad)


def test_epig_with_the_whole_pool_as_targets_is_the_float64_epig():
    pool = random_pool(40, 7, 4, seed=6)
    selection = get_strategy("epig")(pool, 5, generator=generator(), target_size=40)
    expected = references.epig(pool.mc_log_probs_N_K_C, pool.mc_log_probs_N_K_C)
    torch.testing.assert_close(selection.scores_N.double(), expected.clamp(min=0), atol=3e-6, rtol=1e-4)
    assert set(selection.indices_B.tolist()) == set(torch.topk(expected, 5).indices.tolist())


def test_epig_targets_are_drawn_with_the_generator():
    pool = random_pool(60, 5, 3, seed=7)
    spec = get_strategy("epig")
    scores = [spec(pool, 3, generator=generator(seed), target_size=4).scores_N for seed in (0, 0, 1)]
    assert torch.equal(scores[0], scores[1]) and not torch.equal(scores[0], scores[2])
    targets = torch.randperm(60, generator=generator(0))[:4]  # what the strategy draws for seed 0
    expected = references.epig(pool.mc_log_probs_N_K_C, pool.mc_log_probs_N_K_C[targets]).clamp(min=0)
    torch.testing.assert_close(scores[0].double(), expected, atol=3e-6, rtol=1e-4)


def test_epig_default_target_size_fits_small_pools():
    pool = random_pool(12, 4, 3, seed=8)
    selection = get_strategy("epig")(pool, 4, generator=generator())
    expected = references.epig(pool.mc_log_probs_N_K_C, pool.mc_log_probs_N_K_C).clamp(min=0)  # all 12 are targets
    torch.testing.assert_close(selection.scores_N.double(), expected, atol=3e-6, rtol=1e-4)


@pytest.mark.parametrize("bad", [41, 0, -1, 2.5, True])
def test_epig_target_size_outside_the_pool_is_a_one_line_error_naming_the_key(bad):
    with pytest.raises(
        StrategyInputError, match=rf"^epig: 'params.target_size' must be null or an integer in \[1, 40\] \(N: the smallest pool it is called on\); got {bad!r}$"
    ):
        get_strategy("epig")(random_pool(40, 3, 2, seed=0), 3, generator=generator(), target_size=bad)


@pytest.mark.parametrize("name", ["batchbald", "epig"])
def test_an_empty_pool_gives_an_empty_selection(name):
    pool = pool_of(torch.zeros(0, 4, 3))
    selection = get_strategy(name)(pool, 5, generator=generator())
    # the registry answers N = 0 itself: no positions, no scores (see register_strategy)
    assert selection.indices_B.shape == (0,) and selection.scores_N is None
