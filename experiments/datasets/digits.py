"""scikit-learn's bundled 8x8 ``digits`` (no download), split by a seeded stratified rule."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.datasets.base import ALDataset, is_int, is_real, resolve_options, uint8_image_dataset
from experiments.datasets.registry import register_dataset
from experiments.errors import ConfigError


_DIGITS_DEFAULTS = {"test_fraction": 0.25, "split_seed": 0}


def _digits_options(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = resolve_options("digits", options, _DIGITS_DEFAULTS)
    f = opts["test_fraction"]
    if not is_real(f) or not 0.0 < float(f) < 1.0:
        raise ConfigError(f"dataset.test_fraction must be a number in (0, 1); got {f!r}")
    if not is_int(opts["split_seed"]):
        raise ConfigError(f"dataset.split_seed must be an integer; got {opts['split_seed']!r}")
    return {"test_fraction": float(f), "split_seed": int(opts["split_seed"])}


def _digits_test_mask(y: torch.Tensor, test_fraction: float, split_seed: int) -> torch.Tensor:
    """Seeded stratified split of ``y`` ``[N]``: a bool mask ``[N]``, True for test samples.

    Each class sends round(fraction * n_c) of its samples to test, clamped so
    every class keeps at least one sample in both splits. Pure torch, so the
    split does not change with the installed scikit-learn.
    """
    n = y.shape[0]
    num_classes = int(y.max()) + 1
    g = torch.Generator().manual_seed(split_seed)
    perm = torch.randperm(n, generator=g)
    # Group the shuffled samples by class, keeping the shuffled order within a class.
    order = perm[torch.sort(y[perm], stable=True).indices]
    y_sorted = y[order]
    counts = torch.bincount(y, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[y_sorted]
    k = torch.floor(counts.to(torch.float64) * test_fraction + 0.5).to(torch.int64)
    k = torch.minimum(torch.clamp(k, min=1), counts - 1)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order] = rank < k[y_sorted]
    return mask


def _digits_raw() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    x, y = load_digits(return_X_y=True)
    # Pixel values are 0..16 integers stored as float64; uint8 is their raw form.
    return torch.from_numpy(x.astype(np.uint8).reshape(-1, 1, 8, 8)), torch.from_numpy(y.astype(np.int64))


def _load_digits(name: str, root: Path | None, download: bool, options: Mapping[str, Any]) -> ALDataset:
    opts = _digits_options(options)
    x_u8, y = _digits_raw()
    test = _digits_test_mask(y, opts["test_fraction"], opts["split_seed"])
    train = ~test
    return uint8_image_dataset(name, x_u8[train], y[train], x_u8[test], y[test], 16.0, "sklearn")


def _digits_sizes(name: str, root: Path | None, options: Mapping[str, Any]) -> tuple[int, int]:
    opts = _digits_options(options)
    _, y = _digits_raw()  # 1797 tiny images: cheaper than duplicating the split rule
    n_test = int(_digits_test_mask(y, opts["test_fraction"], opts["split_seed"]).sum())
    return y.shape[0] - n_test, n_test



register_dataset(
    name="digits",
    defaults=_DIGITS_DEFAULTS,
    description="scikit-learn's 8x8 digits, 10 classes, bundled (seeded stratified split)",
    sizes=_digits_sizes,
)(_load_digits)
