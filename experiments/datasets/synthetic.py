"""``synthetic``: seeded Gaussian blobs, the same tensors in any process (for smoke runs and tests)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from experiments.datasets.base import ALDataset, is_int, is_real, need_int, resolve_options, standardise, standardised_dataset
from experiments.datasets.registry import register_dataset
from experiments.errors import ConfigError


_SYNTHETIC_DEFAULTS = {
    "num_classes": 4,
    "num_features": 16,
    "train_size": 1200,
    "test_size": 400,
    "class_sep": 2.0,
    "data_seed": 0,
}


def _synthetic_options(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = resolve_options("synthetic", options, _SYNTHETIC_DEFAULTS)
    out = {
        "num_classes": need_int("num_classes", opts["num_classes"], 2),
        "num_features": need_int("num_features", opts["num_features"], 1),
        "train_size": need_int("train_size", opts["train_size"], 1),
        "test_size": need_int("test_size", opts["test_size"], 1),
    }
    sep = opts["class_sep"]
    if not is_real(sep) or not math.isfinite(float(sep)) or float(sep) < 0:
        raise ConfigError(f"dataset.class_sep must be a finite number >= 0; got {sep!r}")
    if not is_int(opts["data_seed"]) or not 0 <= opts["data_seed"] < 2**63:
        raise ConfigError(f"dataset.data_seed must be an integer in [0, 2**63); got {opts['data_seed']!r}")
    out["class_sep"] = float(sep)
    out["data_seed"] = int(opts["data_seed"])
    return out


def _derived_generator(seed: int, purpose: str) -> torch.Generator:
    # Separate streams per split: the test set must not change when train_size does.
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _load_synthetic(name: str, root: Path | None, download: bool, options: Mapping[str, Any]) -> ALDataset:
    """Gaussian blobs: class centres at distance ``class_sep`` from the origin, unit noise.

    Labels are balanced (``arange(n) % C``, shuffled). Same options, same tensors,
    in any process: every draw uses its own seeded ``torch.Generator``.
    """
    o = _synthetic_options(options)
    c, f = o["num_classes"], o["num_features"]
    centres = torch.randn(c, f, generator=_derived_generator(o["data_seed"], "centres"))
    centres = o["class_sep"] * centres / centres.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def draw(n: int, purpose: str) -> tuple[torch.Tensor, torch.Tensor]:
        g = _derived_generator(o["data_seed"], purpose)
        y = (torch.arange(n) % c)[torch.randperm(n, generator=g)]
        return centres[y] + torch.randn(n, f, generator=g), y

    train_x, train_y = draw(o["train_size"], "train")
    test_x, test_y = draw(o["test_size"], "test")
    return standardised_dataset(name, train_x, train_y, test_x, test_y, standardise, num_classes=c, source="generated")


def _synthetic_sizes(name: str, root: Path | None, options: Mapping[str, Any]) -> tuple[int, int]:
    o = _synthetic_options(options)
    return o["train_size"], o["test_size"]



register_dataset(
    name="synthetic",
    defaults=_SYNTHETIC_DEFAULTS,
    description="seeded Gaussian blobs (feature vectors), for smoke runs and tests",
    sizes=_synthetic_sizes,
)(_load_synthetic)
