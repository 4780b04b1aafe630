"""History strategies through the public call: parameters fail at once with one line naming the key,
malformed histories are named, ``window`` keeps each sample's last W observations, and results match
the float64 references."""

from __future__ import annotations

import pytest
import torch

from strategies import PoolView, StrategyInputError, TensorHistory, get_strategy
from strategies.history import HISTORY_STRATEGIES
from tests.conftest import random_probs
from tests.kernels.references import history_strategy_scores


def pool_with_history(num_rounds=5, pool_size=120, num_classes=4, seed=0, mask=True):
    generator = torch.Generator().manual_seed(seed)
    hist = torch.stack([random_probs(pool_size, num_classes, seed=seed + t, sharpness=1.2) for t in range(num_rounds)])
    observed = torch.rand(num_rounds, pool_size, generator=generator) < 0.7 if mask else None
    return PoolView(pool_ids_N=torch.arange(pool_size), history=TensorHistory(hist.half(), observed)), hist.half(), observed


def call(name, pool, **params):
    return get_strategy(name)(pool, 7, generator=torch.Generator().manual_seed(0), **params)


BAD_PARAMS = [
    ("teacher_student_kl", {"tau": 0}, r"'params.tau' must be a number > 0 \(temperature\); got 0"),
    ("teacher_student_kl", {"tau": -1.5}, r"'params.tau' must be a number > 0 \(temperature\); got -1.5"),
    ("ema_uncertainty", {"decay": 1.0}, r"'params.decay' must be in \(0, 1\) \(EMA decay\); got 1.0"),
    ("ema_uncertainty", {"decay": 0}, r"'params.decay' must be in \(0, 1\) \(EMA decay\); got 0"),
    ("uncertainty_trend", {"decay": 1.5}, r"'params.decay' must be in \(0, 1\)"),
    ("ema_uncertainty", {"lam": -1}, r"'params.lam' must be a number >= 0; got -1"),
    ("uncertainty_trend", {"window": 1}, r"'params.window' must be an integer >= 2 \(rounds per sample\); got 1"),
    ("uncertainty_trend", {"window": None}, r"'params.window' must be an integer >= 2"),
    ("uncertainty_trend", {"gamma": float("nan")}, r"'params.gamma' must be a finite number; got nan"),
    ("temporal_bald", {"window": 1}, r"'params.window' must be None or an integer >= 2 \(rounds per sample\); got 1"),
    ("tod_cumulative", {"window": 2.5}, r"'params.window' must be None or an integer >= 2"),
    ("flip_rate", {"prior_b": -1}, r"'params.prior_b' must be a number > 0 \(Beta prior\); got -1"),
]


@pytest.mark.parametrize("name, params, message", BAD_PARAMS)
def test_bad_parameters_fail_with_one_line_naming_the_key(name, params, message):
    pool, _, _ = pool_with_history()
    with pytest.raises(StrategyInputError, match=rf"^{name}: {message}") as raised:
        call(name, pool, **params)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", HISTORY_STRATEGIES)
def test_a_history_with_one_class_is_rejected(name):
    with pytest.raises(StrategyInputError, match=r"^history: 'hist_T_N_C' must have C >= 2 classes; got shape \(2, 3, 1\)"):
        TensorHistory(torch.ones(2, 3, 1))

    class OneClass:  # a third-party view
        num_rounds, num_classes, pool_size = 2, 1, 3

        def iter_chunks(self, chunk_size=1, first_round=0):
            return iter(())

    with pytest.raises(StrategyInputError, match=rf"^{name}: 'history' must have C >= 2 classes; got C=1"):
        call(name, PoolView(pool_ids_N=torch.arange(3), history=OneClass()))


def test_a_mask_of_the_wrong_shape_is_rejected():
    with pytest.raises(StrategyInputError, match=r"^history: 'observed_T_N' must have shape \(2, 3\) \(T, N\); got \(3, 2\)"):
        TensorHistory(torch.full((2, 3, 2), 0.5), torch.ones(3, 2, dtype=torch.bool))


@pytest.mark.parametrize("name", HISTORY_STRATEGIES)
def test_non_finite_or_unnormalised_history_values_are_named(name):
    hist = torch.stack([random_probs(10, 3, seed=t) for t in range(3)])
    bad = hist.clone()
    bad[1, 4, 0] = float("nan")
    with pytest.raises(StrategyInputError, match=rf"^{name}: 'history' probabilities must be finite"):
        call(name, PoolView(pool_ids_N=torch.arange(10), history=TensorHistory(bad)))
    bad = hist.clone()
    bad[2, 7] *= 1.5
    with pytest.raises(StrategyInputError, match=rf"^{name}: 'history' probabilities must sum to 1 over classes"):
        call(name, PoolView(pool_ids_N=torch.arange(10), history=TensorHistory(bad)))


@pytest.mark.parametrize("name", HISTORY_STRATEGIES)
def test_scores_match_the_reference_and_are_never_nan(name):
    pool, hist, observed = pool_with_history(seed=3)
    selection = call(name, pool)
    assert torch.isfinite(selection.scores_N).all()
    window = 5 if name == "uncertainty_trend" else None
    expected = history_strategy_scores(name, hist, observed, window=window)
    torch.testing.assert_close(selection.scores_N.double(), expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["tod_cumulative", "temporal_variation_ratio", "temporal_bald", "teacher_student_kl", "cartography_variability"])
def test_window_keeps_each_samples_last_observations(name):
    pool, hist, observed = pool_with_history(num_rounds=7, seed=5)
    windowed = call(name, pool, window=3).scores_N
    torch.testing.assert_close(windowed.double(), history_strategy_scores(name, hist, observed, window=3), atol=2e-5, rtol=1e-4)
    assert not torch.allclose(windowed, call(name, pool).scores_N)


def test_uncertainty_trend_window_is_the_slope_window():
    pool, hist, observed = pool_with_history(num_rounds=8, seed=6)
    for window in (2, 4, 8):
        scores = call("uncertainty_trend", pool, window=window, gamma=2.0, decay=0.5).scores_N
        expected = history_strategy_scores("uncertainty_trend", hist, observed, window=window, gamma=2.0, decay=0.5)
        torch.testing.assert_close(scores.double(), expected, atol=2e-5, rtol=1e-4)


def test_a_sample_never_observed_gets_the_maximal_fallback():
    pool, _, _ = pool_with_history(mask=False)
    observed = torch.ones(5, 120, dtype=torch.bool)
    observed[:, 3] = False
    pool = PoolView(pool_ids_N=pool.pool_ids_N, history=TensorHistory(pool.history.hist_T_N_C, observed))
    for name in HISTORY_STRATEGIES:
        assert float(call(name, pool).scores_N[3]) == 1.0


def test_config_errors_name_the_config_key():
    from strategies.history import history_state_spec

    with pytest.raises(StrategyInputError, match=r"^ema_uncertainty: 'strategy.params.decay' must be in \(0, 1\) \(EMA decay\); got 1.2$"):
        history_state_spec("ema_uncertainty", {"decay": 1.2}, key_prefix="strategy.params.")
    assert history_state_spec("entropy", {}) is None
    spec = history_state_spec("uncertainty_trend", {"window": 4, "decay": 0.5})
    assert spec.incremental and spec.trend_window == 4 and spec.ema_decay == 0.5
    assert not history_state_spec("temporal_bald", {"window": 3}).incremental
