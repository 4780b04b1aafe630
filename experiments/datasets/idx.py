"""MNIST-like datasets in the IDX format: ``fashion_mnist`` and ``mnist``.

Files are read without torchvision's dataset classes (they insist on their own
folder layout and on md5 sums); torchvision is used only to download missing
files when ``download=True``. Plain and gzip files are both accepted, detected
by content. Nothing loops over samples in Python.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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

#: Where Debian's ``dataset-fashion-mnist`` package installs the four ``.gz`` IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


# Only unsigned bytes: the element type of every image and label IDX file in use.
_IDX_UBYTE = 0x08


def _maybe_gunzip(raw: bytes, path: Path) -> bytes:
    # Detect gzip by content, not by suffix: files get renamed, and both forms occur.
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetFormatError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def _parse_idx_header(head: bytes, path: Path) -> tuple[tuple[int, ...], int]:
    """Dims and header length from the first bytes of an IDX file."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DatasetFormatError(
            f"{path}: not an IDX file (magic number 0x{head[:4].hex() or 'empty'}; "
            "expected 0x0000 followed by a type byte and a dimension count)"
        )
    dtype_code, ndim = head[2], head[3]
    if dtype_code != _IDX_UBYTE:
        raise DatasetFormatError(
            f"{path}: IDX element type 0x{dtype_code:02x} is not supported; only 0x08 (unsigned byte)"
        )
    if ndim == 0:
        raise DatasetFormatError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(head) < header_len:
        raise DatasetFormatError(
            f"{path}: truncated IDX header ({len(head)} bytes; {header_len} needed for {ndim} dimensions)"
        )
    dims = struct.unpack(f">{ndim}I", head[4:header_len])
    return dims, header_len


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file (plain or gzip) into a uint8 tensor of the shape its header gives.

    Image files give ``[N, H, W]``, label files ``[N]``. Raises
    :class:`DatasetFormatError` on a bad magic number, an unsupported element
    type, or a data section that is shorter or longer than the header says.
    """
    path = Path(path)
    raw = _maybe_gunzip(path.read_bytes(), path)
    dims, header_len = _parse_idx_header(raw[:1024], path)  # a header is at most 4 + 4 * 255 bytes
    expected = math.prod(dims)
    found = len(raw) - header_len
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DatasetFormatError(
            f"{path}: IDX file {what}: header says shape {tuple(dims)} = {expected} bytes of data, found {found}"
        )
    # copy(): torch refuses to wrap read-only buffers without a warning.
    arr = np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header_len).reshape(dims).copy()
    return torch.from_numpy(arr)


def _read_idx_dims(path: Path) -> tuple[int, ...]:
    """Only the dims from an IDX header: reads a few bytes, never the pixels."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    try:
        opener: Callable[..., Any] = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) == 4:
                head += fh.read(4 * head[3])
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetFormatError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    return _parse_idx_header(head, path)[0]


# --------------------------------------------------------------------------- MNIST-like (IDX)

_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class _IdxSpec:
    tv_folder: str  # torchvision's folder name: <root>/<tv_folder>/raw/
    tv_class: str  # torchvision.datasets class used only to download
    system_dirs: tuple[Callable[[], str], ...]  # distribution packages, looked up at call time
    how_to_get: str
    full_sizes: tuple[int, int]


_IDX_SPECS = {
    "fashion_mnist": _IdxSpec(
        tv_folder="FashionMNIST",
        tv_class="FashionMNIST",
        # A lambda so that the module constant can be patched (tests, other distributions).
        system_dirs=(lambda: DEBIAN_FASHION_MNIST_DIR,),
        how_to_get=(
            "apt-get install dataset-fashion-mnist, or set dataset.root to a folder with the IDX files, "
            "or allow dataset.download=true with internet"
        ),
        full_sizes=(60000, 10000),
    ),
    "mnist": _IdxSpec(
        tv_folder="MNIST",
        tv_class="MNIST",
        system_dirs=(),
        how_to_get=(
            "set dataset.root to a folder with the IDX files (train-images-idx3-ubyte[.gz], ...), "
            "or allow dataset.download=true with internet"
        ),
        full_sizes=(60000, 10000),
    ),
}


def _idx_candidate_dirs(spec: _IdxSpec, root: Path | None) -> list[Path]:
    if root is not None:
        # An explicit root is the only place looked at: silently reading other data would be worse.
        return [root, root / spec.tv_folder / "raw"]
    return [Path(d()) for d in spec.system_dirs] + [default_data_root() / spec.tv_folder / "raw"]


def _find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in ``directory`` (plain preferred over .gz: faster to read), or None."""
    found = {}
    for key, stem in _IDX_FILES.items():
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def _locate_idx(spec: _IdxSpec, root: Path | None) -> tuple[dict[str, Path] | None, list[Path]]:
    dirs = _idx_candidate_dirs(spec, root)
    for d in dirs:
        files = _find_idx_files(d)
        if files is not None:
            return files, dirs
    return None, dirs

def _load_idx_dataset(name: str, root: Path | None, download: bool, options: Mapping[str, Any]) -> ALDataset:
    spec = _IDX_SPECS[name]
    files, looked = _locate_idx(spec, root)
    if files is None:
        if download:
            target = root if root is not None else default_data_root()
            failure = torchvision_download(spec.tv_class, target)
            files, looked2 = _locate_idx(spec, root)
            looked += looked2
            note = f"download to {target} failed: {failure}" if failure else f"download to {target} left no IDX files"
        else:
            note = "download disabled"
        if files is None:
            raise not_found_error(name, looked, note, spec.how_to_get)

    raw = {key: read_idx(path) for key, path in files.items()}
    where = str(files["train_x"].parent)
    for split in ("train", "test"):
        x, y = raw[f"{split}_x"], raw[f"{split}_y"]
        if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise DatasetFormatError(
                f"{where}: {split} images {tuple(x.shape)} and labels {tuple(y.shape)} do not match; "
                "expected images (N, H, W) and labels (N,) with N > 0"
            )
    if raw["train_x"].shape[1:] != raw["test_x"].shape[1:]:
        raise DatasetFormatError(
            f"{where}: train images are {tuple(raw['train_x'].shape[1:])} but test images "
            f"{tuple(raw['test_x'].shape[1:])}"
        )
    train_y = check_labels(raw["train_y"], 10, f"{where} (train labels)")
    test_y = check_labels(raw["test_y"], 10, f"{where} (test labels)")
    # [N, H, W] uint8 -> [N, 1, H, W]
    return uint8_image_dataset(
        name, raw["train_x"].unsqueeze(1), train_y, raw["test_x"].unsqueeze(1), test_y, 255.0, where
    )


def _idx_sizes(name: str, root: Path | None, options: Mapping[str, Any]) -> tuple[int, int]:
    spec = _IDX_SPECS[name]
    files, _ = _locate_idx(spec, root)
    if files is None:
        # What a download would fetch; the loader itself reports missing files.
        return spec.full_sizes
    return _read_idx_dims(files["train_y"])[0], _read_idx_dims(files["test_y"])[0]



register_dataset(
    name="fashion_mnist",
    description="Fashion-MNIST 28x28 grey, 10 classes (Debian's dataset-fashion-mnist, dataset.root, or download)",
    sizes=_idx_sizes,
)(_load_idx_dataset)
register_dataset(
    name="mnist",
    description="MNIST 28x28 grey, 10 classes (IDX files under dataset.root, or download)",
    sizes=_idx_sizes,
)(_load_idx_dataset)
