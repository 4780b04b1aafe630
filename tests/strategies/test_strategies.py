"""Each strategy does what its definition says, on inputs with a known answer."""

from __future__ import annotations

import pytest
import torch

from strategies import PoolView, StrategyInputError, TensorHistory, get_strategy
from tests.kernels import references


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
    with pytest.raises(StrategyInputError, match=r"^flip_rate: 'params.prior_a' must be a number > 0 \(Beta prior\); got 0"):
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


def mc_pool(mc_log_probs: torch.Tensor) -> PoolView:
    return PoolView(pool_ids_N=torch.arange(mc_log_probs.shape[0]), mc_log_probs_N_K_C=mc_log_probs)


def test_mean_std_and_variation_ratio_prefer_disagreement():
    agree = torch.tensor([[0.6, 0.4]]).expand(4, 2)
    split = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.2, 0.8]])
    pool = mc_pool(torch.stack([agree, split, agree]).log())
    for name in ("mean_std", "variation_ratio"):
        assert get_strategy(name)(pool, 1, generator=generator()).indices_B.tolist() == [1], name


@pytest.mark.parametrize("name", ["power_bald", "power_entropy", "softmax_bald"])
@pytest.mark.parametrize("beta", [-1.0, float("nan"), float("inf"), "2", True])
def test_stochastic_acquisition_rejects_a_bad_beta(name, beta):
    pool = mc_pool(torch.log_softmax(torch.randn(10, 4, 3), dim=2))
    with pytest.raises(StrategyInputError, match=rf"^{name}: 'params.beta' must be a finite number >= 0 \(0 = uniform sampling\); got"):
        get_strategy(name)(pool, 2, generator=generator(), beta=beta)


@pytest.mark.parametrize("name", ["power_bald", "power_entropy", "softmax_bald"])
def test_stochastic_acquisition_at_beta_zero_is_uniform(name):
    # rows 0-1 have zero BALD and zero entropy (all samples one-hot on class 0): score^0 must still be 1
    one_hot = torch.tensor([[1.0, 0.0]]).expand(4, 2).clamp(min=1e-30).log()
    mixed = torch.log_softmax(torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(0)), dim=2)
    pool = mc_pool(torch.cat([one_hot.unsqueeze(0).expand(2, 4, 2), mixed]))
    counts = torch.zeros(4)
    shared = torch.Generator().manual_seed(3)
    for _ in range(2000):
        counts[get_strategy(name)(pool, 1, generator=shared, beta=0.0).indices_B] += 1
    torch.testing.assert_close(counts / 2000, torch.full((4,), 0.25), atol=0.035, rtol=0)


@pytest.mark.parametrize("name", ["power_bald", "softmax_bald"])
def test_stochastic_bald_follows_the_score_weights(name):
    # P(first pick = i) ∝ score_i^β (power) or exp(β score_i) (softmax)
    mc_log_probs = torch.log_softmax(2 * torch.randn(6, 8, 3, generator=torch.Generator().manual_seed(1)), dim=2)
    pool = mc_pool(mc_log_probs)
    scores = references.bald(mc_log_probs).clamp(min=0)
    beta = 2.0
    weights = scores**beta if name == "power_bald" else torch.exp(beta * scores)
    counts = torch.zeros(6, dtype=torch.float64)
    shared = torch.Generator().manual_seed(5)
    for _ in range(4000):
        counts[get_strategy(name)(pool, 1, generator=shared, beta=beta).indices_B] += 1
    torch.testing.assert_close(counts / 4000, weights / weights.sum(), atol=0.03, rtol=0)


def test_power_sampling_with_large_beta_becomes_top_b():
    mc_log_probs = torch.log_softmax(2 * torch.randn(40, 8, 3, generator=torch.Generator().manual_seed(2)), dim=2)
    pool = mc_pool(mc_log_probs)
    sampled = get_strategy("power_bald")(pool, 5, generator=generator(), beta=500.0).indices_B
    assert set(sampled.tolist()) == set(get_strategy("bald")(pool, 5, generator=generator()).indices_B.tolist())
