"""Statistics for comparing AL strategies: pure computation over arrays, no MLflow.

Inputs are per-seed learning curves. Seeds pair runs: the same seed gives the
same initial labelled set and the same pool subset, so differences between
strategies are taken seed by seed (paired), which removes the seed's share of
the variance.

Shape suffixes: S seeds, T rounds (learning-curve points), M strategies,
P blocks (dataset x setting, or dataset x setting x seed) of a CD diagram.

References:
    Ash et al. 2020, "Deep Batch Active Learning by Diverse, Uncertain Gradient
    Lower Bounds" (BADGE), arXiv:1906.03671, section 5: the pairwise penalty matrix.
    Demšar 2006, "Statistical Comparisons of Classifiers over Multiple Data Sets",
    JMLR 7: Friedman test, average ranks, critical-difference diagrams.
    Benavoli et al. 2016, "Should We Really Use Post-Hoc Tests Based on Mean-Ranks?",
    JMLR 17: pairwise Wilcoxon signed-rank tests with Holm's correction instead of Nemenyi.
    Werner et al. 2024 (CDALBench), arXiv:2408.00426: normalised AULC, CD diagrams for AL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from experiments.curves import learning_curve_area

#: Significance level of every test in this module unless a call says otherwise.
ALPHA = 0.05


def aulc(labelled_counts_T: Sequence[float], accuracies_T: Sequence[float]) -> float:
    """Area under one learning curve, normalised by the label range (= mean accuracy over the budget)."""
    return learning_curve_area(labelled_counts_T, accuracies_T)


def normalised_aulc(aulc_value: float | np.ndarray, aulc_random: float, aulc_max: float) -> float | np.ndarray:
    """``(AULC - AULC_random) / (AULC_max - AULC_random)``: 0 = random, 1 = the ceiling.

    ``aulc_max`` is the best strategy's mean AULC in the same dataset/setting
    (see `normalised_aulc_table`), so settings of different difficulty land on one
    scale. Where nothing beats random (``aulc_max <= aulc_random``) the scale is
    undefined and the result is NaN.
    """
    span = aulc_max - aulc_random
    if not np.isfinite(span) or span <= 0:
        return np.full_like(np.asarray(aulc_value, dtype=np.float64), np.nan) if np.ndim(aulc_value) else float("nan")
    result = (np.asarray(aulc_value, dtype=np.float64) - aulc_random) / span
    return result if np.ndim(aulc_value) else float(result)


def normalised_aulc_table(mean_aulc_by_strategy: Mapping[str, float], random: str = "random") -> dict[str, float]:
    """Normalised AULC of each strategy's mean within one dataset/setting; NaN for all if no random row."""
    if random not in mean_aulc_by_strategy:
        return {name: float("nan") for name in mean_aulc_by_strategy}
    ceiling = max(mean_aulc_by_strategy.values())
    return {
        name: normalised_aulc(value, mean_aulc_by_strategy[random], ceiling)
        for name, value in mean_aulc_by_strategy.items()
    }


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval; NaN bounds where it cannot be computed."""

    estimate: float
    low: float
    high: float


def bootstrap_mean_ci(
    values_S: Sequence[float], confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> Interval:
    """Percentile-bootstrap CI of the mean over seeds.

    Percentile, not BCa: with the 3-5 seeds of a typical sweep BCa's
    acceleration estimate is degenerate. One seed has no spread: its interval
    is NaN. The generator is explicit, so the interval is reproducible.
    """
    values = np.asarray(values_S, dtype=np.float64)
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean = float(values.mean())
    if values.size < 2:
        return Interval(mean, float("nan"), float("nan"))
    if np.all(values == values[0]):
        return Interval(mean, mean, mean)
    result = stats.bootstrap(
        (values,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Interval(mean, float(result.confidence_interval.low), float(result.confidence_interval.high))


def paired_t_pvalues(differences_S_T: np.ndarray) -> np.ndarray:
    """Two-sided one-sample t-test of the mean of each column against 0, vectorised over T.

    Columns with zero spread get p = 0 when their mean is non-zero (every seed
    agrees on the sign and size) and p = 1 when it is zero; fewer than two
    seeds give NaN.
    """
    d = np.asarray(differences_S_T, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    seeds = d.shape[0]
    if seeds < 2:
        return np.full(d.shape[1], np.nan)
    mean_T = d.mean(axis=0)
    std_T = d.std(axis=0, ddof=1)
    # spread below float64 rounding of the mean counts as none
    flat_T = std_T <= 1e-12 * np.maximum(np.abs(mean_T), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_T = mean_T / (std_T / np.sqrt(seeds))
    p_T = 2.0 * stats.t.sf(np.abs(t_T), df=seeds - 1)
    return np.where(flat_T, np.where(mean_T != 0, 0.0, 1.0), p_T)


@dataclass(frozen=True)
class PairedDifference:
    """Strategy minus reference, paired by seed."""

    seeds: int
    mean: float
    low: float
    high: float
    p_value: float
    std: float


def paired_difference(values_S: Sequence[float], reference_S: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Mean paired difference, its bootstrap CI, the paired t-test p-value and the per-seed std.

    ``values_S[i]`` and ``reference_S[i]`` must come from the same seed.
    """
    a = np.asarray(values_S, dtype=np.float64)
    b = np.asarray(reference_S, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: values_S and reference_S must have one value per shared seed; got {a.shape} and {b.shape}")
    d = a - b
    interval = bootstrap_mean_ci(d, confidence)
    p = float(paired_t_pvalues(d)[0]) if d.size else float("nan")
    std = float(d.std(ddof=1)) if d.size > 1 else float("nan")
    return PairedDifference(int(d.size), interval.estimate, interval.low, interval.high, p, std)


def seeds_needed(std_difference: float, delta: float = 0.005, power: float = 0.8, alpha: float = ALPHA, max_seeds: int = 10_000) -> float:
    """Smallest number of paired seeds for a two-sided paired t-test to detect a true mean difference
    ``delta`` with probability ``power``, given the per-seed std of the paired difference.

    Uses the exact power of the t-test (noncentral t), not the normal
    approximation; e.g. ``std = delta`` (effect size 1) needs 10 seeds.
    Returns NaN where the std is unknown (fewer than two seeds), 2 when the
    differences have no spread, and inf beyond ``max_seeds``.
    """
    if not np.isfinite(std_difference) or delta <= 0:
        return float("nan")
    if std_difference <= 1e-9 * delta:
        # no spread beyond float rounding: every seed shows the same difference
        return 2.0
    n_N = np.arange(2, max_seeds + 1, dtype=np.float64)
    df_N = n_N - 1
    critical_N = stats.t.isf(alpha / 2, df_N)
    noncentrality_N = delta / std_difference * np.sqrt(n_N)
    power_N = stats.nct.sf(critical_N, df_N, noncentrality_N) + stats.nct.cdf(-critical_N, df_N, noncentrality_N)
    enough = np.flatnonzero(power_N >= power)
    return float(n_N[enough[0]]) if enough.size else float("inf")


def penalty_matrix(
    curves_by_setting: Sequence[Mapping[str, np.ndarray]], alpha: float = ALPHA
) -> tuple[list[str], np.ndarray]:
    """Ash et al. 2020's pairwise penalty matrix ``P_M_M``.

    For each setting (dataset x AL setting), each pair (i, j) and each round t,
    a two-sided paired t-test over seeds at ``alpha``; when it is significant
    and i's mean accuracy is higher, ``P[i, j] += 1 / T``. Summed over settings,
    so each entry lies in [0, number of settings]; a column sum says how often
    a strategy was beaten.

    Args:
        curves_by_setting: per setting, ``{strategy: accuracies_S_T}`` with rows
            aligned by seed (row s is the same seed for every strategy) and the
            same T rounds for all strategies of the setting.
    Returns:
        the strategy names (sorted) and ``P_M_M`` (row beats column).
    """
    names = sorted({name for setting in curves_by_setting for name in setting})
    index = {name: i for i, name in enumerate(names)}
    penalty_M_M = np.zeros((len(names), len(names)))
    for setting in curves_by_setting:
        members = sorted(setting)
        for i, first in enumerate(members):
            for second in members[i + 1 :]:
                a_S_T = np.asarray(setting[first], dtype=np.float64)
                b_S_T = np.asarray(setting[second], dtype=np.float64)
                if a_S_T.shape != b_S_T.shape:
                    raise ValueError(
                        f"penalty_matrix: '{first}' and '{second}' need seed-aligned curves of one shape; "
                        f"got {a_S_T.shape} and {b_S_T.shape}"
                    )
                d_S_T = a_S_T - b_S_T
                significant_T = paired_t_pvalues(d_S_T) < alpha
                rounds = d_S_T.shape[1]
                mean_T = d_S_T.mean(axis=0)
                penalty_M_M[index[first], index[second]] += np.sum(significant_T & (mean_T > 0)) / rounds
                penalty_M_M[index[second], index[first]] += np.sum(significant_T & (mean_T < 0)) / rounds
    return names, penalty_M_M


@dataclass(frozen=True)
class CriticalDifference:
    """Average ranks (1 = best) over blocks, the Friedman test, and which pairs differ."""

    names: list[str]
    average_ranks: np.ndarray
    blocks: int
    friedman_p: float
    nemenyi_cd: float
    pairwise_p: np.ndarray  # Holm-adjusted Wilcoxon p-values, M x M, NaN on the diagonal
    alpha: float

    def cliques(self) -> list[list[str]]:
        """Maximal groups of strategies (contiguous in rank order) with no significant pair inside."""
        order = np.argsort(self.average_ranks, kind="stable")
        groups: list[list[int]] = []
        for start in range(len(order)):
            end = start
            while end + 1 < len(order) and all(
                not (self.pairwise_p[order[a], order[end + 1]] < self.alpha) for a in range(start, end + 1)
            ):
                end += 1
            if end > start and not any(g[0] <= start and end <= g[-1] for g in groups):
                groups.append(list(range(start, end + 1)))
        return [[self.names[order[k]] for k in group] for group in groups]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    running = 0.0
    for k, position in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[position]))
        adjusted[position] = running
    return adjusted


def critical_difference(scores_P_M: np.ndarray, names: Sequence[str], alpha: float = ALPHA) -> CriticalDifference:
    """Friedman test over blocks, average ranks, Nemenyi CD and Wilcoxon-Holm pairwise p-values.

    Args:
        scores_P_M: one score per block and strategy, higher is better (e.g. mean AULC).
        names: the M strategy names.
    """
    scores = np.asarray(scores_P_M, dtype=np.float64)
    blocks, strategies = scores.shape
    # rank 1 = best; ties share the average rank
    ranks_P_M = stats.rankdata(-scores, axis=1)
    average = ranks_P_M.mean(axis=0)
    friedman = float("nan")
    if strategies >= 3 and blocks >= 2:
        with np.errstate(all="ignore"):
            friedman = float(stats.friedmanchisquare(*scores.T).pvalue)
    q = stats.studentized_range.ppf(1 - alpha, strategies, np.inf) / np.sqrt(2) if strategies >= 2 else float("nan")
    nemenyi = float(q * np.sqrt(strategies * (strategies + 1) / (6.0 * blocks))) if blocks else float("nan")
    raw, pairs = [], []
    for i in range(strategies):
        for j in range(i + 1, strategies):
            d = scores[:, i] - scores[:, j]
            if blocks < 2 or np.all(d == 0):
                raw.append(1.0 if blocks >= 2 else float("nan"))
            else:
                raw.append(float(stats.wilcoxon(scores[:, i], scores[:, j], zero_method="zsplit").pvalue))
            pairs.append((i, j))
    adjusted = holm(raw)
    pairwise = np.full((strategies, strategies), np.nan)
    for (i, j), p in zip(pairs, adjusted):
        pairwise[i, j] = pairwise[j, i] = p
    return CriticalDifference(list(names), average, blocks, friedman, nemenyi, pairwise, alpha)
