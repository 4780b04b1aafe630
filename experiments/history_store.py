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
from strategies import HistoryChunk

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

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[HistoryChunk]:
        for round_index, path in enumerate(self.files):
            record = torch.load(path, mmap=True, weights_only=True)
            ids_M, probs_M_C = record["dataset_ids"], record["probs"]
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
