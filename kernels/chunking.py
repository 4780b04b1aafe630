"""Chunking along the pool dimension N, the one place chunk sizes are decided."""

from __future__ import annotations

from collections.abc import Iterator

import torch

#: Rows per chunk where a caller streams [n, C] blocks (history rounds, input checks):
#: 65,536 rows x 100 classes x 4 bytes = 26 MB, bounded whatever N is.
DEFAULT_CHUNK_SIZE = 65_536

#: Elements per chunk for the scoring kernels. On a CPU, blocks that stay in cache are several
#: times faster (measured: BALD on [50k, 20, 10] took 9 ms in 4k-row chunks, 48 ms in 64k-row
#: chunks); on a GPU, big blocks amortise kernel launches.
CHUNK_ELEMENTS = {"cpu": 2**19, "cuda": 2**24}


def chunk_slices(n: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[slice]:
    """Yield consecutive slices covering ``range(n)``, each at most ``chunk_size`` long."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size}")
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def rows_per_chunk(values: torch.Tensor, chunk_size: int | None = None) -> int:
    """``chunk_size`` if given, else as many rows of ``values`` as fit the device's element budget."""
    if chunk_size is not None:
        return chunk_size
    row_elements = max(1, values[0].numel()) if values.shape[0] else 1
    budget = CHUNK_ELEMENTS.get(values.device.type, CHUNK_ELEMENTS["cuda"])
    return max(1, budget // row_elements)
