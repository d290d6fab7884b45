"""Ingest a classification dataset: load, take the seeded training subset and the test prefix,
and cut it into minibatches ("tasks") of float images in [0, 1] with one-hot labels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pipeline.datasets import load_dataset, train_subset
from pipeline.errors import PipelineError


@dataclass(frozen=True)
class ClassificationData:
    name: str
    source: str
    x_train: np.ndarray  # uint8 (N, 28, 28), in the seeded one-pass order
    y_train: np.ndarray  # int (N,)
    x_test: np.ndarray
    y_test: np.ndarray


def ingest_dataset(name: str, data_dir, train_size: int | None, test_size: int | None,
                   seed: int) -> ClassificationData:
    """The first ``train_size`` examples of a permutation seeded by ``seed`` (all when None, still
    shuffled: the order is the task order) and the first ``test_size`` test images."""
    ds = load_dataset(name, data_dir)
    ds = train_subset(ds, train_size if train_size is not None else len(ds.x_train), seed)
    if test_size is not None:
        if test_size < 1:
            raise PipelineError(f"--test-size must be ≥ 1, got {test_size}")
        if test_size > len(ds.x_test):
            raise PipelineError(f"--test-size {test_size} exceeds the {len(ds.x_test)} test images of {name}")
    n_test = test_size or len(ds.x_test)
    return ClassificationData(name, ds.source, ds.x_train, ds.y_train.astype(np.int64),
                              ds.x_test[:n_test], ds.y_test[:n_test].astype(np.int64))


def as_images(x: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W) → float32 (B, H, W, 1) in [0, 1]."""
    return (np.asarray(x, np.float32) / 255.0)[..., None]


def minibatches(x: np.ndarray, y: np.ndarray, batch_size: int, classes: int = 10
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(images (B,H,W,1) float32, one-hot (B, classes) float32, labels (B,)) in order; the last
    batch may be smaller."""
    for i in range(0, len(x), batch_size):
        labels = y[i:i + batch_size]
        yield as_images(x[i:i + batch_size]), np.eye(classes, dtype=np.float32)[labels], labels
