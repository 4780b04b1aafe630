"""Every CUDA source compiles with NVRTC for Hopper (compute_90) - no GPU or driver needed.

CI installs the ``gpu`` extra (cupy-cuda13x, which finds NVRTC in torch's CUDA wheels), so
a syntax or type error in a kernel fails CI even though CI never runs one.
"""

from __future__ import annotations

import os

import pytest

from kernels import cupy_kernels


def _nvrtc_or_skip():
    try:
        from cupy_backends.cuda.libs import nvrtc  # noqa: F401
    except Exception as error:  # noqa: BLE001
        if os.environ.get("CI"):
            raise  # CI installs the gpu extra: a missing NVRTC there is a set-up bug, not a skip
        pytest.skip(f"CuPy/NVRTC not installed here ({error}); install alsweep[gpu]")


def test_every_source_compiles_for_hopper():
    _nvrtc_or_skip()
    sizes = cupy_kernels.compile_all_sources("compute_90")
    assert set(sizes) == {name for name, _, _ in cupy_kernels.sources()}
    assert all(size > 1000 for size in sizes.values())


@pytest.mark.parametrize("num_classes", [2, 10, 100, cupy_kernels.MAX_FUSED_CLASSES])
def test_mc_scores_compiles_for_every_class_count(num_classes, monkeypatch):
    _nvrtc_or_skip()
    monkeypatch.setattr(
        cupy_kernels, "sources",
        lambda: iter([("mc_scores", cupy_kernels._mc_source(num_classes), ("mc_scores",))]),
    )
    assert cupy_kernels.compile_all_sources()["mc_scores"] > 1000


def test_a_broken_source_fails_with_the_nvrtc_log(monkeypatch):
    _nvrtc_or_skip()
    broken = cupy_kernels.UNCERTAINTY_SOURCE.replace("float score;", "flot score;")
    monkeypatch.setattr(cupy_kernels, "UNCERTAINTY_SOURCE", broken)
    with pytest.raises(RuntimeError, match=r"NVRTC could not compile uncertainty_scores.cu: .*identifier \"flot\""):
        cupy_kernels.compile_all_sources()


@pytest.mark.parametrize("num_classes", [2, 10, cupy_kernels.MAX_FUSED_CLASSES])
def test_history_update_compiles_for_every_class_count_and_precision(num_classes, monkeypatch):
    _nvrtc_or_skip()
    variants = [
        (f"history_{num_classes}_{in_half}{state_half}", cupy_kernels._history_source(num_classes, in_half, state_half),
         ("history_check", "history_update"))
        for in_half in (0, 1) for state_half in (0, 1)
    ]
    monkeypatch.setattr(cupy_kernels, "sources", lambda: iter(variants))
    sizes = cupy_kernels.compile_all_sources()
    assert len(sizes) == 4 and all(size > 1000 for size in sizes.values())
