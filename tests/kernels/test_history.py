"""History kernels: one streaming pass against float64 references over the dense [T, N, C] tensor."""

from __future__ import annotations

import math

import torch

from kernels.history import HistoryStatistics, flip_rate, temporal_output_discrepancy
from tests.conftest import random_probs
from tests.kernels.references import history_scores


def stream(hist_T_N_C: torch.Tensor, observed_T_N: torch.Tensor, chunk_size: int) -> HistoryStatistics:
    num_rounds, pool_size, num_classes = hist_T_N_C.shape
    stats = HistoryStatistics.empty(pool_size, num_classes)
    for t in range(num_rounds):
        for start in range(0, pool_size, chunk_size):
            stop = min(start + chunk_size, pool_size)
            stats.update(start, hist_T_N_C[t, start:stop], observed_T_N[t, start:stop])
    return stats


def test_streaming_matches_reference_with_random_masks():
    generator = torch.Generator().manual_seed(0)
    num_rounds, pool_size, num_classes = 6, 400, 5
    hist = torch.stack([random_probs(pool_size, num_classes, seed=t) for t in range(num_rounds)]).half()
    observed = torch.rand(num_rounds, pool_size, generator=generator) < 0.6
    stats = stream(hist, observed, chunk_size=37)
    expected_tod, expected_flips = history_scores(hist, observed, prior_a=0.5, prior_b=2.0)
    torch.testing.assert_close(temporal_output_discrepancy(stats).double(), expected_tod, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(flip_rate(stats, 0.5, 2.0).double(), expected_flips, atol=1e-5, rtol=1e-4)
    assert (stats.n_observed_N == observed.sum(dim=0)).all()


def test_hand_made_series():
    # sample 0 flips every round; sample 1 never flips; sample 2 seen once; sample 3 never seen
    a, b = torch.tensor([0.9, 0.1]), torch.tensor([0.2, 0.8])
    hist = torch.stack([
        torch.stack([a, a, a, a]),
        torch.stack([b, a, b, a]),
        torch.stack([a, a, a, a]),
    ])  # [T=3, N=4, C=2]
    observed = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    stats = stream(hist, observed, chunk_size=4)
    # sample 0: labels 0,1,0 -> 2 changes over 2 transitions: (2+1)/(2+2)
    # sample 1: labels 0,0,0 -> (0+1)/(2+2)
    entropy_a = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    torch.testing.assert_close(flip_rate(stats), torch.tensor([0.75, 0.25, entropy_a, 1.0]))
    # TOD between the last two observed rounds: sample 0 went b -> a
    torch.testing.assert_close(temporal_output_discrepancy(stats), torch.tensor([0.5 * 2 * 0.7**2, 0.0, entropy_a, 1.0]))


def test_scores_are_never_nan_even_for_empty_history():
    stats = HistoryStatistics.empty(5, 3)
    assert torch.isfinite(temporal_output_discrepancy(stats)).all()
    assert torch.isfinite(flip_rate(stats)).all()


# ---- the whole family: every score against its per-sample float64 reference ------------------

import pytest  # noqa: E402

from kernels.history import FIELDS_BY_SCORE, SCORES, HistoryInputError  # noqa: E402
from tests.kernels.references import history_strategy_scores  # noqa: E402

PARAMS = {
    "tod": {},
    "tod_cumulative": {},
    "flip_rate": {"prior_a": 0.5, "prior_b": 2.0},
    "temporal_variation_ratio": {},
    "temporal_bald": {},
    "teacher_student_kl": {"tau": 0.7},
    "cartography_variability": {},
    "ema_uncertainty": {"lam": 0.5},
    "uncertainty_trend": {"gamma": 2.0},
}
STATE_PARAMS = {"decay": 0.7, "window": 3}  # ema_decay and trend_window of the state


def stream_all(hist, observed, chunk_size, keep=None):
    num_rounds, pool_size, num_classes = hist.shape
    dtype = torch.float16 if hist.dtype == torch.float16 else torch.float32
    stats = HistoryStatistics.empty(pool_size, num_classes, keep=keep, ema_decay=0.7, trend_window=3, probs_dtype=dtype)
    for t in range(num_rounds):
        for start in range(0, pool_size, chunk_size):
            stop = min(start + chunk_size, pool_size)
            stats.update(start, hist[t, start:stop], None if observed is None else observed[t, start:stop], round_index=t)
    return stats


def reference(name, hist, observed):
    params = dict(PARAMS[name])
    if name in ("ema_uncertainty", "uncertainty_trend"):
        params["decay"] = STATE_PARAMS["decay"]
    window = STATE_PARAMS["window"] if name == "uncertainty_trend" else None
    return history_strategy_scores(name, hist, observed, window=window, **params)


@pytest.mark.parametrize("name", sorted(SCORES))
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_every_score_matches_its_reference_with_random_masks(name, dtype):
    generator = torch.Generator().manual_seed(1)
    num_rounds, pool_size, num_classes = 7, 300, 4
    hist = torch.stack([random_probs(pool_size, num_classes, seed=t, sharpness=1.5) for t in range(num_rounds)]).to(dtype)
    observed = torch.rand(num_rounds, pool_size, generator=generator) < 0.6
    expected = reference(name, hist, observed)
    for chunk_size, keep in ((29, None), (pool_size, FIELDS_BY_SCORE[name])):
        stats = stream_all(hist, observed, chunk_size, keep)
        scores = SCORES[name](stats, **PARAMS[name])
        assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
        torch.testing.assert_close(scores.double(), expected, atol=2e-5, rtol=1e-4)
    assert ((observed.sum(0) < 2).any() and (observed.sum(0) >= 2).any())  # both branches exercised


@pytest.mark.parametrize("name", sorted(SCORES))
def test_fully_observed_fast_path_equals_the_masked_path(name):
    hist = torch.stack([random_probs(200, 5, seed=40 + t) for t in range(4)]).half()
    all_true = torch.ones(4, 200, dtype=torch.bool)
    fast = SCORES[name](stream_all(hist, None, 64), **PARAMS[name])
    # a mask with one unobserved row forces the gather/scatter path for the rest
    masked = all_true.clone()
    masked[2, 0] = False
    slow = SCORES[name](stream_all(hist, masked, 64), **PARAMS[name])
    torch.testing.assert_close(fast[1:], slow[1:], atol=0, rtol=0)
    torch.testing.assert_close(fast.double(), reference(name, hist, all_true), atol=2e-5, rtol=1e-4)


def test_hand_made_family_values():
    a, b = torch.tensor([0.9, 0.1]), torch.tensor([0.2, 0.8])
    # sample 0: a, b, a  (flips twice); sample 1: a, a, a (steady)
    hist = torch.stack([torch.stack([a, a]), torch.stack([b, a]), torch.stack([a, a])])
    stats = stream_all(hist, None, 2)
    # label dispersion: sample 0 votes (2, 1) -> 1 - 2/3; sample 1 -> 0
    torch.testing.assert_close(SCORES["temporal_variation_ratio"](stats), torch.tensor([1 / 3, 0.0]))
    # both pairs differ by 0.7 per class: ½ * 2 * 0.49 each
    torch.testing.assert_close(SCORES["tod_cumulative"](stats), torch.tensor([0.49, 0.0]))
    # cartography on the latest label (class 0): values 0.9, 0.2, 0.9, population std
    std = math.sqrt(((0.9 - 2 / 3) ** 2 * 2 + (0.2 - 2 / 3) ** 2) / 3)
    torch.testing.assert_close(SCORES["cartography_variability"](stats), torch.tensor([std, 0.0]))
    # a steady sample has no disagreement between its past models
    assert abs(float(SCORES["temporal_bald"](stats)[1])) < 1e-6
    assert float(SCORES["temporal_bald"](stats)[0]) > 0.1
    # rising entropy is a positive trend; constant entropy is none
    rising = torch.stack([torch.tensor([[0.99, 0.01]]), torch.tensor([[0.8, 0.2]]), torch.tensor([[0.5, 0.5]])])
    trend_stats = stream_all(rising, None, 1)
    ema_only = SCORES["uncertainty_trend"](trend_stats, gamma=0.0)
    assert float(SCORES["uncertainty_trend"](trend_stats, gamma=1.0)) > float(ema_only) + 0.1


def test_update_rejects_bad_history_values():
    stats = HistoryStatistics.empty(3, 2)
    with pytest.raises(HistoryInputError, match=r"^probabilities must be finite"):
        stats.update(0, torch.tensor([[0.5, 0.5], [float("nan"), 0.5], [0.1, 0.9]]))
    with pytest.raises(HistoryInputError, match=r"^probabilities must sum to 1 over classes; a row deviates by 0.5"):
        stats.update(0, torch.tensor([[0.5, 0.5], [0.5, 1.0], [0.1, 0.9]]))
    with pytest.raises(HistoryInputError, match=r"^rounds must agree on C=2 classes; got a round of shape \(3, 3\)"):
        stats.update(0, torch.full((3, 3), 1 / 3))
    with pytest.raises(HistoryInputError, match=r"^must have C >= 2 classes; got C=1"):
        HistoryStatistics.empty(3, 1)
    # unobserved rows may hold anything
    stats.update(0, torch.tensor([[0.5, 0.5], [float("nan"), 7.0], [0.1, 0.9]]), torch.tensor([True, False, True]))
    assert stats.n_observed_N.tolist() == [1.0, 0.0, 1.0]


def test_state_dict_round_trip_continues_identically():
    hist = torch.stack([random_probs(50, 3, seed=t) for t in range(5)]).half()
    full = stream_all(hist, None, 50)
    half = stream_all(hist[:3], None, 50)
    restored = HistoryStatistics.from_state_dict(half.state_dict())
    for t in range(3, 5):
        restored.update(0, hist[t], round_index=t)
    for name in SCORES:
        torch.testing.assert_close(SCORES[name](restored), SCORES[name](full), atol=0, rtol=0)
    assert all(isinstance(v, torch.Tensor) for v in half.state_dict().values())


def test_a_state_keeps_only_what_its_score_reads():
    stats = HistoryStatistics.empty(10, 3, keep=FIELDS_BY_SCORE["tod"])
    assert stats.kept == {"prev_probs_N_C"} and stats.probs_sum_N_C is None
    with pytest.raises(ValueError, match="does not keep"):
        SCORES["temporal_bald"](stats)


def test_fallback_is_computed_only_for_samples_seen_fewer_than_twice(monkeypatch):
    import kernels.history as module

    seen_rows = []
    real = module.normalised_entropy
    monkeypatch.setattr(module, "normalised_entropy", lambda p: seen_rows.append(p.shape[0]) or real(p))
    hist = torch.stack([random_probs(100, 4, seed=t) for t in range(3)])
    observed = torch.ones(3, 100, dtype=torch.bool)
    observed[:2, :5] = False  # 5 samples seen once
    SCORES["tod"](stream_all(hist, observed, 100))
    assert seen_rows == [5]
    seen_rows.clear()
    SCORES["tod"](stream_all(hist, None, 100))
    assert seen_rows == []
