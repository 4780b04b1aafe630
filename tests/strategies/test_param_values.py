"""Parameter values are checked by one checker per strategy, the same one the runner calls before training."""

from __future__ import annotations

import pytest
import torch

from strategies import get_strategy
from strategies.errors import StrategyInputError
from strategies.pool_view import PoolView

# strategy -> (bad params, texts the one-line message must contain)
BAD_VALUES = {
    "probcover": ({"delta": 0.0}, ["strategy.params.delta", "> 0 or 'auto'", "got 0.0"]),
    "batchbald": ({"num_samples": 0}, ["strategy.params.num_samples", ">= 1", "got 0"]),
    "power_bald": ({"beta": -0.5}, ["strategy.params.beta", ">= 0", "-0.5"]),
    "power_entropy": ({"beta": float("nan")}, ["strategy.params.beta", "finite"]),
    "softmax_bald": ({"beta": -1}, ["strategy.params.beta", ">= 0"]),
    "kmeans": ({"init": "farthest"}, ["strategy.params.init", "kmeans++, random", "'farthest'"]),
    "typiclust": ({"knn": 0}, ["strategy.params.knn", ">= 1"]),
    "cluster_margin": ({"candidate_multiple": 0.5}, ["strategy.params.candidate_multiple", ">= 1"]),
    "teacher_student_kl": ({"tau": 0}, ["strategy.params.tau", "> 0"]),
    "ema_uncertainty": ({"decay": 1.0}, ["strategy.params.decay", "(0, 1)"]),
    "uncertainty_trend": ({"window": 1}, ["strategy.params.window", ">= 2"]),
}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_a_bad_value_is_one_line_naming_the_config_key(name):
    params, texts = BAD_VALUES[name]
    with pytest.raises(StrategyInputError) as error:
        get_strategy(name).check_param_values(params)
    message = str(error.value)
    assert "\n" not in message
    for text in texts:
        assert text in message, (text, message)


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_the_defaults_pass(name):
    get_strategy(name).check_param_values({}, pool_size=1000)


def test_a_target_set_larger_than_the_smallest_pool_is_refused_only_when_the_pool_is_known():
    spec = get_strategy("epig")
    spec.check_param_values({"target_size": 500})  # pool unknown: nothing to compare with
    spec.check_param_values({"target_size": 500}, pool_size=500)
    with pytest.raises(StrategyInputError, match=r"'strategy.params.target_size' must be null or an integer in \[1, 499\]"):
        spec.check_param_values({"target_size": 500}, pool_size=499)


def test_the_call_checks_with_its_own_pool_and_key_prefix():
    generator = torch.Generator().manual_seed(0)
    mc_log_probs = torch.log_softmax(torch.randn(6, 3, 4, generator=generator), dim=-1)
    pool = PoolView(pool_ids_N=torch.arange(6), mc_log_probs_N_K_C=mc_log_probs)
    with pytest.raises(StrategyInputError, match=r"epig: 'params.target_size' .* \[1, 6\]"):
        get_strategy("epig")(pool, 2, generator=generator, target_size=7)
    with pytest.raises(StrategyInputError, match="'params.beta'"):
        get_strategy("power_bald")(pool, 2, generator=generator, beta=-2.0)
    assert get_strategy("epig")(pool, 2, generator=generator, target_size=6).indices_B.shape == (2,)


def test_an_empty_pool_does_not_compare_values_with_n():
    pool = PoolView(pool_ids_N=torch.empty(0, dtype=torch.int64), mc_log_probs_N_K_C=torch.empty(0, 3, 4))
    selection = get_strategy("epig")(pool, 2, generator=torch.Generator(), target_size=5)
    assert selection.indices_B.numel() == 0


def test_unknown_names_are_still_refused_first():
    with pytest.raises(StrategyInputError, match="unknown parameter 'strategy.params.dleta'"):
        get_strategy("probcover").check_param_values({"dleta": -1})


def test_a_numeric_delta_passes_the_config_type_check():
    # the default 'auto' is a string, yet probcover takes a number too: its own checker decides
    from experiments.config import parse_strategy

    spec, params = parse_strategy({"name": "probcover", "params": {"delta": 0.3}})
    assert params == {"delta": 0.3}
    with pytest.raises(StrategyInputError, match="'strategy.params.delta' must be a number > 0 or 'auto'; got 'tiny'"):
        spec.check_param_values({"delta": "tiny"})
