"""history_summary.png: drawn from sampled rows of the round files, absent without history."""

from __future__ import annotations

import torch

from experiments.history_store import HistoryStore
from experiments.history_summary import _trajectories, write_history_summary
from strategies import Selection
from tests.conftest import random_probs


def _record(directory, rounds=4, num_ids=300, scores=True):
    store = HistoryStore(directory, 4)
    pool = torch.arange(num_ids)
    for t in range(rounds):
        store.append(t, pool, random_probs(num_ids, 4, seed=t))
    picks = torch.tensor([5, 17, 250])
    store.save_selection(rounds - 1, pool, Selection(indices_B=picks, scores_N=torch.rand(num_ids) if scores else None))
    return store


def test_summary_is_written(tmp_path):
    _record(tmp_path / "history")
    path = write_history_summary(tmp_path / "history", tmp_path / "history_summary.png", "tod", sample_size=50)
    assert path is not None and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_without_scores_or_history(tmp_path):
    _record(tmp_path / "history", scores=False)
    assert write_history_summary(tmp_path / "history", tmp_path / "a.png", "random") is not None
    assert write_history_summary(tmp_path / "missing", tmp_path / "b.png", "tod") is None
    assert not (tmp_path / "b.png").exists()


def test_trajectories_read_the_sampled_rows_with_nan_where_unscored(tmp_path):
    store = HistoryStore(tmp_path, 3)
    probs0 = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    store.append(0, torch.tensor([3, 9]), probs0)
    store.append(1, torch.tensor([9]), torch.tensor([[1 / 3, 1 / 3, 1 / 3]]))
    confidence, entropy = _trajectories(store.round_files(), torch.tensor([3, 9]))
    assert abs(confidence[0, 0] - 0.7) < 1e-3 and abs(confidence[0, 1] - 0.4) < 1e-3
    assert torch.isnan(torch.tensor(confidence[1, 0])) and abs(entropy[1, 1] - torch.log(torch.tensor(3.0))) < 1e-3
