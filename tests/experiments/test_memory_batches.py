"""`map_batches`: forward passes in batches that fit the memory a shared GPU has free.

The GPU behaviour (measuring the first batch, the free-memory cap) is exercised here through
its two seams: the out-of-memory error, which any device can raise, and the free-memory query.
"""

from __future__ import annotations

import pytest
import torch

import kernels.chunking as chunking
from experiments.inference import map_batches


def test_batches_cover_the_rows_in_order():
    x = torch.arange(10.0).unsqueeze(1)
    sizes = []
    parts = map_batches(lambda batch: (sizes.append(batch.shape[0]), batch * 2)[1], x, 4)
    assert sizes == [4, 4, 2]
    assert torch.equal(torch.cat(parts), x * 2)
    assert map_batches(lambda batch: batch, x[:0], 4) == []


def test_an_out_of_memory_batch_is_halved_and_retried():
    x = torch.arange(100.0).unsqueeze(1)
    tried = []

    def fits_16_rows(batch):
        tried.append(batch.shape[0])
        if batch.shape[0] > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch + 1

    parts = map_batches(fits_16_rows, x, 64)
    assert tried[:3] == [64, 32, 16] and set(tried[3:]) <= {16, 4}
    assert torch.equal(torch.cat(parts), x + 1)


def test_one_row_that_does_not_fit_is_the_error():
    def never_fits(batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        map_batches(never_fits, torch.zeros(8, 1), 4)


def test_rows_are_capped_by_a_share_of_the_free_memory(monkeypatch):
    monkeypatch.setattr(chunking, "free_memory_bytes", lambda device: 4_000_000)
    # 25% of 4 MB at 1,000 bytes a row: 1,000 rows, below the requested 4,096
    assert chunking.rows_fitting_free_memory(torch.device("cuda"), 1_000, 4_096) == 1_000
    assert chunking.rows_fitting_free_memory(torch.device("cuda"), 1_000, 500) == 500
    assert chunking.rows_fitting_free_memory(torch.device("cuda"), 10**9, 500) == 1
    monkeypatch.setattr(chunking, "free_memory_bytes", lambda device: None)
    assert chunking.rows_fitting_free_memory(torch.device("cpu"), 10**9, 500) == 500


def test_history_blocks_on_a_cpu_stay_cache_sized():
    from kernels.history import HistoryStatistics, rows_per_block

    assert rows_per_block(HistoryStatistics.empty(1_000, 10)) == 32_768
