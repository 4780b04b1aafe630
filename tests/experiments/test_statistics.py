"""experiments.statistics on synthetic curves whose answers are computed by hand (in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.statistics import (
    aulc,
    bootstrap_mean_ci,
    critical_difference,
    holm,
    normalised_aulc,
    normalised_aulc_table,
    paired_difference,
    paired_t_pvalues,
    penalty_matrix,
    seeds_needed,
)


def test_aulc_is_the_trapezoid_area_over_the_label_range():
    # (10 * (0.5 + 0.7) / 2 + 10 * (0.7 + 0.9) / 2) / 20 = (6 + 8) / 20
    assert aulc([0, 10, 20], [0.5, 0.7, 0.9]) == pytest.approx(0.7)


def test_normalised_aulc_puts_random_at_0_and_the_best_at_1():
    assert normalised_aulc(0.8, aulc_random=0.7, aulc_max=0.9) == pytest.approx(0.5)
    table = normalised_aulc_table({"random": 0.70, "entropy": 0.74, "margin": 0.78, "coreset": 0.66})
    assert table == pytest.approx({"random": 0.0, "entropy": 0.5, "margin": 1.0, "coreset": -0.5})
    # nothing beats random: no scale
    assert math.isnan(normalised_aulc(0.7, aulc_random=0.7, aulc_max=0.7))
    assert all(math.isnan(v) for v in normalised_aulc_table({"entropy": 0.7}).values())


def test_bootstrap_ci_of_two_seeds_spans_both():
    # resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4:
    # the 2.5% and 97.5% percentiles are 0 and 1
    interval = bootstrap_mean_ci([0.0, 1.0])
    assert (interval.estimate, interval.low, interval.high) == (0.5, 0.0, 1.0)
    assert bootstrap_mean_ci([0.3, 0.3, 0.3]) == bootstrap_mean_ci([0.3, 0.3, 0.3, 0.3])
    assert bootstrap_mean_ci([0.3, 0.3, 0.3]).low == 0.3
    one = bootstrap_mean_ci([0.7])
    assert one.estimate == 0.7 and math.isnan(one.low) and math.isnan(one.high)


def test_bootstrap_ci_is_reproducible_and_contains_the_mean():
    values = np.random.default_rng(3).normal(0.8, 0.01, size=6)
    first, second = bootstrap_mean_ci(values), bootstrap_mean_ci(values)
    assert first == second
    assert first.low < values.mean() < first.high


def test_paired_t_pvalue_matches_the_closed_form_for_two_degrees_of_freedom():
    # d = [1, 2, 3]: mean 2, sd 1, t = 2 * sqrt(3); with df = 2 the t-distribution has
    # P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2, so p = 1 - sqrt(12 / 14)
    assert paired_t_pvalues(np.array([1.0, 2.0, 3.0]))[0] == pytest.approx(1 - math.sqrt(12 / 14))
    # columns are independent tests; no spread: p = 0 for a non-zero mean, 1 for zero
    p = paired_t_pvalues(np.array([[1.0, 0.5, 0.0], [2.0, 0.5, 0.0], [3.0, 0.5, 0.0]]))
    assert p == pytest.approx([1 - math.sqrt(12 / 14), 0.0, 1.0])
    assert math.isnan(paired_t_pvalues(np.array([[1.0]]))[0])


def test_paired_difference_pairs_by_seed():
    # per seed the strategy is 0.01, 0.02, 0.03 above random although the seeds differ by far more
    random = np.array([0.60, 0.80, 0.70])
    strategy = random + np.array([0.01, 0.02, 0.03])
    difference = paired_difference(strategy, random)
    assert difference.seeds == 3
    assert difference.mean == pytest.approx(0.02)
    assert difference.p_value == pytest.approx(1 - math.sqrt(12 / 14))
    assert difference.std == pytest.approx(0.01)
    assert difference.low == pytest.approx(0.01) and difference.high == pytest.approx(0.03)
    with pytest.raises(ValueError, match="one value per shared seed"):
        paired_difference([0.1, 0.2], [0.1])


def test_seeds_needed_matches_the_power_tables():
    # two-sided paired t-test, alpha 0.05, power 0.8 (Cohen 1988): d = 1 -> 10, d = 0.5 -> 34, d = 2 -> 5
    assert seeds_needed(0.005, delta=0.005) == 10
    assert seeds_needed(0.010, delta=0.005) == 34
    assert seeds_needed(0.0025, delta=0.005) == 5
    assert seeds_needed(0.0, delta=0.005) == 2
    assert math.isnan(seeds_needed(float("nan")))
    assert seeds_needed(1.0, delta=0.005, max_seeds=100) == math.inf


def _curves(base_S_T: np.ndarray, offsets_S_T) -> np.ndarray:
    return base_S_T + np.asarray(offsets_S_T, dtype=np.float64)


def test_penalty_matrix_known_winner_tie_and_partial_win():
    rng = np.random.default_rng(0)
    base_S_T = rng.uniform(0.5, 0.9, size=(3, 4))  # 3 seeds x 4 rounds; large spread between seeds
    consistent = np.array([[0.010], [0.011], [0.012]])  # t = 0.011 / (0.001 / sqrt 3) = 19.1 -> p < 0.01
    noisy = np.array([[0.01], [-0.02], [0.01]])  # mean 0: never significant
    setting = {
        "random": base_S_T,
        "winner": _curves(base_S_T, np.repeat(consistent, 4, axis=1)),  # beats random in all 4 rounds
        "tie": _curves(base_S_T, np.repeat(noisy, 4, axis=1)),
        # beats random in rounds 0 and 1 only
        "half": _curves(base_S_T, np.concatenate([np.repeat(consistent, 2, axis=1), np.repeat(noisy, 2, axis=1)], axis=1)),
    }
    names, penalty = penalty_matrix([setting])
    assert names == ["half", "random", "tie", "winner"]
    at = {name: i for i, name in enumerate(names)}
    assert penalty[at["winner"], at["random"]] == pytest.approx(1.0)
    assert penalty[at["random"], at["winner"]] == 0.0
    assert penalty[at["tie"], at["random"]] == 0.0 and penalty[at["random"], at["tie"]] == 0.0
    assert penalty[at["half"], at["random"]] == pytest.approx(0.5)
    # winner - half = 0 in rounds 0-1 (no spread, zero mean), consistent - noisy in rounds 2-3:
    # d = [0, 0.031, 0.002], p = 0.41 -> no win
    assert penalty[at["winner"], at["half"]] == 0.0
    # summed over settings: the same setting twice doubles every entry
    _, twice = penalty_matrix([setting, setting])
    np.testing.assert_allclose(twice, 2 * penalty)
    assert np.all(np.diag(penalty) == 0)


def test_penalty_matrix_rejects_curves_not_aligned_by_seed():
    with pytest.raises(ValueError, match="seed-aligned"):
        penalty_matrix([{"a": np.zeros((3, 4)), "b": np.zeros((2, 4))}])


def test_holm_adjustment_by_hand():
    # sorted: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> monotone 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_critical_difference_ranks_friedman_and_nemenyi_by_hand():
    # 5 blocks, a > b > c in each: average ranks 1, 2, 3; rank sums 5, 10, 15;
    # chi2 = 12 / (N k (k+1)) * sum R^2 - 3 N (k+1) = 12 / 60 * 350 - 60 = 10, df 2 -> p = exp(-5)
    scores_P_M = np.array([[3.0, 2.0, 1.0]]) + np.arange(5)[:, None] * 0.1
    result = critical_difference(scores_P_M, ["a", "b", "c"])
    np.testing.assert_allclose(result.average_ranks, [1.0, 2.0, 3.0])
    assert result.friedman_p == pytest.approx(math.exp(-5))
    # Nemenyi: q_0.05(k=3) = 2.343, CD = 2.343 * sqrt(3 * 4 / (6 * 5))
    assert result.nemenyi_cd == pytest.approx(2.343 * math.sqrt(12 / 30), rel=1e-3)
    # exact Wilcoxon with 5 blocks all one sign: p = 2 / 2^5 = 0.0625, Holm x3 -> 0.1875: nothing differs
    assert result.pairwise_p[0, 1] == pytest.approx(0.1875)
    assert result.cliques() == [["a", "b", "c"]]


def test_critical_difference_separates_a_consistent_order_over_ten_blocks():
    # 10 blocks: exact Wilcoxon p = 2 / 2^10, Holm x3 = 0.00586 < 0.05: every pair differs
    scores_P_M = np.array([[3.0, 2.0, 1.0]]) + np.arange(10)[:, None] * 0.1
    result = critical_difference(scores_P_M, ["a", "b", "c"])
    assert result.pairwise_p[0, 2] == pytest.approx(3 * 2 / 2**10)
    assert result.cliques() == []
    # a tie between b and c joins them in one clique
    tied = scores_P_M.copy()
    tied[:, 2] = tied[:, 1] + np.where(np.arange(10) % 2 == 0, 0.01, -0.01)
    result = critical_difference(tied, ["a", "b", "c"])
    assert result.cliques() == [["b", "c"]] or result.cliques() == [["c", "b"]]
