"""Datasets for AL runs: a registry of loaders, all returning an :class:`ALDataset`.

One module per format or family, each registering its names on import:

==============  ===========================================================
module          datasets
==============  ===========================================================
``idx``         ``fashion_mnist``, ``mnist`` (IDX files, plain or gzip)
``cifar``       ``cifar10`` (the official pickle batches)
``digits``      ``digits`` (scikit-learn, bundled)
``synthetic``   ``synthetic`` (seeded Gaussian blobs)
==============  ===========================================================

``base`` holds the record, the content fingerprint and the normalisation;
``registry`` the lookup (`load_dataset`, `dataset_sizes`, `register_dataset`).
Plugins register more through the entry-point group ``alsweep.datasets``.
"""

from experiments.datasets.base import ALDataset, default_data_root
from experiments.datasets.registry import (
    DATASET_NAMES,
    DATASETS,
    ENTRY_POINT_GROUP,
    available_datasets,
    dataset_sizes,
    get_dataset,
    load_dataset,
    register_dataset,
)
from experiments.datasets import cifar, digits, idx, synthetic  # noqa: E402,F401  (registers)
from experiments.datasets.idx import DEBIAN_FASHION_MNIST_DIR, read_idx
from experiments.errors import DatasetFormatError

__all__ = [
    "ALDataset",
    "DATASETS",
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DatasetFormatError",
    "ENTRY_POINT_GROUP",
    "available_datasets",
    "dataset_sizes",
    "default_data_root",
    "get_dataset",
    "load_dataset",
    "read_idx",
    "register_dataset",
]
