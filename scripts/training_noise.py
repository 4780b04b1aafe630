"""Training noise of one strategy's learning curves: per-round std over seeds and the largest drops.

    python scripts/training_noise.py --experiment noise_before [--strategy random] [--tracking-uri sqlite:///mlflow.db]

Prints, per round, the labelled-set size, the mean and the std (over seeds, ddof=1) of test accuracy,
then the largest per-round std, the largest drop of the *mean* curve between consecutive rounds,
and the largest drop between consecutive rounds within any single run. Issue 7's targets:
per-round std <= 0.01 and no mean drop > 0.01.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.comparison import accuracies_S_T, common_rounds, latest_per_seed  # noqa: E402
from experiments.mlflow_reader import fetch_runs  # noqa: E402
from experiments.tracking import resolve_tracking_uri  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    args = parser.parse_args()
    runs = [r for r in latest_per_seed(fetch_runs(resolve_tracking_uri(args.tracking_uri, Path.cwd()), args.experiment))
            if r.strategy == args.strategy]
    if len(runs) < 2:
        print(f"need >= 2 seeds of {args.strategy}; found {len(runs)}")
        return 1
    rounds_T = common_rounds(runs)
    acc_S_T = accuracies_S_T(runs, rounds_T)
    counts_T = runs[0].labelled_counts_R[np.isin(runs[0].rounds_R, rounds_T)]
    mean_T, std_T = acc_S_T.mean(axis=0), acc_S_T.std(axis=0, ddof=1)
    print(f"{args.strategy}: {len(runs)} seeds ({', '.join(sorted(r.seed for r in runs))}), {len(rounds_T)} rounds")
    print("labels  mean_acc  std_acc")
    for count, mean, std in zip(counts_T, mean_T, std_T):
        print(f"{int(count):6d}  {mean:.4f}    {std:.4f}")
    mean_drops = -np.diff(mean_T)
    run_drops = -np.diff(acc_S_T, axis=1)
    print(f"largest per-round std: {std_T.max():.4f} (at {int(counts_T[std_T.argmax()])} labels); mean over rounds {std_T.mean():.4f}")
    print(f"largest drop of the mean curve: {max(mean_drops.max(), 0):.4f}")
    seed, step = np.unravel_index(run_drops.argmax(), run_drops.shape)
    print(f"largest drop within one run: {max(run_drops.max(), 0):.4f} (seed {runs[seed].seed}, "
          f"{int(counts_T[step])} -> {int(counts_T[step + 1])} labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
