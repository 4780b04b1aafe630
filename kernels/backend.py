"""Which implementation runs a kernel: torch (any device) or a fused CuPy kernel (CUDA only).

``kernels.backend`` in the config (and the ``backend`` argument of the dispatching
kernels) takes one of `BACKENDS`:

- ``auto``: the fused CuPy kernel where one exists for that kernel, the tensor is on a
  CUDA device, CuPy with a working CUDA runtime is importable and the input is one the
  fused kernel takes (float32, C within its limit); torch otherwise;
- ``torch``: always torch, on whatever device the tensors live;
- ``cupy``: the fused CuPy kernel, and a one-line `BackendError` where it cannot run
  (no CuPy, no CUDA, a CPU tensor, or a kernel that has no CuPy implementation).

The process-wide default is set with `set_backend` (the runner does this from the
config) or for a block with `use_backend`; strategies stay pure functions and never
see it. `dispatch_table` lists, per kernel, the backends that exist.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from typing import Any

import torch

BACKENDS = ("auto", "torch", "cupy")

#: Kernels with a fused CuPy implementation in `kernels.cupy_kernels` (the rest are torch only).
CUPY_KERNELS = (
    "entropy",
    "least_confidence",
    "margin",
    "ratio",
    "bald",
    "mean_std",
    "variation_ratio",
    "k_center_update",
    "history_update",
)
#: Kernels that exist in torch only, listed so the dispatch table shows the whole catalogue.
TORCH_ONLY_KERNELS = ("k_center_initial_distances", "history_scores")

_backend: contextvars.ContextVar[str] = contextvars.ContextVar("alsweep_kernels_backend", default="auto")


class BackendError(ValueError):
    """A backend was asked for that does not exist or cannot run here; the message is one line."""


def check_backend_name(name: object, key: str = "kernels.backend") -> str:
    if name not in BACKENDS:
        raise BackendError(f"{key} must be one of {', '.join(BACKENDS)}; got {name!r}")
    return str(name)


def set_backend(name: str) -> None:
    """Set the process-wide default backend (``auto`` unless changed)."""
    _backend.set(check_backend_name(name))


def current_backend() -> str:
    return _backend.get()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block with another default backend."""
    token = _backend.set(check_backend_name(name))
    try:
        yield
    finally:
        _backend.reset(token)


@functools.lru_cache(maxsize=1)
def cupy_or_none() -> Any:
    """The ``cupy`` module if it imports and sees a CUDA device, else None (cached: probing is slow)."""
    try:
        import cupy
    except Exception:  # noqa: BLE001 - a broken or missing CuPy install means the same: no CuPy
        return None
    try:
        return cupy if cupy.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - e.g. a driver too old for this CuPy
        return None


def resolve(kernel: str, tensor: torch.Tensor, backend: str | None = None, fusable: bool = True) -> str:
    """``"torch"`` or ``"cupy"`` for one call of ``kernel`` on ``tensor``.

    Args:
        backend: this call's choice; None means the process default (`set_backend`).
        fusable: whether the fused kernel takes this input (dtype, sizes); ``auto`` then
            falls back to torch, an explicit ``cupy`` converts or fails in the caller.
    """
    choice = check_backend_name(backend if backend is not None else _backend.get())
    if choice == "torch":
        return "torch"
    has_cupy_kernel = kernel in CUPY_KERNELS
    if choice == "auto":
        usable = has_cupy_kernel and fusable and tensor.is_cuda and cupy_or_none() is not None
        return "cupy" if usable else "torch"
    if not has_cupy_kernel:
        raise BackendError(
            f"kernels.backend=cupy: kernel '{kernel}' has no CuPy implementation "
            f"(CuPy kernels: {', '.join(CUPY_KERNELS)}); use kernels.backend=auto or torch"
        )
    if not tensor.is_cuda:
        raise BackendError(
            f"kernels.backend=cupy needs CUDA tensors; '{kernel}' got a tensor on {tensor.device} "
            "(set device=cuda, or kernels.backend=auto)"
        )
    if cupy_or_none() is None:
        raise BackendError(
            "kernels.backend=cupy needs CuPy with a CUDA GPU; install the extra 'alsweep[gpu]' "
            "(cupy-cuda13x) or use kernels.backend=auto"
        )
    return "cupy"


def dispatch_table() -> dict[str, tuple[str, ...]]:
    """Per kernel, the backends that implement it."""
    table = {name: ("torch", "cupy") for name in CUPY_KERNELS}
    table.update({name: ("torch",) for name in TORCH_ONLY_KERNELS})
    return dict(sorted(table.items()))
