"""``history_summary.png``: why a history strategy picks what it picks.

For the samples picked in the last round and a random sample of that round's
pool, the trajectory over rounds of the confidence p(ŷ_t) = max_c P_t,c and of
the entropy H(P_t), plus the distribution of the strategy's score over the
last pool with the picked samples' scores marked.

Only the sampled rows are read from each (memory-mapped) round file, so the
cost is O(T * S * C) for S sampled samples plus the last round's scores: a
second or so at N = 1M.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from experiments.history_store import SELECTION_FILE, HistoryStore

#: Most picked samples drawn (a large query would make a solid block of lines).
MAX_PICKED_LINES = 60


def _trajectories(files: list[Path], ids_S: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """[T, S] confidence and entropy of samples ``ids_S`` per round; NaN where a round did not score one."""
    confidence_T_S = np.full((len(files), ids_S.numel()), np.nan)
    entropy_T_S = np.full_like(confidence_T_S, np.nan)
    for t, path in enumerate(files):
        record = torch.load(path, mmap=True, weights_only=True)
        round_ids, probs = record["dataset_ids"], record["probs"]
        if round_ids.numel() == 0 or ids_S.numel() == 0:
            continue
        position = torch.searchsorted(round_ids, ids_S).clamp_(max=round_ids.shape[0] - 1)
        observed = (round_ids[position] == ids_S).numpy()
        p_S_C = probs[position].float()
        entropy_S = -(p_S_C * p_S_C.clamp_min(1e-12).log()).sum(dim=1)
        confidence_T_S[t, observed] = p_S_C.amax(dim=1).numpy()[observed]
        entropy_T_S[t, observed] = entropy_S.numpy()[observed]
    return confidence_T_S, entropy_T_S


def write_history_summary(
    history_dir: Path, output_path: Path, strategy: str, sample_size: int = 100, seed: int = 0
) -> Path | None:
    """Draw the summary from a run's history directory; None if it holds no round or no selection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history_dir = Path(history_dir)
    selection_path = history_dir / SELECTION_FILE
    if not history_dir.is_dir() or not selection_path.exists():
        return None
    files = HistoryStore(history_dir, num_classes=0).round_files()
    if not files:
        return None
    selection = torch.load(selection_path, weights_only=True)
    generator = torch.Generator().manual_seed(seed)
    pool_ids = selection["pool_ids"]
    picked_ids = selection["selected_ids"]
    picked_ids = picked_ids[torch.randperm(picked_ids.numel(), generator=generator)[:MAX_PICKED_LINES]].sort().values
    sample_ids = pool_ids[torch.randperm(pool_ids.numel(), generator=generator)[:sample_size]].sort().values
    ids = torch.cat([picked_ids, sample_ids])
    confidence_T_S, entropy_T_S = _trajectories(files, ids)
    num_picked = picked_ids.numel()
    rounds = np.arange(len(files))
    num_classes = int(torch.load(files[-1], mmap=True, weights_only=True)["probs"].shape[1])

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    panels = [
        (axes[0], confidence_T_S, "p(ŷ_t) = max_c P_t,c", (0.0, 1.02)),
        (axes[1], entropy_T_S, "entropy H(P_t) (nats)", (0.0, math.log(max(num_classes, 2)) * 1.02)),
    ]
    for axis, values_T_S, ylabel, ylim in panels:
        random_part, picked_part = values_T_S[:, num_picked:], values_T_S[:, :num_picked]
        if random_part.shape[1]:
            axis.plot(rounds, random_part, color="tab:gray", alpha=0.25, linewidth=0.8)
            axis.plot(rounds, np.nanmedian(random_part, axis=1), color="black", linewidth=2.5,
                      label=f"random pool sample (n={random_part.shape[1]}), median")
        if picked_part.shape[1]:
            axis.plot(rounds, picked_part, color="tab:red", alpha=0.35, linewidth=0.9)
            axis.plot(rounds, np.nanmedian(picked_part, axis=1), color="darkred", linewidth=2.5,
                      label=f"picked in round {int(selection['round_index'])} (n={picked_part.shape[1]}), median")
        axis.set_xlabel("round")
        axis.set_ylabel(ylabel)
        axis.set_ylim(*ylim)
        axis.set_xticks(rounds if len(rounds) <= 20 else rounds[:: math.ceil(len(rounds) / 20)])
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    axes[0].set_title("confidence over rounds")
    axes[1].set_title("uncertainty over rounds")

    scores = selection["scores"]
    axis = axes[2]
    if scores is None:
        axis.text(0.5, 0.5, f"{strategy} has no per-sample score", ha="center", va="center", transform=axis.transAxes)
        axis.set_axis_off()
    else:
        scores_np = scores.numpy()
        finite = np.isfinite(scores_np)
        counts, _, _ = axis.hist(scores_np[finite], bins=60, color="tab:gray", alpha=0.8, label=f"last pool (N={scores_np.size:,})")
        order = torch.argsort(pool_ids)
        picked_positions = order[torch.searchsorted(pool_ids[order], selection["selected_ids"])].numpy()
        picked_scores = scores_np[picked_positions]
        # one collection, not B artists: a large query stays cheap to draw
        axis.vlines(picked_scores[np.isfinite(picked_scores)], 0, 1, transform=axis.get_xaxis_transform(),
                    color="tab:red", alpha=0.3, linewidth=0.8, label=f"picked (B={picked_scores.size})")
        occupied = counts[counts > 0]
        if occupied.size and occupied.max() > 100 * occupied.min():  # a long tail: show it on a log axis
            axis.set_yscale("log")
        axis.set_xlabel(f"{strategy} score (higher = queried)")
        axis.set_ylabel("samples")
        axis.set_title("score distribution, last round")
        axis.legend(loc="best", fontsize=8)
    figure.suptitle(f"{strategy}: history of the last round's picks vs the pool", fontsize=12)
    figure.tight_layout()
    output_path = Path(output_path)
    figure.savefig(output_path, dpi=110)
    plt.close(figure)
    return output_path
