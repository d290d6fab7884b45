"""Tests of the MNIST / FashionMNIST loader (pipeline.datasets)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from pipeline import datasets
from pipeline.datasets import IDX_FILES, ImageDataset, load_dataset, train_subset
from pipeline.errors import PipelineError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _arrays(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(folder: Path, arrays: dict, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        data = _idx_bytes(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


def _assert_same(ds: ImageDataset, arrays: dict) -> None:
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(ds, key), value)
        assert getattr(ds, key).dtype == np.uint8


@pytest.fixture(autouse=True)
def _no_keras_cache_or_network(tmp_path, monkeypatch):
    """Point the Keras cache at an empty folder and make any download fail."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def offline(name):
        raise Exception(f"URL fetch failure on https://example.invalid/{name}: None -- offline")

    monkeypatch.setattr(datasets, "_keras_load", offline)


def test_reads_keras_npz(tmp_path):
    arrays = _arrays()
    np.savez(tmp_path / "mnist.npz", **arrays)
    _assert_same(load_dataset("mnist", tmp_path), arrays)
    np.savez(tmp_path / "fashion_mnist.npz", **_arrays(seed=1))
    _assert_same(load_dataset("fashion_mnist", tmp_path), _arrays(seed=1))
    _assert_same(load_dataset("mnist", tmp_path / "mnist.npz"), arrays)  # the file itself


@pytest.mark.parametrize("gz", [False, True])
def test_reads_idx_files_plain_and_gzipped(tmp_path, gz):
    arrays = _arrays(seed=3)
    _write_idx(tmp_path, arrays, gz)
    _assert_same(load_dataset("fashion_mnist", tmp_path), arrays)


def test_finds_dataset_in_named_subfolder(tmp_path):
    arrays = _arrays(seed=4)
    _write_idx(tmp_path / "fashion-mnist", arrays, gz=True)
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "mnist.npz", **_arrays(seed=5))
    _assert_same(load_dataset("fashion_mnist", tmp_path), arrays)
    _assert_same(load_dataset("mnist", tmp_path), _arrays(seed=5))


def test_falls_back_to_keras_cache(tmp_path):
    cache = tmp_path / "keras_home" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", **_arrays(seed=6))
    _write_idx(cache / "fashion-mnist", _arrays(seed=7), gz=True)
    _assert_same(load_dataset("mnist"), _arrays(seed=6))
    _assert_same(load_dataset("fashion_mnist"), _arrays(seed=7))
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_same(load_dataset("mnist", empty), _arrays(seed=6))  # data_dir without it: cache


def test_download_failure_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="downloading it failed") as info:
        load_dataset("mnist")
    assert "\n" not in str(info.value) and "--data-dir" in str(info.value)


def test_download_result_is_validated(monkeypatch):
    a = _arrays(seed=8)
    monkeypatch.setattr(
        datasets, "_keras_load", lambda name: ((a["x_train"], a["y_train"]), (a["x_test"], a["y_test"]))
    )
    _assert_same(load_dataset("fashion_mnist"), a)


def test_unknown_name_and_missing_dir(tmp_path):
    with pytest.raises(PipelineError, match="unknown dataset"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(PipelineError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nope")


def test_corrupt_and_malformed_files(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(PipelineError, match="is not an .npz archive .*delete or replace"):
        load_dataset("mnist", tmp_path)
    np.savez(tmp_path / "whole.npz", **_arrays())
    (tmp_path / "mnist.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:100])  # a cut-off download
    with pytest.raises(PipelineError, match="cannot read .*delete or replace"):
        load_dataset("mnist", tmp_path)

    bad_shape = _arrays()
    bad_shape["x_train"] = bad_shape["x_train"].reshape(12, 784)
    np.savez(tmp_path / "mnist.npz", **bad_shape)
    with pytest.raises(PipelineError, match="expected \\(N, 28, 28\\)"):
        load_dataset("mnist", tmp_path)

    mismatch = _arrays()
    mismatch["y_test"] = mismatch["y_test"][:3]
    np.savez(tmp_path / "mnist.npz", **mismatch)
    with pytest.raises(PipelineError, match="labels"):
        load_dataset("mnist", tmp_path)

    missing_key = _arrays()
    del missing_key["y_test"]
    np.savez(tmp_path / "mnist.npz", **missing_key)
    with pytest.raises(PipelineError, match="lacks the arrays y_test"):
        load_dataset("mnist", tmp_path)


def test_corrupt_idx_files(tmp_path):
    arrays = _arrays()
    _write_idx(tmp_path, arrays, gz=False)
    images = tmp_path / IDX_FILES["x_test"]
    good = images.read_bytes()
    images.write_bytes(good[:-10])  # truncated data
    with pytest.raises(PipelineError, match="header announces"):
        load_dataset("mnist", tmp_path)
    images.write_bytes(b"\x12\x34" + good[2:])  # bad magic
    with pytest.raises(PipelineError, match="magic"):
        load_dataset("mnist", tmp_path)
    images.write_bytes(good)
    (tmp_path / IDX_FILES["y_train"]).unlink()
    with pytest.raises(PipelineError, match="lacks train-labels-idx1-ubyte"):
        load_dataset("mnist", tmp_path)
    (tmp_path / (IDX_FILES["y_train"] + ".gz")).write_bytes(b"not gzip")
    with pytest.raises(PipelineError, match="cannot read"):
        load_dataset("mnist", tmp_path)


def test_train_subset_is_a_seeded_prefix_of_a_shuffle():
    ds = ImageDataset(**_arrays(n_train=50), name="mnist")
    a, b, c = train_subset(ds, 10, 3), train_subset(ds, 10, 3), train_subset(ds, 10, 4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    np.testing.assert_array_equal(train_subset(ds, 20, 3).x_train[:10], a.x_train)  # prefix
    assert len(a.x_train) == len(a.y_train) == 10 and a.x_test is ds.x_test
    idx = np.random.default_rng(3).permutation(50)[:10]
    np.testing.assert_array_equal(a.y_train, ds.y_train[idx])
    assert train_subset(ds, None, 0) is ds
    for bad in (0, 51, -1):
        with pytest.raises(PipelineError):
            train_subset(ds, bad, 0)


def test_shared_mnist():
    folder = DATA / "mnist"
    if not (folder / "mnist.npz").is_file():
        pytest.skip(f"{folder} not present")
    ds = load_dataset("mnist", DATA)
    assert ds.name == "mnist" and ds.source.endswith("mnist.npz")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.y_train.shape == (60000,) and set(np.unique(ds.y_test)) == set(range(10))
