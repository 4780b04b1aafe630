"""The run's history store: every round's pool predictions, one fp16 file per round.

RECORD appends ``round_<t>.pt`` holding the dataset indices that round scored
(sorted) and their probabilities in fp16. Indexing by dataset index, not pool
position, keeps the files valid while the pool shrinks and is subsampled.
`HistoryStore.view` aligns all rounds to the current pool and streams them
back as a `strategies.HistoryView`, reading each file memory-mapped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import torch

from kernels.chunking import DEFAULT_CHUNK_SIZE, chunk_slices
from kernels.history import HistoryInputError, HistoryStatistics
from strategies import HistoryChunk
from strategies.history import HistoryStateSpec, history_state_spec

SELECTION_FILE = "selection.pt"
_ROUND_FILE = re.compile(r"^round_(\d{4,})\.pt$")


def save_atomically(obj: object, path: Path) -> Path:
    """``torch.save`` to a side file (fsynced), then rename: a crash never leaves half a file at ``path``.

    Written through a Python file object, so a full disk raises OSError(ENOSPC), not torch's opaque stream error.
    """
    from experiments.round_state import save_durably

    return save_durably(obj, path)


class HistoryOwnerError(RuntimeError):
    """A history directory already holds the round files of another run."""


class HistoryStore:
    """Append-only per-round prediction files under ``directory``.

    With ``owner`` (a run id), the directory is claimed for that run in an
    ``OWNER`` file; opening it for another run raises `HistoryOwnerError`, so a
    history strategy can never read another run's rounds.
    """

    OWNER_FILE = "OWNER"

    def __init__(self, directory: str | os.PathLike, num_classes: int, owner: str | None = None):
        self.directory = Path(directory)
        self.num_classes = num_classes
        self.directory.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            self._claim(owner)

    def _claim(self, owner: str) -> None:
        owner_path = self.directory / self.OWNER_FILE
        try:
            # O_EXCL: of two runs racing for one directory, exactly one wins
            descriptor = os.open(owner_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            recorded = owner_path.read_text().strip()
            if recorded != owner:
                raise HistoryOwnerError(
                    f"history directory {self.directory} belongs to run {recorded}, not {owner}; "
                    "give each run its own output directory"
                ) from None
            return
        with os.fdopen(descriptor, "w") as handle:
            handle.write(owner + "\n")
        if self.round_files():
            raise HistoryOwnerError(f"history directory {self.directory} holds round files of an unknown run")

    def drop_rounds_from(self, round_index: int) -> None:
        """Delete the files of rounds >= ``round_index`` (a resumed run redoes those rounds)."""
        for path in self.round_files():
            if int(_ROUND_FILE.match(path.name).group(1)) >= round_index:
                path.unlink()

    def round_files(self) -> list[Path]:
        """Recorded rounds' files, in chronological order."""
        files = [path for path in self.directory.iterdir() if _ROUND_FILE.match(path.name)]
        return sorted(files, key=lambda path: int(_ROUND_FILE.match(path.name).group(1)))

    @property
    def num_rounds(self) -> int:
        return len(self.round_files())

    def append(self, round_index: int, dataset_ids_M: torch.Tensor, probs_M_C: torch.Tensor) -> Path:
        """Write round ``round_index``'s predictions; atomic, so a crash never leaves half a file.

        Args:
            dataset_ids_M: global dataset indices of the M scored samples (any order).
            probs_M_C: their class probabilities (stored as fp16).
        """
        if probs_M_C.shape != (dataset_ids_M.shape[0], self.num_classes):
            raise ValueError(
                f"history: probs must have shape ({dataset_ids_M.shape[0]}, {self.num_classes}); "
                f"got {tuple(probs_M_C.shape)}"
            )
        order = torch.argsort(dataset_ids_M.cpu())
        return save_atomically(
            {
                "dataset_ids": dataset_ids_M.cpu()[order].to(torch.int64).contiguous(),
                "probs": probs_M_C.cpu()[order].to(torch.float16).contiguous(),
            },
            self.directory / f"round_{round_index:04d}.pt",
        )

    def save_selection(self, round_index: int, pool_ids_N: torch.Tensor, selection) -> Path:
        """Keep the latest round's pool ids, scores and picks (``selection.pt``, overwritten each
        round) for `experiments.history_summary`; scores are fp32, None for a strategy without."""
        scores = selection.scores_N
        return save_atomically(
            {
                "round_index": round_index,
                "pool_ids": pool_ids_N.detach().cpu().to(torch.int64),
                "selected_ids": pool_ids_N.detach().cpu()[selection.indices_B.cpu()].to(torch.int64),
                "scores": None if scores is None else scores.detach().float().cpu(),
            },
            self.directory / SELECTION_FILE,
        )

    def view(self, pool_ids_N: torch.Tensor, device: torch.device | str = "cpu") -> RoundFileHistory:
        """All recorded rounds, aligned to the pool whose dataset indices are ``pool_ids_N``."""
        return RoundFileHistory(self.round_files(), pool_ids_N, self.num_classes, device)


class RoundFileHistory:
    """A `strategies.HistoryView` over round files, aligned to one pool.

    For each round and chunk of pool rows, the rows are located in the round's
    sorted ids by binary search; rows the round did not score are masked.
    """

    def __init__(self, files: list[Path], pool_ids_N: torch.Tensor, num_classes: int, device: torch.device | str):
        self.files = list(files)
        self.pool_ids_N = pool_ids_N.detach().to("cpu", torch.int64)
        self._num_classes = num_classes
        self.device = torch.device(device)

    @property
    def num_rounds(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def pool_size(self) -> int:
        return int(self.pool_ids_N.shape[0])

    def _load(self, round_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        record = torch.load(self.files[round_index], mmap=True, weights_only=True)
        ids_M, probs_M_C = record["dataset_ids"], record["probs"]
        if probs_M_C.ndim != 2 or probs_M_C.shape[1] != self._num_classes:
            raise HistoryInputError(
                f"rounds must agree on C={self._num_classes} classes; round file {self.files[round_index].name} "
                f"holds shape {tuple(probs_M_C.shape)}"
            )
        return ids_M, probs_M_C

    def covers_pool(self, round_index: int) -> bool:
        """True if round ``round_index`` scored every pool sample (reads only its ids)."""
        ids_M, _ = self._load(round_index)
        if ids_M.numel() == 0:
            return self.pool_size == 0
        position = torch.searchsorted(ids_M, self.pool_ids_N).clamp_(max=ids_M.shape[0] - 1)
        return bool((ids_M[position] == self.pool_ids_N).all())

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE, first_round: int = 0) -> Iterator[HistoryChunk]:
        for round_index in range(first_round, self.num_rounds):
            ids_M, probs_M_C = self._load(round_index)
            for rows in chunk_slices(self.pool_size, chunk_size):
                wanted = self.pool_ids_N[rows]
                if ids_M.numel() == 0:
                    observed = torch.zeros_like(wanted, dtype=torch.bool)
                    probs = torch.zeros(wanted.shape[0], self._num_classes, dtype=torch.float16)
                else:
                    position = torch.searchsorted(ids_M, wanted).clamp_(max=ids_M.shape[0] - 1)
                    observed = ids_M[position] == wanted
                    probs = probs_M_C[position]
                yield HistoryChunk(round_index, rows.start, probs.to(self.device), observed.to(self.device))


class HistoryTracker:
    """The run's history-statistics state, kept between rounds and keyed by dataset index.

    RECORD calls `update` with only the newest round's probabilities (rounded to fp16, exactly
    what the store holds), so each round costs O(N * C) whatever the number of past rounds.
    Rows are dataset indices (sorted ``dataset_ids_M``): a sample keeps its statistics while it is
    out of a refreshed subset, and new samples get fresh rows. `view` hands strategies a
    `TrackedHistory` that carries the ready state; it still streams the round files for a
    strategy that needs a pass (a ``window``), and as the re-read check.

    Args:
        spec: what the run's strategy needs (`strategies.history.history_state_spec`); None or
            not incremental: no state is kept (the strategy reads the round files, or no history).
        store: the run's round files.
        device: where the state lives (the run's device).
    """

    def __init__(self, spec: HistoryStateSpec | None, store: HistoryStore, device: torch.device | str = "cpu"):
        self.spec = spec if spec is not None and spec.incremental else None
        self.store = store
        self.device = torch.device(device)
        self.dataset_ids_M = torch.empty(0, dtype=torch.int64)
        self.row_of_id = torch.empty(0, dtype=torch.int64)
        self.rounds = 0
        self.stats = self._empty(0)

    @classmethod
    def for_strategy(
        cls, strategy: str, params: dict, store: HistoryStore, device: torch.device | str = "cpu"
    ) -> HistoryTracker:
        """The tracker for a run of ``strategy`` (its parameters are checked here, before any training)."""
        return cls(history_state_spec(strategy, params), store, device)

    def _empty(self, rows: int) -> HistoryStatistics | None:
        if self.spec is None:
            return None
        return HistoryStatistics.empty(
            rows, self.store.num_classes, self.device, self.spec.keep, self.spec.ema_decay, self.spec.trend_window,
            probs_dtype=torch.float16,  # the store's precision: keeping last/prev in fp16 is exact
        )

    def update(self, round_index: int, pool_ids_N: torch.Tensor, probs_N_C: torch.Tensor) -> None:
        """Fold round ``round_index``'s pool predictions into the state (rounds in order)."""
        self.rounds += 1
        if self.spec is None:
            return
        ids_N = pool_ids_N.detach().to("cpu", torch.int64)
        probs_N_C = probs_N_C.detach().to(self.device, torch.float16)
        if ids_N.numel() > 1 and not bool((ids_N[1:] > ids_N[:-1]).all()):
            order = torch.argsort(ids_N)
            ids_N, probs_N_C = ids_N[order], probs_N_C[order.to(self.device)]
        rows_N = self._rows(ids_N)
        new_N = rows_N < 0
        if bool(new_N.any()):
            previous_M = self.dataset_ids_M
            self.dataset_ids_M = torch.cat([previous_M, ids_N[new_N]]).sort().values
            self._index_ids()
            self.stats = self.stats.with_rows(self.dataset_ids_M.shape[0], self._rows(previous_M).to(self.device))
            rows_N = self._rows(ids_N)
        try:
            if ids_N.shape[0] == self.dataset_ids_M.shape[0]:  # sorted, unique, all tracked: row i is sample i
                self.stats.update(0, probs_N_C, None, round_index=round_index)
            else:
                self.stats.update_at(rows_N, probs_N_C, round_index=round_index)
        except HistoryInputError as error:
            raise HistoryInputError(f"history: round {round_index}: {error}") from None
        self.stats.rounds_seen = round_index + 1

    def _index_ids(self) -> None:
        """Dense map dataset index -> state row (-1: untracked): O(1) per lookup, no binary search."""
        size = int(self.dataset_ids_M.max()) + 1 if self.dataset_ids_M.numel() else 0
        self.row_of_id = torch.full((size,), -1, dtype=torch.int64)
        self.row_of_id[self.dataset_ids_M] = torch.arange(self.dataset_ids_M.shape[0])

    def _rows(self, ids_N: torch.Tensor) -> torch.Tensor:
        """State row of each dataset index in ``ids_N``, -1 where untracked."""
        size = self.row_of_id.shape[0]
        if size == 0:
            return torch.full_like(ids_N, -1)
        inside_N = ids_N < size
        if bool(inside_N.all()):
            return self.row_of_id[ids_N]
        return torch.where(inside_N, self.row_of_id[ids_N.clamp(max=size - 1)], -1)

    def view(self, pool_ids_N: torch.Tensor, device: torch.device | str = "cpu") -> TrackedHistory:
        """All recorded rounds aligned to ``pool_ids_N``, with the ready state."""
        return TrackedHistory(self.store.view(pool_ids_N, device), self)

    def ready_rows(self, pool_ids_N: torch.Tensor) -> torch.Tensor | None:
        """The state row of each pool sample; None if a pool sample has no row."""
        rows_N = self._rows(pool_ids_N.detach().to("cpu", torch.int64))
        return None if bool((rows_N < 0).any()) else rows_N

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat dict of tensors: ``dataset_ids``, ``rounds`` and the state's fields as ``stats.<name>``."""
        state = {"dataset_ids": self.dataset_ids_M, "rounds": torch.tensor(self.rounds)}
        if self.stats is not None:
            state.update({f"stats.{name}": tensor.cpu() for name, tensor in self.stats.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from a `state_dict` of the same strategy and parameters (a resumed run)."""
        self.dataset_ids_M = state["dataset_ids"].to(torch.int64)
        self._index_ids()
        self.rounds = int(state["rounds"])
        stats_state = {key.removeprefix("stats."): value for key, value in state.items() if key.startswith("stats.")}
        if self.spec is None:
            self.stats = None
            return
        stats = HistoryStatistics.from_state_dict(stats_state, self.device)
        if not self.spec.keep <= stats.kept or stats.ema_decay != self.spec.ema_decay or stats.trend_window != self.spec.trend_window:
            raise ValueError(
                "history: the saved history state was built for other strategy parameters; "
                f"it keeps {sorted(stats.kept)} with decay={stats.ema_decay}, window={stats.trend_window}"
            )
        self.stats = stats


class TrackedHistory:
    """A `strategies.HistoryView` over the round files that also carries the tracker's ready state."""

    def __init__(self, files: RoundFileHistory, tracker: HistoryTracker):
        self.files = files
        self.tracker = tracker

    @property
    def num_rounds(self) -> int:
        return self.files.num_rounds

    @property
    def num_classes(self) -> int:
        return self.files.num_classes

    @property
    def pool_size(self) -> int:
        return self.files.pool_size

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE, first_round: int = 0) -> Iterator[HistoryChunk]:
        return self.files.iter_chunks(chunk_size, first_round)

    def covers_pool(self, round_index: int) -> bool:
        return self.files.covers_pool(round_index)

    def ready_statistics(
        self, keep: frozenset[str], ema_decay: float, trend_window: int
    ) -> tuple[HistoryStatistics, torch.Tensor | None] | None:
        """(state over the tracked samples, state row of each pool position), if the tracker kept
        what is asked for every recorded round; else None (the strategy makes its own pass)."""
        stats = self.tracker.stats
        if stats is None or self.tracker.rounds != self.num_rounds:
            return None
        if not keep <= stats.kept or stats.ema_decay != ema_decay or stats.trend_window != trend_window:
            return None
        rows_N = self.tracker.ready_rows(self.files.pool_ids_N)
        if rows_N is None:
            return None
        if stats.pool_size == self.pool_size and bool((rows_N[1:] > rows_N[:-1]).all()):
            return stats, None  # the pool is every tracked sample, in the same order
        return stats, rows_N.to(stats.n_observed_N.device)
