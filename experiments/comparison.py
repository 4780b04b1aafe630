"""From finished runs to the tables every view shows (terminal leaderboard, HTML/Markdown report, plots).

Pure computation over `RunRecord` arrays; no MLflow (``experiments.mlflow_reader``
builds the records). The statistics themselves live in ``experiments.statistics``.

Comparison integrity: a leaderboard row is one *group* of runs that share
(dataset, setting, strategy, strategy_version, strategy_code_hash, code
version). Runs of one strategy under different versions are never averaged;
by default only each strategy's newest version is shown, ``all_versions``
shows every version as its own row.

A *setting* is the resolved config without strategy, seed, tracking and Hydra
keys: runs of different strategies in one setting are comparable, and runs
with the same seed in one setting are paired (same initial set, same pool
subset).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from experiments import statistics as st

RANDOM = "random"


@dataclass(frozen=True)
class RunRecord:
    """One finished AL run. Arrays are indexed by round (suffix R)."""

    run_id: str
    dataset: str
    strategy: str
    strategy_version: str
    workflow_id: str
    seed: str
    start_time: int
    rounds_R: np.ndarray
    labelled_counts_R: np.ndarray
    accuracies_R: np.ndarray
    select_seconds_R: np.ndarray
    infer_seconds_R: np.ndarray | None = None
    select_peak_memory_mb_R: np.ndarray | None = None
    setting_id: str = ""
    code_version: str = ""
    strategy_code_hash: str = ""
    device: str = ""
    sweep_dir: str = ""

    @property
    def setting(self) -> str:
        return self.setting_id or self.workflow_id


@dataclass(frozen=True)
class GroupKey:
    dataset: str
    setting: str
    strategy: str
    strategy_version: str
    strategy_code_hash: str
    code_version: str
    workflow_id: str  # differs within a setting when the strategy's params differ


@dataclass
class Group:
    key: GroupKey
    runs: list[RunRecord]  # one per seed, sorted by seed
    label: str = ""

    @property
    def seeds(self) -> list[str]:
        return [r.seed for r in self.runs]


def _version_key(version: str) -> tuple:
    """Order '1.10' after '1.9'; non-numeric parts compare as text."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-+]", version))


def latest_per_seed(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Newest run per (group, seed): re-running a sweep replaces, it does not double-count."""
    newest: dict[tuple, RunRecord] = {}
    for record in records:
        key = (_group_key(record), record.seed)
        if key not in newest or record.start_time > newest[key].start_time:
            newest[key] = record
    return list(newest.values())


def _group_key(record: RunRecord) -> GroupKey:
    return GroupKey(
        record.dataset, record.setting, record.strategy, record.strategy_version, record.strategy_code_hash,
        record.code_version, record.workflow_id,
    )


@dataclass(frozen=True)
class VersionChoice:
    """Which strategy versions to show: ``{strategy: version}`` pins (``"*"`` for every strategy)."""

    pinned: dict[str, str] = field(default_factory=dict)
    all_versions: bool = False

    @classmethod
    def parse(cls, values: Sequence[str] | None, all_versions: bool = False) -> VersionChoice:
        pinned = {}
        for value in values or []:
            name, separator, version = value.partition("=")
            pinned[name if separator else "*"] = version if separator else name
        return cls(pinned, all_versions)


def select_versions(records: Sequence[RunRecord], choice: VersionChoice = VersionChoice()) -> tuple[list[RunRecord], list[str]]:
    """Keep the runs of the chosen strategy versions; return them and notes on what was left out."""
    notes = []
    if choice.all_versions:
        return list(records), notes
    versions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        versions[(record.dataset, record.strategy)].add(record.strategy_version)
    keep: dict[tuple[str, str], str] = {}
    for (dataset, strategy), found in versions.items():
        wanted = choice.pinned.get(strategy, choice.pinned.get("*"))
        if wanted is not None:
            if wanted in found:
                keep[(dataset, strategy)] = wanted
            else:
                notes.append(f"{dataset}/{strategy}: no runs of version {wanted} (found {', '.join(sorted(found))})")
            continue
        keep[(dataset, strategy)] = max(found, key=_version_key)
        older = sorted(found - {keep[(dataset, strategy)]}, key=_version_key)
        if older:
            notes.append(
                f"{dataset}/{strategy}: showing version {keep[(dataset, strategy)]}; older versions "
                f"{', '.join(older)} hidden (--all-versions shows them as separate rows)"
            )
    kept = [r for r in records if keep.get((r.dataset, r.strategy)) == r.strategy_version]
    return kept, notes


def group_runs(records: Sequence[RunRecord]) -> list[Group]:
    """One group per (dataset, setting, strategy, version, code hash, code version, workflow), labelled for display.

    The label is the strategy name; where a dataset holds the strategy in more
    than one group, the label adds what tells them apart (version, code, setting).
    """
    buckets: dict[GroupKey, list[RunRecord]] = defaultdict(list)
    for record in latest_per_seed(records):
        buckets[_group_key(record)].append(record)
    groups = [Group(key, sorted(runs, key=lambda r: (len(r.seed), r.seed))) for key, runs in buckets.items()]
    by_strategy: dict[tuple[str, str], list[Group]] = defaultdict(list)
    for group in groups:
        by_strategy[(group.key.dataset, group.key.strategy)].append(group)
    for members in by_strategy.values():
        for group in members:
            parts = [group.key.strategy]
            if len({g.key.strategy_version for g in members}) > 1:
                parts.append(f"v{group.key.strategy_version}")
            if len({g.key.strategy_code_hash for g in members}) > 1:
                parts.append(f"code {group.key.strategy_code_hash[:8] or '?'}")
            if len({g.key.code_version for g in members}) > 1:
                parts.append(f"@{group.key.code_version[:12] or '?'}")
            if len({g.key.setting for g in members}) > 1:
                parts.append(f"[{group.key.setting[:8]}]")
            elif len({g.key.workflow_id for g in members}) > 1:
                parts.append(f"[{group.key.workflow_id[:8]}]")
            group.label = " ".join(parts)
    groups.sort(key=lambda g: (g.key.dataset, g.label))
    return groups


def common_rounds(runs: Sequence[RunRecord]) -> np.ndarray:
    """Rounds every run reached (sorted)."""
    return np.array(sorted(set.intersection(*(set(r.rounds_R.tolist()) for r in runs))), dtype=np.int64)


def accuracies_S_T(runs: Sequence[RunRecord], rounds_T: np.ndarray) -> np.ndarray:
    return np.stack([r.accuracies_R[np.isin(r.rounds_R, rounds_T)] for r in runs])


def _cost(runs: Sequence[RunRecord], attribute: str, reduce) -> float:
    """``reduce`` over the rounds that ran SELECT (all but the last), averaged over seeds."""
    per_seed = []
    for run in runs:
        values = getattr(run, attribute)
        if values is None:
            continue
        selecting = run.rounds_R < run.rounds_R.max() if run.rounds_R.size > 1 else np.ones_like(run.rounds_R, bool)
        chosen = np.asarray(values, dtype=np.float64)[selecting]
        chosen = chosen[np.isfinite(chosen)]
        if chosen.size:
            per_seed.append(reduce(chosen))
    return float(np.mean(per_seed)) if per_seed else float("nan")


@dataclass(frozen=True)
class LeaderboardRow:
    dataset: str
    setting: str
    rank: int
    strategy: str
    label: str
    version: str
    strategy_code_hash: str
    code_version: str
    workflow_id: str
    seeds: int
    final_labelled: int
    aulc_mean: float
    aulc_ci_low: float
    aulc_ci_high: float
    aulc_std: float
    aulc_normalised: float
    final_accuracy_mean: float
    final_accuracy_std: float
    vs_random_mean: float
    vs_random_ci_low: float
    vs_random_ci_high: float
    vs_random_p: float
    vs_random_seeds: int
    seeds_needed: float
    select_seconds_mean: float
    infer_seconds_mean: float
    select_peak_memory_mb: float
    device: str


def _reference(group: Group, groups: Sequence[Group]) -> Group | None:
    """The random group of the same dataset/setting, preferring the same code version, then more seeds."""
    candidates = [
        g for g in groups
        if g.key.strategy == RANDOM and g.key.dataset == group.key.dataset and g.key.setting == group.key.setting
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda g: (g.key.code_version == group.key.code_version, len(g.runs), _version_key(g.key.strategy_version)))


def _aulcs(group: Group) -> dict[str, float]:
    return {r.seed: st.aulc(r.labelled_counts_R, r.accuracies_R) for r in group.runs}


def build_rows(groups: Sequence[Group], delta: float = 0.005) -> list[LeaderboardRow]:
    """One row per group, ranked by mean AULC within each dataset (best first)."""
    rows = []
    mean_aulc = {id(g): float(np.mean(list(_aulcs(g).values()))) for g in groups}
    for group in groups:
        aulcs = _aulcs(group)
        values = list(aulcs.values())
        interval = st.bootstrap_mean_ci(values)
        finals = [float(r.accuracies_R[-1]) for r in group.runs]
        reference = _reference(group, groups)
        normalised = float("nan")
        vs = st.PairedDifference(0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
        needed = float("nan")
        if reference is not None:
            setting_means = {
                id(g): mean_aulc[id(g)] for g in groups
                if g.key.dataset == group.key.dataset and g.key.setting == group.key.setting
            }
            normalised = st.normalised_aulc(mean_aulc[id(group)], mean_aulc[id(reference)], max(setting_means.values()))
            if reference is not group:
                reference_aulcs = _aulcs(reference)
                shared = [seed for seed in aulcs if seed in reference_aulcs]
                if shared:
                    vs = st.paired_difference([aulcs[s] for s in shared], [reference_aulcs[s] for s in shared])
                    needed = st.seeds_needed(vs.std, delta)
        rows.append(
            LeaderboardRow(
                dataset=group.key.dataset,
                setting=group.key.setting,
                rank=0,
                strategy=group.key.strategy,
                label=group.label,
                version=group.key.strategy_version,
                strategy_code_hash=group.key.strategy_code_hash,
                code_version=group.key.code_version,
                workflow_id=group.runs[0].workflow_id,
                seeds=len(group.runs),
                final_labelled=int(max(r.labelled_counts_R[-1] for r in group.runs)),
                aulc_mean=interval.estimate,
                aulc_ci_low=interval.low,
                aulc_ci_high=interval.high,
                aulc_std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                aulc_normalised=float(normalised),
                final_accuracy_mean=float(np.mean(finals)),
                final_accuracy_std=float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
                vs_random_mean=vs.mean,
                vs_random_ci_low=vs.low,
                vs_random_ci_high=vs.high,
                vs_random_p=vs.p_value,
                vs_random_seeds=vs.seeds,
                seeds_needed=needed,
                select_seconds_mean=_cost(group.runs, "select_seconds_R", np.mean),
                infer_seconds_mean=_cost(group.runs, "infer_seconds_R", np.mean),
                select_peak_memory_mb=_cost(group.runs, "select_peak_memory_mb_R", np.max),
                device=", ".join(sorted({r.device or "?" for r in group.runs})),
            )
        )
    rows.sort(key=lambda row: (row.dataset, -row.aulc_mean, row.label))
    ranked, previous, rank = [], None, 0
    for row in rows:
        rank = rank + 1 if row.dataset == previous else 1
        previous = row.dataset
        ranked.append(_replace(row, rank=rank))
    return ranked


def _replace(row: LeaderboardRow, **changes) -> LeaderboardRow:
    import dataclasses

    return dataclasses.replace(row, **changes)


@dataclass(frozen=True)
class Setting:
    """Seed-aligned curves of every group in one dataset/setting."""

    dataset: str
    setting: str
    labels: list[str]
    seeds: list[str]
    labelled_counts_T: np.ndarray
    accuracies: dict[str, np.ndarray]  # label -> accuracies_S_T, rows in `seeds` order


def settings(groups: Sequence[Group]) -> list[Setting]:
    """Per dataset/setting, the curves of all its groups on the seeds and rounds they all share."""
    buckets: dict[tuple[str, str], list[Group]] = defaultdict(list)
    for group in groups:
        buckets[(group.key.dataset, group.key.setting)].append(group)
    result = []
    for (dataset, setting), members in sorted(buckets.items()):
        seeds = sorted(set.intersection(*(set(g.seeds) for g in members)), key=lambda s: (len(s), s))
        runs_by_group = [[next(r for r in g.runs if r.seed == s) for s in seeds] for g in members]
        if not seeds:
            continue
        rounds = common_rounds([r for runs in runs_by_group for r in runs])
        counts = runs_by_group[0][0].labelled_counts_R[np.isin(runs_by_group[0][0].rounds_R, rounds)]
        result.append(
            Setting(
                dataset, setting, [g.label for g in members], seeds, np.asarray(counts, dtype=np.float64),
                {g.label: accuracies_S_T(runs, rounds) for g, runs in zip(members, runs_by_group)},
            )
        )
    return result


def penalty(settings_list: Sequence[Setting], alpha: float = st.ALPHA) -> tuple[list[str], np.ndarray]:
    """Ash et al.'s penalty matrix summed over settings (only settings with >= 2 shared seeds count)."""
    usable = [s.accuracies for s in settings_list if len(s.seeds) >= 2]
    return st.penalty_matrix(usable, alpha)


@dataclass(frozen=True)
class CDResult:
    result: st.CriticalDifference
    block_kind: str  # "dataset x setting" or "dataset x setting x seed"


def critical_difference(settings_list: Sequence[Setting], min_blocks: int = 5) -> CDResult | None:
    """CD ranks over dataset x setting blocks (mean AULC per block), over the labels present in every block.

    With fewer than ``min_blocks`` such blocks, each seed of each setting is a
    block instead (per-seed AULC; seeds pair runs), and the result says so.
    """
    if not settings_list:
        return None
    labels = sorted(set.intersection(*(set(s.labels) for s in settings_list)))
    if len(labels) < 2:
        return None

    def seed_aulcs(s: Setting, label: str) -> np.ndarray:
        return np.array([st.aulc(s.labelled_counts_T, row) for row in s.accuracies[label]])

    if len(settings_list) >= min_blocks:
        scores = np.array([[seed_aulcs(s, label).mean() for label in labels] for s in settings_list])
        kind = "dataset x setting"
    else:
        scores = np.concatenate(
            [np.stack([seed_aulcs(s, label) for label in labels], axis=1) for s in settings_list], axis=0
        )
        kind = "dataset x setting x seed"
    return CDResult(st.critical_difference(scores, labels), kind)


def difference_curves(setting: Setting, confidence: float = 0.95) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per label: mean paired difference to random per round and its bootstrap CI (low, high); {} without random."""
    reference = next((label for label in setting.labels if label.split(" ")[0] == RANDOM), None)
    if reference is None:
        return {}
    curves = {}
    for label, acc_S_T in setting.accuracies.items():
        d_S_T = acc_S_T - setting.accuracies[reference]
        intervals = [st.bootstrap_mean_ci(d_S_T[:, t], confidence, resamples=2000) for t in range(d_S_T.shape[1])]
        curves[label] = (
            np.array([i.estimate for i in intervals]),
            np.array([i.low for i in intervals]),
            np.array([i.high for i in intervals]),
        )
    return curves
