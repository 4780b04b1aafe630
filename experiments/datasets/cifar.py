"""CIFAR-10 from the official Python pickle batches (``cifar-10-batches-py/``)."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.datasets.base import (
    ALDataset,
    check_labels,
    default_data_root,
    not_found_error,
    torchvision_download,
    uint8_image_dataset,
)
from experiments.datasets.registry import register_dataset
from experiments.errors import DatasetFormatError


_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)
_CIFAR_HOW = (
    "set dataset.root to a folder holding cifar-10-batches-py/ (data_batch_1..5, test_batch), "
    "or allow dataset.download=true with internet"
)


def _cifar_candidate_dirs(root: Path | None) -> list[Path]:
    if root is not None:
        return [root / _CIFAR_DIR, root]
    return [default_data_root() / _CIFAR_DIR]


def _locate_cifar(root: Path | None) -> tuple[Path | None, list[Path]]:
    dirs = _cifar_candidate_dirs(root)
    for d in dirs:
        if all((d / f).is_file() for f in _CIFAR_TRAIN + _CIFAR_TEST):
            return d, dirs
    return None, dirs


def _read_cifar_batches(directory: Path, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, 3, 32, 32]`` uint8 images and ``[n]`` int64 labels from CIFAR-10 pickle batches.

    The batches are Python pickles (the official format); only load files you trust.
    """
    xs, ys = [], []
    for fname in names:
        path = directory / fname
        try:
            with path.open("rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetFormatError(
                f"{path}: not a CIFAR-10 batch (a pickled dict with b'data' and b'labels'): "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],):
            raise DatasetFormatError(
                f"{path}: b'data' is {data.shape} and b'labels' has {labels.shape[0] if labels.ndim else 0} "
                "entries; expected (n, 3072) and n"
            )
        xs.append(data.reshape(-1, 3, 32, 32))  # rows are channel-major: R plane, G plane, B plane
        ys.append(labels)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

def _load_cifar10(name: str, root: Path | None, download: bool, options: Mapping[str, Any]) -> ALDataset:
    directory, looked = _locate_cifar(root)
    if directory is None:
        if download:
            target = root if root is not None else default_data_root()
            failure = torchvision_download("CIFAR10", target)
            directory, looked2 = _locate_cifar(root)
            looked += looked2
            note = f"download to {target} failed: {failure}" if failure else f"download to {target} left no batches"
        else:
            note = "download disabled"
        if directory is None:
            raise not_found_error(name, looked, note, _CIFAR_HOW)

    train_u8, train_y = _read_cifar_batches(directory, _CIFAR_TRAIN)
    test_u8, test_y = _read_cifar_batches(directory, _CIFAR_TEST)
    if train_u8.shape[0] == 0 or test_u8.shape[0] == 0:
        raise DatasetFormatError(f"{directory}: a split is empty (train {train_u8.shape[0]}, test {test_u8.shape[0]})")
    train_y = check_labels(train_y, 10, f"{directory} (train labels)")
    test_y = check_labels(test_y, 10, f"{directory} (test labels)")
    return uint8_image_dataset(name, train_u8, train_y, test_u8, test_y, 255.0, str(directory))


def _cifar_sizes(name: str, root: Path | None, options: Mapping[str, Any]) -> tuple[int, int]:
    directory, _ = _locate_cifar(root)
    if directory is None:
        return 50000, 10000
    # Pickles have no header to peek at; their labels are what we count (well under a second).
    sizes = []
    for names in (_CIFAR_TRAIN, _CIFAR_TEST):
        n = 0
        for fname in names:
            with (directory / fname).open("rb") as fh:
                n += len(pickle.load(fh, encoding="bytes")[b"labels"])
        sizes.append(n)
    return sizes[0], sizes[1]



register_dataset(
    name="cifar10",
    description="CIFAR-10 32x32 colour, 10 classes (pickle batches under dataset.root, or download)",
    sizes=_cifar_sizes,
)(_load_cifar10)
