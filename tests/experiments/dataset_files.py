"""Writers of small dataset files in the real formats (IDX, CIFAR-10 pickle batches), for tests only.

They are the inverses of the readers in `experiments.datasets.idx` and
`experiments.datasets.cifar`.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from experiments.datasets.cifar import _CIFAR_DIR, _CIFAR_TEST, _CIFAR_TRAIN
from experiments.datasets.idx import _IDX_UBYTE


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

