"""Datasets for AL runs: one loader per name, all returning an :class:`ALDataset`.

An :class:`ALDataset` holds both splits as CPU tensors, already normalised:

- ``train_x`` ``[N_train, *input_shape]`` float32, ``train_y`` ``[N_train]`` int64;
- ``test_x``  ``[N_test, *input_shape]`` float32,  ``test_y``  ``[N_test]`` int64;

with ``input_shape`` ``(C, H, W)`` for images and ``(F,)`` for feature vectors.
Images are scaled to [0, 1] and standardised per channel with the *train*
split's mean and std (the test split reuses them, so no test statistics leak).

Each dataset carries a content ``fingerprint``: the sha256 of its raw content
(uint8 pixels, int64 labels and all shapes, both splits) computed before
normalisation, so that MLflow runs can tell whether two runs saw the same data.

Files are read without torchvision's dataset classes (they insist on their own
folder layout and on md5 sums); torchvision is used only to download missing
files when ``download=True``. Nothing loops over samples in Python.

Names: ``cifar10``, ``digits``, ``fashion_mnist``, ``mnist``, ``synthetic``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import numbers
import os
import pickle
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.errors import ConfigError, DatasetFormatError, DatasetNotFoundError
from strategies.errors import UnknownNameError

__all__ = [
    "ALDataset",
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DatasetFormatError",
    "dataset_sizes",
    "default_data_root",
    "load_dataset",
    "read_idx",
    "write_cifar10_batches",
    "write_idx",
]

DATASET_NAMES: tuple[str, ...] = ("cifar10", "digits", "fashion_mnist", "mnist", "synthetic")

#: Where Debian's ``dataset-fashion-mnist`` package installs the four ``.gz`` IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# Bumped if the hashing scheme changes, so old and new fingerprints never collide.
_FINGERPRINT_VERSION = b"alsweep-dataset-fingerprint-v1\n"


# --------------------------------------------------------------------------- record


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors element-wise is not equality
class ALDataset:
    """Both splits of one dataset, normalised, on one device.

    ``train_x`` ``[N_train, *input_shape]`` float32, ``train_y`` ``[N_train]`` int64,
    ``test_x`` ``[N_test, *input_shape]`` float32, ``test_y`` ``[N_test]`` int64.
    """

    name: str
    train_x: torch.Tensor = field(repr=False)
    train_y: torch.Tensor = field(repr=False)
    test_x: torch.Tensor = field(repr=False)
    test_y: torch.Tensor = field(repr=False)
    num_classes: int
    input_shape: tuple[int, ...]
    fingerprint: str
    source: str

    def __post_init__(self) -> None:
        # Cheap shape checks only: a mismatch here is a loader bug, not a user error.
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if tuple(x.shape[1:]) != tuple(self.input_shape) or y.shape != (x.shape[0],):
                raise ValueError(
                    f"ALDataset '{self.name}': {split} split has x {tuple(x.shape)} and "
                    f"y {tuple(y.shape)}; expected x (N, {', '.join(map(str, self.input_shape))}) and y (N,)"
                )

    @property
    def train_size(self) -> int:
        """N_train, the number of training samples (the AL pool plus the labelled set)."""
        return int(self.train_y.shape[0])

    @property
    def test_size(self) -> int:
        """N_test, the number of held-out test samples."""
        return int(self.test_y.shape[0])

    def to(self, device: torch.device | str) -> ALDataset:
        """A copy with all four tensors on ``device`` (the same object's fields otherwise)."""
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )


# --------------------------------------------------------------------------- IDX format

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


def write_idx(path: str | os.PathLike, tensor: torch.Tensor) -> Path:
    """Write a uint8 tensor as an IDX file; gzip-compressed when ``path`` ends with ``.gz``.

    The inverse of :func:`read_idx`; used to make small files in the real format.
    """
    path = Path(path)
    if tensor.dtype != torch.uint8 or tensor.dim() == 0:
        raise ValueError(
            f"write_idx: needs a uint8 tensor with at least 1 dimension; got {tensor.dtype} {tuple(tensor.shape)}"
        )
    header = bytes([0, 0, _IDX_UBYTE, tensor.dim()]) + struct.pack(f">{tensor.dim()}I", *tensor.shape)
    data = header + tensor.detach().cpu().contiguous().numpy().tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: same bytes every time
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- helpers


def default_data_root() -> Path:
    """Where downloaded datasets go: ``$ALSWEEP_DATA`` if set, else ``~/.cache/alsweep/data``."""
    env = os.environ.get("ALSWEEP_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "alsweep" / "data"


def _fingerprint(parts: Mapping[str, torch.Tensor]) -> str:
    """sha256 over tagged, shaped raw tensors; byte order fixed so any machine agrees."""
    h = hashlib.sha256(_FINGERPRINT_VERSION)
    for tag, t in parts.items():
        arr = t.detach().cpu().contiguous().numpy()
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        h.update(f"{tag}:{arr.dtype.str}:{tuple(arr.shape)}\n".encode())
        h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return h.hexdigest()


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dim 1) standardisation of float32 ``[N, C, ...]`` with train statistics, in place."""
    dims = (0, *range(2, train.dim()))
    var, mean = torch.var_mean(train, dim=dims, correction=0, keepdim=True)
    std = var.sqrt()
    # A constant channel (possible in tiny or synthetic data) would divide by zero.
    std = torch.where(std > 0, std, torch.ones_like(std))
    return train.sub_(mean).div_(std), test.sub_(mean).div_(std)


def _standardise_uint8(
    train_u8: torch.Tensor, test_u8: torch.Tensor, max_value: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``[N, C, H, W]`` images -> float32, scaled to [0, 1] by ``max_value``, then
    standardised per channel with the train split's mean and std.

    The statistics come from a 256-bin histogram per channel (exact, in float64),
    and the result is one cast plus one in-place multiply-add: on 60k x 28 x 28
    this is several times faster than ``var_mean`` and separate passes.
    """
    channels = train_u8.shape[1]
    levels = torch.arange(256, dtype=torch.float64) / max_value
    mean = torch.empty(channels, dtype=torch.float64)
    std = torch.empty(channels, dtype=torch.float64)
    for c in range(channels):  # C <= 3: a loop over channels, not samples
        hist = torch.bincount(train_u8[:, c].reshape(-1), minlength=256).to(torch.float64)
        total = hist.sum()
        mean[c] = (hist * levels).sum() / total
        std[c] = ((hist * (levels - mean[c]) ** 2).sum() / total).sqrt()
    # A constant channel (possible in tiny data) would divide by zero.
    std = torch.where(std > 0, std, torch.ones_like(std))
    view = (1, channels) + (1,) * (train_u8.dim() - 2)
    scale = (1.0 / (max_value * std)).to(torch.float32).view(view)
    shift = (-mean / std).to(torch.float32).view(view)
    return (
        train_u8.to(torch.float32).mul_(scale).add_(shift),
        test_u8.to(torch.float32).mul_(scale).add_(shift),
    )


def _uint8_image_dataset(
    name: str,
    train_u8: torch.Tensor,
    train_y: torch.Tensor,
    test_u8: torch.Tensor,
    test_y: torch.Tensor,
    max_value: float,
    source: str,
) -> ALDataset:
    """Fingerprint the raw [N, C, H, W] uint8 splits, standardise them, and wrap them in an `ALDataset`."""
    fingerprint = _fingerprint({"train_x": train_u8, "train_y": train_y, "test_x": test_u8, "test_y": test_y})
    train_x, test_x = _standardise_uint8(train_u8, test_u8, max_value)
    return ALDataset(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=10,
        input_shape=tuple(train_x.shape[1:]),
        fingerprint=fingerprint,
        source=source,
    )


def _check_labels(y: torch.Tensor, num_classes: int, where: str) -> torch.Tensor:
    y = y.to(torch.int64)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DatasetFormatError(
            f"{where}: labels must lie in [0, {num_classes - 1}]; found [{int(y.min())}, {int(y.max())}]"
        )
    return y


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _resolve_options(name: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``given``; an unknown key is a ConfigError naming ``dataset.<key>``."""
    for key in given:
        if key not in defaults:
            accepted = ", ".join(sorted(defaults)) or "none"
            raise ConfigError(
                f"dataset.{key}: unknown option for dataset '{name}'; accepted options: {accepted}"
            )
    return {**defaults, **given}


def _need_int(key: str, value: Any, lo: int) -> int:
    if not _is_int(value) or value < lo:
        raise ConfigError(f"dataset.{key} must be an integer >= {lo}; got {value!r}")
    return int(value)


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


def _torchvision_download(class_name: str, target: Path) -> str | None:
    """Try torchvision's downloader; the failure reason as one line, or None on success."""
    try:
        import torchvision.datasets as tvd

        target.mkdir(parents=True, exist_ok=True)
        getattr(tvd, class_name)(root=str(target), download=True)
    except Exception as exc:  # offline, proxy, checksum, disk: all mean "not downloaded"
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"{type(exc).__name__}: {reason}"[:200]
    return None


def _not_found(name: str, looked: list[Path], download_note: str, how_to_get: str) -> DatasetNotFoundError:
    where = ", ".join(str(p) for p in dict.fromkeys(looked))
    return DatasetNotFoundError(f"dataset '{name}' not found (looked in {where}; {download_note}); {how_to_get}")


def _load_idx_dataset(name: str, root: Path | None, download: bool, options: Mapping[str, Any]) -> ALDataset:
    _resolve_options(name, options, {})
    spec = _IDX_SPECS[name]
    files, looked = _locate_idx(spec, root)
    if files is None:
        if download:
            target = root if root is not None else default_data_root()
            failure = _torchvision_download(spec.tv_class, target)
            files, looked2 = _locate_idx(spec, root)
            looked += looked2
            note = f"download to {target} failed: {failure}" if failure else f"download to {target} left no IDX files"
        else:
            note = "download disabled"
        if files is None:
            raise _not_found(name, looked, note, spec.how_to_get)

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
    train_y = _check_labels(raw["train_y"], 10, f"{where} (train labels)")
    test_y = _check_labels(raw["test_y"], 10, f"{where} (test labels)")
    # [N, H, W] uint8 -> [N, 1, H, W]
    return _uint8_image_dataset(
        name, raw["train_x"].unsqueeze(1), train_y, raw["test_x"].unsqueeze(1), test_y, 255.0, where
    )


def _idx_sizes(name: str, root: Path | None, options: Mapping[str, Any]) -> tuple[int, int]:
    _resolve_options(name, options, {})
    spec = _IDX_SPECS[name]
    files, _ = _locate_idx(spec, root)
    if files is None:
        # What a download would fetch; the loader itself reports missing files.
        return spec.full_sizes
    return _read_idx_dims(files["train_y"])[0], _read_idx_dims(files["test_y"])[0]


# --------------------------------------------------------------------------- CIFAR-10

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


def write_cifar10_batches(
    root: str | os.PathLike,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
) -> Path:
    """Write CIFAR-10 pickle batches under ``root/cifar-10-batches-py``; returns that folder.

    ``train_x`` ``[N, 3, 32, 32]`` uint8 is split into 5 ``data_batch_*`` files,
    ``test_x`` ``[M, 3, 32, 32]`` uint8 goes to ``test_batch``; labels are ``[N]``/``[M]`` ints.
    """
    out = Path(root) / _CIFAR_DIR
    out.mkdir(parents=True, exist_ok=True)
    for x in (train_x, test_x):
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError(
                f"write_cifar10_batches: images must be uint8 (N, 3, 32, 32); got {x.dtype} {tuple(x.shape)}"
            )

    def dump(fname: str, x: torch.Tensor, y: torch.Tensor) -> None:
        batch = {
            b"batch_label": fname.encode(),
            b"data": x.cpu().contiguous().numpy().reshape(-1, 3072),
            b"labels": [int(v) for v in y.tolist()],
        }
        with (out / fname).open("wb") as fh:
            pickle.dump(batch, fh, protocol=2)

    chunks = np.array_split(np.arange(train_x.shape[0]), len(_CIFAR_TRAIN))
    for fname, idx in zip(_CIFAR_TRAIN, chunks):
        t = torch.from_numpy(idx)
        dump(fname, train_x[t], train_y[t])
    dump(_CIFAR_TEST[0], test_x, test_y)
    return out


def _load_cifar10(name: str, root: Path | None, download: bool, options: Mapping[str, Any]) -> ALDataset:
    _resolve_options(name, options, {})
    directory, looked = _locate_cifar(root)
    if directory is None:
        if download:
            target = root if root is not None else default_data_root()
            failure = _torchvision_download("CIFAR10", target)
            directory, looked2 = _locate_cifar(root)
            looked += looked2
            note = f"download to {target} failed: {failure}" if failure else f"download to {target} left no batches"
        else:
            note = "download disabled"
        if directory is None:
            raise _not_found(name, looked, note, _CIFAR_HOW)

    train_u8, train_y = _read_cifar_batches(directory, _CIFAR_TRAIN)
    test_u8, test_y = _read_cifar_batches(directory, _CIFAR_TEST)
    if train_u8.shape[0] == 0 or test_u8.shape[0] == 0:
        raise DatasetFormatError(f"{directory}: a split is empty (train {train_u8.shape[0]}, test {test_u8.shape[0]})")
    train_y = _check_labels(train_y, 10, f"{directory} (train labels)")
    test_y = _check_labels(test_y, 10, f"{directory} (test labels)")
    return _uint8_image_dataset(name, train_u8, train_y, test_u8, test_y, 255.0, str(directory))


def _cifar_sizes(name: str, root: Path | None, options: Mapping[str, Any]) -> tuple[int, int]:
    _resolve_options(name, options, {})
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


# --------------------------------------------------------------------------- digits (sklearn)

_DIGITS_DEFAULTS = {"test_fraction": 0.25, "split_seed": 0}


def _digits_options(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = _resolve_options("digits", options, _DIGITS_DEFAULTS)
    f = opts["test_fraction"]
    if not _is_real(f) or not 0.0 < float(f) < 1.0:
        raise ConfigError(f"dataset.test_fraction must be a number in (0, 1); got {f!r}")
    if not _is_int(opts["split_seed"]):
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
    return _uint8_image_dataset(name, x_u8[train], y[train], x_u8[test], y[test], 16.0, "sklearn")


def _digits_sizes(name: str, root: Path | None, options: Mapping[str, Any]) -> tuple[int, int]:
    opts = _digits_options(options)
    _, y = _digits_raw()  # 1797 tiny images: cheaper than duplicating the split rule
    n_test = int(_digits_test_mask(y, opts["test_fraction"], opts["split_seed"]).sum())
    return y.shape[0] - n_test, n_test


# --------------------------------------------------------------------------- synthetic

_SYNTHETIC_DEFAULTS = {
    "num_classes": 4,
    "num_features": 16,
    "train_size": 1200,
    "test_size": 400,
    "class_sep": 2.0,
    "data_seed": 0,
}


def _synthetic_options(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = _resolve_options("synthetic", options, _SYNTHETIC_DEFAULTS)
    out = {
        "num_classes": _need_int("num_classes", opts["num_classes"], 2),
        "num_features": _need_int("num_features", opts["num_features"], 1),
        "train_size": _need_int("train_size", opts["train_size"], 1),
        "test_size": _need_int("test_size", opts["test_size"], 1),
    }
    sep = opts["class_sep"]
    if not _is_real(sep) or not math.isfinite(float(sep)) or float(sep) < 0:
        raise ConfigError(f"dataset.class_sep must be a finite number >= 0; got {sep!r}")
    if not _is_int(opts["data_seed"]) or not 0 <= opts["data_seed"] < 2**63:
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
    fingerprint = _fingerprint({"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y})
    train_x, test_x = _standardise(train_x, test_x)
    return ALDataset(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=c,
        input_shape=(f,),
        fingerprint=fingerprint,
        source="generated",
    )


def _synthetic_sizes(name: str, root: Path | None, options: Mapping[str, Any]) -> tuple[int, int]:
    o = _synthetic_options(options)
    return o["train_size"], o["test_size"]


# --------------------------------------------------------------------------- entry points

_LOADERS: dict[str, Callable[..., ALDataset]] = {
    "cifar10": _load_cifar10,
    "digits": _load_digits,
    "fashion_mnist": _load_idx_dataset,
    "mnist": _load_idx_dataset,
    "synthetic": _load_synthetic,
}
_SIZES: dict[str, Callable[..., tuple[int, int]]] = {
    "cifar10": _cifar_sizes,
    "digits": _digits_sizes,
    "fashion_mnist": _idx_sizes,
    "mnist": _idx_sizes,
    "synthetic": _synthetic_sizes,
}


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES:
        raise UnknownNameError("dataset", name, DATASET_NAMES, key="dataset.name")


def _as_root(root: str | os.PathLike | None) -> Path | None:
    return None if root is None or root == "" else Path(root).expanduser()


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    download: bool = True,
    **options: Any,
) -> ALDataset:
    """Load dataset ``name`` as CPU tensors, normalised with train statistics.

    ``root``: folder holding the files (file datasets only; ignored by
    ``digits`` and ``synthetic``). ``download``: fetch missing files through
    torchvision. ``options``: per-dataset settings (``digits``: test_fraction,
    split_seed; ``synthetic``: num_classes, num_features, train_size,
    test_size, class_sep, data_seed); any other key is a :class:`ConfigError`.

    Raises :class:`UnknownNameError`, :class:`ConfigError`,
    :class:`DatasetNotFoundError` (one line: where it looked, how to get it)
    or :class:`DatasetFormatError` (a corrupt file).
    """
    _check_name(name)
    return _LOADERS[name](name, _as_root(root), bool(download), options)


def dataset_sizes(name: str, *, root: str | os.PathLike | None = None, **options: Any) -> tuple[int, int]:
    """``(N_train, N_test)`` without loading pixels, to validate a config before training.

    Reads IDX headers (MNIST-like), the batches' label lists (CIFAR-10), the
    options (synthetic) or the bundled labels (digits). When the files are
    missing it returns the sizes a download would give; :func:`load_dataset`
    is what reports the missing files.
    """
    _check_name(name)
    return _SIZES[name](name, _as_root(root), options)
