"""Tests for experiments.datasets: IDX/CIFAR readers on small files in the real
formats, the sklearn and synthetic datasets, option errors, and (when Debian's
dataset-fashion-mnist is installed) the real Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments import datasets as D
from experiments.datasets import (
    DATASET_NAMES,
    ALDataset,
    DatasetFormatError,
    dataset_sizes,
    load_dataset,
    read_idx,
)
from experiments.datasets import idx as idx_module
from experiments.errors import ConfigError, DatasetNotFoundError
from strategies.errors import UnknownNameError
from tests.experiments.dataset_files import write_cifar10_batches, write_idx

REPO = Path(__file__).resolve().parents[2]
N_TRAIN, N_TEST = 50, 20


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path_factory, monkeypatch):
    # Never read or write the user's cache, and never see the system Fashion-MNIST
    # unless a test asks for it.
    monkeypatch.setenv("ALSWEEP_DATA", str(tmp_path_factory.mktemp("data_root")))
    monkeypatch.setattr(idx_module, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path_factory.mktemp("no_debian")))


def _random_split(gen: torch.Generator, n: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=gen, dtype=torch.uint8)
    return x, y


def _write_mnist_files(directory: Path, gz: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    train_x, train_y = _random_split(gen, N_TRAIN, (28, 28))
    test_x, test_y = _random_split(gen, N_TEST, (28, 28))
    suffix = ".gz" if gz else ""
    write_idx(directory / f"train-images-idx3-ubyte{suffix}", train_x)
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", train_y)
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", test_x)
    write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", test_y)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def _assert_normalised(ds: ALDataset) -> None:
    assert ds.train_x.dtype == torch.float32 and ds.test_x.dtype == torch.float32
    assert ds.train_y.dtype == torch.int64 and ds.test_y.dtype == torch.int64
    dims = (0, *range(2, ds.train_x.dim()))
    mean = ds.train_x.double().mean(dim=dims)
    std = ds.train_x.double().std(dim=dims, correction=0)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (5, 28, 28), (2, 3, 4, 5)])
def test_idx_round_trip(tmp_path, suffix, shape):
    t = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    path = write_idx(tmp_path / f"f-idx{suffix}", t)
    if suffix:
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # really gzip, not a plain file named .gz
    back = read_idx(path)
    assert back.dtype == torch.uint8
    assert torch.equal(back, t)
    assert idx_module._read_idx_dims(path) == shape


def test_idx_header_bytes_follow_the_spec(tmp_path):
    path = write_idx(tmp_path / "x", torch.zeros(3, 2, dtype=torch.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 2]) + bytes(6)


def test_idx_truncated_plain(tmp_path):
    path = write_idx(tmp_path / "x", torch.zeros(10, 4, 4, dtype=torch.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetFormatError, match=r"truncated.*\(10, 4, 4\) = 160 bytes.*found 155"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "x", torch.zeros(4, dtype=torch.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DatasetFormatError, match="trailing bytes"):
        read_idx(path)


def test_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "x.gz", torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetFormatError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_idx_bad_magic_and_type(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"hello world, not idx")
    with pytest.raises(DatasetFormatError, match="not an IDX file"):
        read_idx(bad)
    int32 = tmp_path / "int32"
    int32.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 0, 7]))
    with pytest.raises(DatasetFormatError, match="0x0c is not supported"):
        read_idx(int32)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 1]))
    with pytest.raises(DatasetFormatError, match="truncated IDX header"):
        read_idx(short)
    with pytest.raises(DatasetFormatError, match="truncated IDX header"):
        idx_module._read_idx_dims(short)


def test_write_idx_rejects_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_idx(tmp_path / "x", torch.zeros(3, dtype=torch.float32))


# --------------------------------------------------------------------------- MNIST-like loaders


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_loader_from_root(tmp_path, name, gz):
    raw = _write_mnist_files(tmp_path, gz=gz)
    ds = load_dataset(name, root=tmp_path, download=False)
    assert ds.name == name and ds.num_classes == 10
    assert ds.input_shape == (1, 28, 28)
    assert ds.train_x.shape == (N_TRAIN, 1, 28, 28) and ds.test_x.shape == (N_TEST, 1, 28, 28)
    assert (ds.train_size, ds.test_size) == (N_TRAIN, N_TEST)
    assert torch.equal(ds.train_y, raw["train_y"].long()) and torch.equal(ds.test_y, raw["test_y"].long())
    assert ds.source == str(tmp_path)
    assert ds.train_x.device.type == "cpu"
    _assert_normalised(ds)
    # The test split uses the train statistics: same affine map of the raw pixels.
    mean = raw["train_x"].double().div(255).mean()
    std = raw["train_x"].double().div(255).std(correction=0)
    expected = ((raw["test_x"].double().div(255) - mean) / std).float().unsqueeze(1)
    torch.testing.assert_close(ds.test_x, expected, atol=1e-5, rtol=1e-5)
    assert dataset_sizes(name, root=tmp_path) == (N_TRAIN, N_TEST)


def test_plain_and_gz_give_the_same_fingerprint(tmp_path):
    _write_mnist_files(tmp_path / "plain", gz=False)
    _write_mnist_files(tmp_path / "gz", gz=True)
    a = load_dataset("mnist", root=tmp_path / "plain", download=False)
    b = load_dataset("mnist", root=tmp_path / "gz", download=False)
    assert a.fingerprint == b.fingerprint  # content, not file encoding
    assert torch.equal(a.train_x, b.train_x)


def test_mnist_torchvision_layout(tmp_path):
    _write_mnist_files(tmp_path / "MNIST" / "raw", gz=True)
    ds = load_dataset("mnist", root=tmp_path, download=False)
    assert ds.source == str(tmp_path / "MNIST" / "raw")
    assert ds.train_size == N_TRAIN


def test_fashion_mnist_default_root_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("ALSWEEP_DATA", str(tmp_path))
    _write_mnist_files(tmp_path / "FashionMNIST" / "raw", gz=False)
    ds = load_dataset("fashion_mnist", download=False)
    assert ds.source == str(tmp_path / "FashionMNIST" / "raw")
    assert dataset_sizes("fashion_mnist") == (N_TRAIN, N_TEST)


def test_fashion_mnist_prefers_the_debian_dir(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    _write_mnist_files(debian, gz=True, seed=1)
    monkeypatch.setattr(idx_module, "DEBIAN_FASHION_MNIST_DIR", str(debian))
    monkeypatch.setenv("ALSWEEP_DATA", str(tmp_path / "cache"))
    _write_mnist_files(tmp_path / "cache" / "FashionMNIST" / "raw", gz=False, seed=2)
    assert load_dataset("fashion_mnist", download=False).source == str(debian)


def test_fingerprint_stable_and_content_sensitive(tmp_path):
    raw = _write_mnist_files(tmp_path, gz=True)
    a = load_dataset("fashion_mnist", root=tmp_path, download=False)
    b = load_dataset("fashion_mnist", root=tmp_path, download=False)
    assert a.fingerprint == b.fingerprint
    assert len(a.fingerprint) == 64 and int(a.fingerprint, 16) >= 0
    changed = raw["test_x"].clone()
    changed[3, 10, 10] ^= 1  # one pixel, one bit
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", changed)
    c = load_dataset("fashion_mnist", root=tmp_path, download=False)
    assert c.fingerprint != a.fingerprint


def test_fingerprint_is_the_same_in_another_process(tmp_path):
    _write_mnist_files(tmp_path, gz=True)
    here = load_dataset("mnist", root=tmp_path, download=False).fingerprint
    code = (
        "import sys; from experiments.datasets import load_dataset; "
        "print(load_dataset('mnist', root=sys.argv[1], download=False).fingerprint, "
        "load_dataset('synthetic').fingerprint)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [here, load_dataset("synthetic").fingerprint]


def test_idx_loader_rejects_mismatched_files(tmp_path):
    _write_mnist_files(tmp_path, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", torch.zeros(N_TEST + 1, dtype=torch.uint8))
    with pytest.raises(DatasetFormatError, match="test images .* and labels .* do not match"):
        load_dataset("mnist", root=tmp_path, download=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", torch.full((N_TEST,), 10, dtype=torch.uint8))
    with pytest.raises(DatasetFormatError, match=r"labels must lie in \[0, 9\]"):
        load_dataset("mnist", root=tmp_path, download=False)


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10"])
def test_missing_files_without_download(tmp_path, name):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, root=tmp_path / "empty", download=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(tmp_path / "empty") in msg and "download disabled" in msg
    assert "dataset.root" in msg and "dataset.download=true" in msg
    if name == "fashion_mnist":
        assert "apt-get install dataset-fashion-mnist" in msg


def test_missing_fashion_mnist_lists_every_place_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("ALSWEEP_DATA", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist", download=False)
    msg = str(info.value)
    assert idx_module.DEBIAN_FASHION_MNIST_DIR in msg
    assert str(tmp_path / "cache" / "FashionMNIST" / "raw") in msg
    assert "apt-get" in msg and "\n" not in msg


def test_failed_download_is_reported_in_one_line(tmp_path, monkeypatch):
    calls = []

    def offline(class_name, target):
        calls.append((class_name, target))
        return "URLError: <urlopen error [Errno -3] Temporary failure in name resolution>"

    monkeypatch.setattr(idx_module, "torchvision_download", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist", root=tmp_path, download=True)
    assert calls == [("FashionMNIST", tmp_path)]
    msg = str(info.value)
    assert "\n" not in msg and "download to" in msg and "URLError" in msg and "apt-get" in msg


def test_download_result_is_read_back(tmp_path, monkeypatch):
    # A stand-in for torchvision that writes the files where torchvision would.
    def fake_download(class_name, target):
        _write_mnist_files(target / class_name / "raw", gz=False)
        return None

    monkeypatch.setattr(idx_module, "torchvision_download", fake_download)
    ds = load_dataset("mnist", root=tmp_path, download=True)
    assert ds.source == str(tmp_path / "MNIST" / "raw") and ds.train_size == N_TRAIN


def test_dataset_sizes_without_files_gives_full_sizes(tmp_path):
    assert dataset_sizes("fashion_mnist", root=tmp_path) == (60000, 10000)
    assert dataset_sizes("mnist", root=tmp_path) == (60000, 10000)
    assert dataset_sizes("cifar10", root=tmp_path) == (50000, 10000)


# --------------------------------------------------------------------------- CIFAR-10


def _cifar_raw(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    train_x, train_y = _random_split(gen, 23, (3, 32, 32))
    test_x, test_y = _random_split(gen, 7, (3, 32, 32))
    return train_x, train_y.long(), test_x, test_y.long()


def test_cifar10_loader(tmp_path):
    train_x, train_y, test_x, test_y = _cifar_raw()
    folder = write_cifar10_batches(tmp_path, train_x, train_y, test_x, test_y)
    assert folder == tmp_path / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    assert ds.train_x.shape == (23, 3, 32, 32) and ds.test_x.shape == (7, 3, 32, 32)
    assert torch.equal(ds.train_y, train_y) and torch.equal(ds.test_y, test_y)
    assert ds.source == str(folder)
    _assert_normalised(ds)
    # Channel order survives the [n, 3072] row layout: recover raw pixels from the normalised ones.
    mean = train_x.double().div(255).mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.double().div(255).std(dim=(0, 2, 3), correction=0, keepdim=True)
    recovered = ((ds.train_x.double() * std + mean) * 255).round().to(torch.uint8)
    assert torch.equal(recovered, train_x)
    assert dataset_sizes("cifar10", root=tmp_path) == (23, 7)
    # The folder itself is accepted as root too.
    assert load_dataset("cifar10", root=folder, download=False).fingerprint == ds.fingerprint


def test_cifar10_fingerprint_changes_with_a_label(tmp_path):
    train_x, train_y, test_x, test_y = _cifar_raw()
    write_cifar10_batches(tmp_path / "a", train_x, train_y, test_x, test_y)
    test_y2 = test_y.clone()
    test_y2[0] = (test_y2[0] + 1) % 10
    write_cifar10_batches(tmp_path / "b", train_x, train_y, test_x, test_y2)
    a = load_dataset("cifar10", root=tmp_path / "a", download=False)
    b = load_dataset("cifar10", root=tmp_path / "b", download=False)
    assert a.fingerprint != b.fingerprint


def test_cifar10_corrupt_batch(tmp_path):
    folder = write_cifar10_batches(tmp_path, *_cifar_raw())
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetFormatError, match="data_batch_3: not a CIFAR-10 batch"):
        load_dataset("cifar10", root=tmp_path, download=False)


# --------------------------------------------------------------------------- digits


def test_digits_shapes_split_and_determinism():
    ds = load_dataset("digits")
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10 and ds.source == "sklearn"
    assert ds.train_size + ds.test_size == 1797
    assert ds.test_size == pytest.approx(0.25 * 1797, abs=10)
    assert (ds.train_size, ds.test_size) == dataset_sizes("digits")
    # Stratified: every class in both splits, in about the same proportion.
    train_frac = torch.bincount(ds.train_y, minlength=10) / ds.train_size
    test_frac = torch.bincount(ds.test_y, minlength=10) / ds.test_size
    assert torch.all(test_frac > 0)
    torch.testing.assert_close(train_frac, test_frac, atol=0.01, rtol=0)
    _assert_normalised(ds)
    again = load_dataset("digits")
    assert again.fingerprint == ds.fingerprint and torch.equal(again.train_x, ds.train_x)
    other = load_dataset("digits", split_seed=1)
    assert other.fingerprint != ds.fingerprint
    assert not torch.equal(other.train_y, ds.train_y)
    small = load_dataset("digits", test_fraction=0.1)
    assert (small.train_size, small.test_size) == dataset_sizes("digits", test_fraction=0.1)
    assert small.test_size == pytest.approx(180, abs=10)


@pytest.mark.parametrize(
    "options, key",
    [
        ({"test_fraction": 0.0}, "dataset.test_fraction"),
        ({"test_fraction": 1.0}, "dataset.test_fraction"),
        ({"test_fraction": "0.2"}, "dataset.test_fraction"),
        ({"split_seed": 1.5}, "dataset.split_seed"),
        ({"num_classes": 3}, "dataset.num_classes"),
    ],
)
def test_digits_option_errors(options, key):
    with pytest.raises(ConfigError, match=rf"^{key}") as info:
        load_dataset("digits", **options)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=rf"^{key}"):
        dataset_sizes("digits", **options)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_defaults_and_determinism():
    ds = load_dataset("synthetic")
    assert ds.input_shape == (16,) and ds.num_classes == 4 and ds.source == "generated"
    assert ds.train_x.shape == (1200, 16) and ds.test_x.shape == (400, 16)
    assert torch.equal(torch.bincount(ds.train_y), torch.full((4,), 300))  # balanced
    _assert_normalised(ds)
    again = load_dataset("synthetic")
    assert torch.equal(again.train_x, ds.train_x) and torch.equal(again.test_y, ds.test_y)
    assert again.fingerprint == ds.fingerprint
    assert load_dataset("synthetic", data_seed=1).fingerprint != ds.fingerprint
    # Global RNG state is neither used nor disturbed.
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    assert torch.equal(load_dataset("synthetic").train_x, ds.train_x)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_synthetic_options_and_separability():
    ds = load_dataset("synthetic", num_classes=3, num_features=5, train_size=90, test_size=31, class_sep=8.0)
    assert ds.train_x.shape == (90, 5) and ds.test_x.shape == (31, 5) and ds.num_classes == 3
    assert dataset_sizes("synthetic", train_size=90, test_size=31) == (90, 31)
    # Well separated blobs: nearest class mean (train) classifies the test split almost perfectly.
    means = torch.stack([ds.train_x[ds.train_y == c].mean(0) for c in range(3)])
    pred = torch.cdist(ds.test_x, means).argmin(1)
    assert (pred == ds.test_y).float().mean() > 0.9
    # The test split does not depend on the train size.
    bigger = load_dataset("synthetic", num_classes=3, num_features=5, train_size=200, test_size=31, class_sep=8.0)
    assert torch.equal(bigger.test_y, ds.test_y)


@pytest.mark.parametrize(
    "options, key, text",
    [
        ({"num_classes": 1}, "dataset.num_classes", ">= 2; got 1"),
        ({"num_classes": True}, "dataset.num_classes", ">= 2; got True"),
        ({"num_features": 0}, "dataset.num_features", ">= 1; got 0"),
        ({"train_size": 0}, "dataset.train_size", ">= 1; got 0"),
        ({"test_size": -5}, "dataset.test_size", ">= 1; got -5"),
        ({"train_size": 10.0}, "dataset.train_size", ">= 1; got 10.0"),
        ({"class_sep": -1.0}, "dataset.class_sep", ">= 0; got -1.0"),
        ({"data_seed": "x"}, "dataset.data_seed", "got 'x'"),
        ({"foo": 1}, "dataset.foo", "accepted options: class_sep, data_seed, num_classes"),
    ],
)
def test_synthetic_option_errors(options, key, text):
    with pytest.raises(ConfigError) as info:
        load_dataset("synthetic", **options)
    msg = str(info.value)
    assert msg.startswith(key) and text in msg and "\n" not in msg


def test_file_datasets_accept_no_options(tmp_path):
    expected = r"^dataset\.train_size: unknown option for dataset 'mnist'; accepted options: none"
    with pytest.raises(ConfigError, match=expected):
        load_dataset("mnist", root=tmp_path, download=False, train_size=10)
    with pytest.raises(ConfigError, match=r"^dataset\.foo"):
        dataset_sizes("cifar10", root=tmp_path, foo=1)


# --------------------------------------------------------------------------- names, record


def test_unknown_dataset_name_suggests_closest():
    with pytest.raises(UnknownNameError) as info:
        load_dataset("fashion_mnst")
    err = info.value
    assert err.closest == ["fashion_mnist"] and err.key == "dataset.name"
    assert "did you mean 'fashion_mnist'?" in str(err) and "cifar10, digits" in str(err)
    with pytest.raises(UnknownNameError, match="did you mean 'cifar10'"):
        dataset_sizes("cifar")


def test_names_are_sorted_and_all_loadable_by_dispatch():
    assert DATASET_NAMES == tuple(sorted(DATASET_NAMES))
    assert set(DATASET_NAMES) == {"cifar10", "digits", "fashion_mnist", "mnist", "synthetic"}
    assert all(D.get_dataset(name).extras["sizes"] is not None for name in DATASET_NAMES)


def test_record_to_and_repr():
    ds = load_dataset("synthetic", train_size=8, test_size=4)
    moved = ds.to("cpu")
    assert moved is not ds and moved.fingerprint == ds.fingerprint and moved.name == ds.name
    assert torch.equal(moved.train_x, ds.train_x)
    assert "tensor" not in repr(ds) and ds.fingerprint in repr(ds)
    with pytest.raises(AttributeError):
        ds.name = "other"  # frozen
    with pytest.raises(ValueError, match="expected x"):
        ALDataset("bad", ds.train_x, ds.train_y[:3], ds.test_x, ds.test_y, 4, (16,), "f", "s")


def test_default_data_root(monkeypatch):
    monkeypatch.setenv("ALSWEEP_DATA", "~/somewhere")
    assert D.default_data_root() == Path("~/somewhere").expanduser()
    monkeypatch.delenv("ALSWEEP_DATA")
    assert D.default_data_root() == Path.home() / ".cache" / "alsweep" / "data"


# --------------------------------------------------------------------------- real Fashion-MNIST

_REAL = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not _REAL.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_debian_fashion_mnist(monkeypatch):
    monkeypatch.setattr(idx_module, "DEBIAN_FASHION_MNIST_DIR", str(_REAL))

    # Sizes come from the IDX headers alone: reading pixels here would be a bug.
    def no_pixels(path):
        raise AssertionError(f"dataset_sizes read {path}")

    with monkeypatch.context() as m:
        m.setattr(idx_module, "read_idx", no_pixels)
        assert dataset_sizes("fashion_mnist") == (60000, 10000)

    ds = load_dataset("fashion_mnist", download=False)
    assert ds.source == str(_REAL)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert torch.equal(torch.bincount(ds.train_y), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(ds.test_y), torch.full((10,), 1000))
    _assert_normalised(ds)
    assert abs(float(ds.test_x.mean())) < 0.05  # same distribution, train statistics
    with gzip.open(_REAL / "t10k-labels-idx1-ubyte.gz", "rb") as fh:
        assert fh.read(8) == bytes([0, 0, 8, 1, 0, 0, 0x27, 0x10])  # 10000 labels
