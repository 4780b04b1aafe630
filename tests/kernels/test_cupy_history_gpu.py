"""The fused CuPy history update against the torch update on a GPU: every kept field, dense and masked
rounds, fp16 and fp32 rows, and the same HistoryInputError for bad rows."""

from __future__ import annotations

import pytest
import torch

from kernels import backend
from kernels.history import ALL_FIELDS, SCORES, HistoryInputError, HistoryStatistics

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def needs_cupy():
    if backend.cupy_or_none() is None:
        pytest.skip("CuPy with a CUDA GPU is not available")


def _rounds(num_rounds: int, pool: int, classes: int, dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    for round_index in range(num_rounds):
        probs = torch.softmax(2 * torch.randn(pool, classes, generator=generator), dim=1).to(dtype)
        observed = torch.rand(pool, generator=generator) < 0.8
        yield round_index, probs, observed


def _fold(rounds, pool, classes, state_dtype, backend_name, masked):
    with backend.use_backend(backend_name):
        stats = HistoryStatistics.empty(pool, classes, "cuda", None, 0.7, 4, state_dtype)
        for round_index, probs, observed in rounds:
            stats.update(0, probs.cuda(), observed.cuda() if masked else None, round_index=round_index)
            stats.finish_round()
    return stats


@pytest.mark.parametrize("in_dtype, state_dtype", [
    (torch.float32, torch.float32), (torch.float16, torch.float16), (torch.float32, torch.float16),
])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("classes", [2, 10, 100])
def test_fused_update_equals_torch(in_dtype, state_dtype, masked, classes):
    pool = 20_000
    rounds = list(_rounds(6, pool, classes, in_dtype, seed=classes))
    fused = _fold(rounds, pool, classes, state_dtype, "cupy", masked)
    reference = _fold(rounds, pool, classes, state_dtype, "torch", masked)
    assert fused.kept == reference.kept == ALL_FIELDS
    for name, tensor in reference.tensors().items():
        torch.testing.assert_close(getattr(fused, name).cpu(), tensor.cpu(), rtol=1e-5, atol=1e-6, msg=name)
    for score, function in SCORES.items():
        torch.testing.assert_close(function(fused).cpu(), function(reference).cpu(), rtol=1e-5, atol=1e-6, msg=score)


def test_update_at_with_row_indices_equals_torch():
    pool, classes = 5_000, 10
    generator = torch.Generator().manual_seed(1)
    rows = torch.randperm(pool, generator=generator)[:1_000]
    probs = torch.softmax(torch.randn(1_000, classes, generator=generator), dim=1)
    states = {}
    for name in ("cupy", "torch"):
        with backend.use_backend(name):
            stats = HistoryStatistics.empty(pool, classes, "cuda")
            stats.update_at(rows.cuda(), probs.cuda(), round_index=0)
            stats.update_at(rows.cuda(), probs.flip(1).cuda(), round_index=1)
            states[name] = stats
    for name, tensor in states["torch"].tensors().items():
        torch.testing.assert_close(getattr(states["cupy"], name).cpu(), tensor.cpu(), msg=name)


@pytest.mark.parametrize("bad, message", [
    (float("nan"), "finite"), (0.5, "sum to 1"), (-0.25, "non-negative"),
])
def test_bad_rows_raise_the_same_error(bad, message):
    probs = torch.full((100, 4), 0.25)
    probs[17, 0] = bad
    if bad == -0.25:
        probs[17, 1] = 0.75
    with backend.use_backend("cupy"):
        stats = HistoryStatistics.empty(100, 4, "cuda")
        with pytest.raises(HistoryInputError, match=message):
            stats.update(0, probs.cuda())


def test_blocks_are_sized_from_the_free_memory(monkeypatch):
    import kernels.chunking as chunking
    from kernels.history import rows_per_block

    stats = HistoryStatistics.empty(10_000, 10, "cuda")
    assert 1 <= rows_per_block(stats) <= 2**22
    monkeypatch.setattr(chunking, "free_memory_bytes", lambda device: 4_000_000)
    row_bytes = sum(t[0].numel() * t.element_size() for t in stats.tensors().values()) + 8 * 4 * 10
    assert rows_per_block(stats) == int(4_000_000 * chunking.FREE_MEMORY_SHARE) // row_bytes
