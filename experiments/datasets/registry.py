"""The dataset registry: ``register_dataset``, ``load_dataset`` and ``dataset_sizes`` by name.

A dataset is a loader ``fn(name, root, download, options) -> ALDataset``:
``root`` a `Path` or None, ``download`` a bool, ``options`` the registered
defaults overridden by the config (an unknown key is refused before the loader
runs). A ``sizes`` function ``fn(name, root, options) -> (N_train, N_test)``
may be registered too, so a config is validated without loading pixels;
without one, `dataset_sizes` loads the dataset.

    from experiments.datasets import ALDataset, register_dataset

    @register_dataset(name="my_data", defaults={"scale": 1.0}, description="my lab's images")
    def my_data(name, root, download, options) -> ALDataset: ...

Other packages register through the entry-point group ``alsweep.datasets``
(the entry point names a module whose import registers them); ship a
``dataset/<name>.yaml`` and pass ``hydra.searchpath=[pkg://your_package.conf]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from experiments.datasets.base import ALDataset
from experiments.registry import LiveNames, Registry, Spec

ENTRY_POINT_GROUP = "alsweep.datasets"

DATASETS: Registry = Registry("dataset", ENTRY_POINT_GROUP, config_key="dataset.name")

#: The registered dataset names, plugins included (read at each use).
DATASET_NAMES = LiveNames(DATASETS)

Loader = Callable[[str, "Path | None", bool, Mapping[str, Any]], ALDataset]
SizesFn = Callable[[str, "Path | None", Mapping[str, Any]], "tuple[int, int]"]


def register_dataset(
    *, name: str, defaults: Mapping[str, Any] | None = None, description: str = "", sizes: SizesFn | None = None
) -> Callable[[Loader], Loader]:
    """Decorator: register a loader under ``name`` with its options' ``defaults``."""
    return DATASETS.register(name=name, defaults=defaults, description=description, sizes=sizes)


def get_dataset(name: str) -> Spec:
    """The spec registered under ``name``; UnknownNameError lists valid names and the closest one."""
    return DATASETS.get(name)


def available_datasets() -> tuple[str, ...]:
    return DATASETS.names()


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
    torchvision. ``options``: per-dataset settings (``alsweep datasets`` lists
    them; ``digits``: test_fraction, split_seed; ``synthetic``: num_classes,
    num_features, train_size, test_size, class_sep, data_seed); any other key
    is a :class:`ConfigError`.

    Raises :class:`UnknownNameError`, :class:`ConfigError`,
    :class:`DatasetNotFoundError` (one line: where it looked, how to get it)
    or :class:`DatasetFormatError` (a corrupt file).
    """
    spec = DATASETS.get(name)
    resolved = DATASETS.resolve_options(name, options)
    return spec.fn(name, _as_root(root), bool(download), resolved)


def dataset_sizes(name: str, *, root: str | os.PathLike | None = None, **options: Any) -> tuple[int, int]:
    """``(N_train, N_test)`` without loading pixels where the dataset can tell, to validate a config.

    Reads IDX headers (MNIST-like), the batches' label lists (CIFAR-10), the
    options (synthetic) or the bundled labels (digits). When the files are
    missing it returns the sizes a download would give; :func:`load_dataset`
    is what reports the missing files.
    """
    spec = DATASETS.get(name)
    resolved = DATASETS.resolve_options(name, options)
    sizes = spec.extras.get("sizes")
    if sizes is None:
        dataset = spec.fn(name, _as_root(root), False, resolved)
        return dataset.train_size, dataset.test_size
    return sizes(name, _as_root(root), resolved)
