"""Each strategy does what its definition says, on inputs with a known answer."""

from __future__ import annotations

import pytest
import torch

from strategies import PoolView, StrategyInputError, TensorHistory, get_strategy


def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_uncertainty_strategies_pick_the_ambiguous_rows():
    probs = torch.tensor([[0.98, 0.01, 0.01], [0.34, 0.33, 0.33], [0.5, 0.49, 0.01], [0.9, 0.05, 0.05]])
    pool = PoolView(pool_ids_N=torch.arange(4), probs_N_C=probs)
    assert get_strategy("entropy")(pool, 1, generator=generator()).indices_B.tolist() == [1]
    assert get_strategy("least_confidence")(pool, 1, generator=generator()).indices_B.tolist() == [1]
    assert get_strategy("margin")(pool, 2, generator=generator()).indices_B.tolist() == [1, 2]
    assert get_strategy("ratio")(pool, 2, generator=generator()).indices_B.tolist() == [2, 1]  # 0.49/0.5 > 0.33/0.34


def test_bald_prefers_disagreement_over_agreed_uncertainty():
    uniform = torch.full((1, 4, 2), 0.5).log()  # every sample unsure, all agree: MI = 0
    split = torch.tensor([[[0.99, 0.01], [0.01, 0.99], [0.99, 0.01], [0.01, 0.99]]]).log()
    pool = PoolView(pool_ids_N=torch.arange(2), mc_log_probs_N_K_C=torch.cat([uniform, split]))
    assert get_strategy("bald")(pool, 1, generator=generator()).indices_B.tolist() == [1]


def test_coreset_covers_clusters():
    generator_ = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    emb = (centres.repeat_interleave(50, dim=0) + 0.1 * torch.randn(150, 2, generator=generator_))
    pool = PoolView(pool_ids_N=torch.arange(150), emb_N_D=emb, labelled_emb_L_D=centres[:1])
    picks = get_strategy("coreset")(pool, 2, generator=generator()).indices_B
    assert sorted((picks // 50).tolist()) == [1, 2]  # the two clusters away from the labelled one


def test_history_strategies_rank_unstable_samples_first():
    steady, flipping = torch.tensor([0.9, 0.1]), [torch.tensor([0.9, 0.1]), torch.tensor([0.1, 0.9])]
    hist = torch.stack([torch.stack([steady, flipping[t % 2]]) for t in range(5)])
    pool = PoolView(pool_ids_N=torch.arange(2), history=TensorHistory(hist))
    for name in ("tod", "flip_rate"):
        assert get_strategy(name)(pool, 1, generator=generator()).indices_B.tolist() == [1], name


def test_flip_rate_rejects_a_non_positive_prior():
    pool = PoolView(pool_ids_N=torch.arange(2), history=TensorHistory(torch.full((2, 2, 2), 0.5)))
    with pytest.raises(StrategyInputError, match=r"^flip_rate: 'prior_a' must be a number > 0 \(Beta prior\); got 0"):
        get_strategy("flip_rate")(pool, 1, generator=generator(), prior_a=0)


def test_history_must_be_aligned_to_the_pool():
    pool = PoolView(pool_ids_N=torch.arange(3), history=TensorHistory(torch.full((2, 5, 2), 0.5)))
    with pytest.raises(StrategyInputError, match=r"^tod: 'history' must be aligned to the pool \(N=3\); got N=5"):
        get_strategy("tod")(pool, 1, generator=generator())


def test_random_is_uniform():
    pool = PoolView(pool_ids_N=torch.arange(10))
    counts = torch.zeros(10)
    shared = torch.Generator().manual_seed(1)
    for _ in range(2000):
        counts[get_strategy("random")(pool, 3, generator=shared).indices_B] += 1
    expected = 2000 * 3 / 10
    assert ((counts - expected).abs() < 0.15 * expected).all(), counts
