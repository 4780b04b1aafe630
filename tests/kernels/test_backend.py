"""Backend dispatch on a machine without a GPU: names, defaults, and one-line errors."""

from __future__ import annotations

import pytest
import torch

from kernels import backend


def test_auto_and_torch_pick_torch_for_cpu_tensors():
    cpu = torch.zeros(3, 2)
    for kernel in backend.CUPY_KERNELS:
        assert backend.resolve(kernel, cpu, "auto") == "torch"
        assert backend.resolve(kernel, cpu, "torch") == "torch"


def test_unknown_backend_names_the_key_and_the_choices():
    with pytest.raises(backend.BackendError, match=r"^kernels.backend must be one of auto, torch, cupy; got 'cuda'$"):
        backend.resolve("entropy", torch.zeros(2, 2), "cuda")
    with pytest.raises(backend.BackendError, match="kernels.backend must be one of"):
        backend.set_backend("fast")


def test_cupy_on_a_cpu_tensor_is_one_line():
    with pytest.raises(backend.BackendError) as raised:
        backend.resolve("bald", torch.zeros(2, 2, 2), "cupy")
    assert "needs CUDA tensors" in str(raised.value) and "\n" not in str(raised.value)


def test_cupy_without_cupy_is_one_line(monkeypatch):
    class FakeCudaTensor:
        is_cuda = True
        device = "cuda:0"

    monkeypatch.setattr(backend, "cupy_or_none", lambda: None)
    with pytest.raises(backend.BackendError, match=r"needs CuPy with a CUDA GPU; install the extra 'alsweep\[gpu\]'"):
        backend.resolve("entropy", FakeCudaTensor(), "cupy")
    # auto quietly falls back
    assert backend.resolve("entropy", FakeCudaTensor(), "auto") == "torch"


def test_cupy_for_a_torch_only_kernel_names_the_kernels_that_have_one():
    with pytest.raises(backend.BackendError, match="kernel 'history_scores' has no CuPy implementation"):
        backend.resolve("history_scores", torch.zeros(2), "cupy")


def test_auto_picks_cupy_only_when_everything_fits(monkeypatch):
    class FakeCudaTensor:
        is_cuda = True

    monkeypatch.setattr(backend, "cupy_or_none", lambda: object())
    assert backend.resolve("margin", FakeCudaTensor(), "auto") == "cupy"
    assert backend.resolve("margin", FakeCudaTensor(), "auto", fusable=False) == "torch"
    assert backend.resolve("history_scores", FakeCudaTensor(), "auto") == "torch"


def test_process_default_and_block_override():
    assert backend.current_backend() == "auto"
    with backend.use_backend("torch"):
        assert backend.current_backend() == "torch"
        assert backend.resolve("entropy", torch.zeros(1, 2)) == "torch"
    assert backend.current_backend() == "auto"


def test_dispatch_table_lists_every_kernel_with_torch():
    table = backend.dispatch_table()
    assert set(backend.CUPY_KERNELS) | set(backend.TORCH_ONLY_KERNELS) == set(table)
    assert all("torch" in backends for backends in table.values())
    assert all(table[name] == ("torch", "cupy") for name in backend.CUPY_KERNELS)


def test_cupy_or_none_is_none_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    backend.cupy_or_none.cache_clear()
    assert backend.cupy_or_none() is None
