"""Chunking along the pool dimension N, the one place its size is decided."""

from __future__ import annotations

from collections.abc import Iterator

#: Rows per chunk. 65,536 rows x 100 classes x 4 bytes = 26 MB per [n, C] block,
#: small enough for any GPU or laptop, large enough to amortise kernel launches.
DEFAULT_CHUNK_SIZE = 65_536


def chunk_slices(n: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[slice]:
    """Yield consecutive slices covering ``range(n)``, each at most ``chunk_size`` long."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size}")
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))
