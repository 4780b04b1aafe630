"""Shared fixtures and the GPU marker's skip rule."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def random_probs(num_rows: int, num_classes: int, seed: int, sharpness: float = 2.0, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = sharpness * torch.randn(num_rows, num_classes, generator=generator, dtype=torch.float64)
    return torch.softmax(logits, dim=-1).to(dtype)


@pytest.fixture
def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
