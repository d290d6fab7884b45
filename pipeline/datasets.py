"""MNIST and FashionMNIST loaders: a local directory, then the Keras cache, then a Keras download.

``load_dataset(name, data_dir)`` looks in this order:

1. ``data_dir`` (if given; it must exist): a Keras-layout ``mnist.npz`` / ``fashion_mnist.npz``
   (arrays ``x_train, y_train, x_test, y_test``), or the four IDX files
   ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
   ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``), either directly in ``data_dir`` or in a
   subfolder named after the dataset (``mnist/``, ``fashion_mnist/`` or ``fashion-mnist/``);
2. the Keras cache (``$KERAS_HOME`` or ``~/.keras``)``/datasets/``: ``mnist.npz``, or the
   ``fashion-mnist/`` folder of gzipped IDX files;
3. ``tf.keras.datasets.<name>.load_data()``, which downloads into that cache.

A file that is found but unreadable or of the wrong shape is an error (no silent fallback).
Every user-fixable problem raises ``PipelineError`` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError

DATASETS = ("mnist", "fashion_mnist")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_SUBDIRS = {"mnist": ("mnist",), "fashion_mnist": ("fashion_mnist", "fashion-mnist")}


@dataclass(frozen=True)
class ImageDataset:
    """Images uint8 (N, 28, 28) and labels uint8 0..9 (N,), for training and test.

    ``name`` is the dataset ("mnist"/"fashion_mnist"), ``source`` the file or folder it came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str = ""
    source: str = ""


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> ImageDataset:
    """Load ``name`` ("mnist" or "fashion_mnist"); see the module docstring for the search order."""
    if name not in DATASETS:
        raise PipelineError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.exists():
            raise PipelineError(f"data directory {root} does not exist")
        found = _load_from(name, root) if root.is_dir() else _load_file(name, root)
        if found is None:
            for sub in _SUBDIRS[name]:
                if (root / sub).is_dir():
                    found = _load_from(name, root / sub)
                    if found is not None:
                        break
        if found is not None:
            return found
    cache = _keras_datasets_dir()
    if name == "mnist":
        found = _load_file(name, cache / "mnist.npz") if (cache / "mnist.npz").is_file() else None
    else:
        folder = cache / "fashion-mnist"
        found = _load_from(name, folder) if folder.is_dir() else None
    if found is not None:
        return found
    return _download(name)


def train_subset(ds: ImageDataset, n: int | None, seed: int) -> ImageDataset:
    """The first ``n`` training examples of a permutation seeded by ``seed`` (test set unchanged).

    ``n=None`` returns ``ds`` unchanged. Every method calls this with the same (n, seed), so all
    of them see the same examples.
    """
    if n is None:
        return ds
    total = len(ds.x_train)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise PipelineError(f"train size must be a positive integer, got {n!r}")
    if n > total:
        raise PipelineError(f"train size {n} exceeds the {total} training examples of {ds.name}")
    idx = np.random.default_rng(seed).permutation(total)[:n]
    return dataclasses.replace(ds, x_train=ds.x_train[idx], y_train=ds.y_train[idx])


# --- sources -----------------------------------------------------------------------------------


def _keras_datasets_dir() -> Path:
    home = os.environ.get("KERAS_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".keras"
    return base / "datasets"


def _load_from(name: str, folder: Path) -> ImageDataset | None:
    """An npz or the four IDX files in ``folder``; None if neither is there."""
    npz = folder / f"{name}.npz"
    if npz.is_file():
        return _load_file(name, npz)
    paths = {}
    for key, stem in IDX_FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                paths[key] = candidate
                break
    if not paths:
        return None
    missing = [IDX_FILES[k] for k in IDX_FILES if k not in paths]
    if missing:
        raise PipelineError(f"{folder} has IDX files for {name} but lacks {', '.join(missing)}")
    arrays = {key: _read_idx(path) for key, path in paths.items()}
    return _validated(name, arrays, str(folder))


def _load_file(name: str, path: Path) -> ImageDataset | None:
    if path.suffix != ".npz":
        raise PipelineError(f"{path} is not an .npz file or a directory of IDX files")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in IDX_FILES if k not in data.files]
            if missing:
                raise PipelineError(f"{path} lacks the arrays {', '.join(missing)} (Keras layout)")
            arrays = {k: data[k] for k in IDX_FILES}
    except PipelineError:
        raise
    except ValueError:  # numpy's reading of a file that is not an archive (it suggests allow_pickle)
        raise PipelineError(f"{path} is not an .npz archive (corrupt or incomplete download?); "
                            f"delete or replace the file") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise PipelineError(f"cannot read {path}: {exc}; delete or replace the file".replace("\n", " ")) from None
    return _validated(name, arrays, str(path))


def _read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (plain or gzipped)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise PipelineError(f"cannot read {path}: {exc}; delete or replace the file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise PipelineError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise PipelineError(f"{path} is not an IDX file of unsigned bytes (type 0x{raw[2]:02x})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise PipelineError(f"{path} has a truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * d : 8 + 4 * d], "big") for d in range(ndim))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise PipelineError(
            f"{path} holds {len(raw) - header} bytes of data but its header announces {size}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _validated(name: str, arrays: dict, source: str) -> ImageDataset:
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise PipelineError(f"{source}: {split} images have shape {x.shape}, expected (N, 28, 28)")
        if y.ndim != 1 or len(y) != len(x):
            raise PipelineError(
                f"{source}: {split} labels have shape {y.shape} for {len(x)} images"
            )
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.integer) or (x.size and (x.min() < 0 or x.max() > 255)):
                raise PipelineError(f"{source}: {split} images must be bytes 0..255, got {x.dtype}")
        if not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0 or y.max() > 9)):
            raise PipelineError(f"{source}: {split} labels must be integers 0..9")
        arrays[f"x_{split}"] = x.astype(np.uint8, copy=False)
        arrays[f"y_{split}"] = y.astype(np.uint8, copy=False)
    if len(arrays["x_train"]) == 0:
        raise PipelineError(f"{source}: the training set is empty")
    return ImageDataset(**{k: arrays[k] for k in IDX_FILES}, name=name, source=source)


def _keras_load(name: str):
    """``tf.keras.datasets.<name>.load_data()`` (downloads into the Keras cache)."""
    import tensorflow as tf

    return getattr(tf.keras.datasets, name).load_data()


def _download(name: str) -> ImageDataset:
    try:
        (x_train, y_train), (x_test, y_test) = _keras_load(name)
    except Exception as exc:  # network errors come as bare Exception from keras' get_file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PipelineError(
            f"{name} is not in --data-dir or the Keras cache and downloading it failed ({reason}); "
            f"put {name}.npz or its IDX files in a directory and pass it as --data-dir"
        )
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _validated(name, arrays, "keras download")
