"""Backprop baselines for continual classification, trained with Keras (tf.keras) and Adam.

* ``linear``: softmax regression on the flattened pixels in [0, 1] (784 → 10), several epochs
  over the training subset (the classical reference the paper compares sample efficiency with).
* ``cnn``: the GBP classifier's architecture — conv 16 × 5×5 (VALID, leaky ReLU slope 0.2) →
  max-pool 2×2 → dense 2304 → 10 — trained by backprop in one pass over the data, minibatches of
  50, cross-entropy, Adam: the same single-pass protocol as GBP learning.

Both report, through callbacks, test accuracy (a fraction) and the mean test negative
log-likelihood (nats) of the softmax of the logits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pipeline.config import require

EvalCallback = Callable[[int, dict], None]  # (examples seen, metrics)


@dataclass(frozen=True)
class LinearConfig:
    epochs: int = 50
    batch_size: int = 50
    learning_rate: float = 1e-3

    def __post_init__(self):
        require(self.epochs >= 1, f"linear epochs must be ≥ 1, got {self.epochs}")
        require(self.batch_size >= 1, f"linear batch_size must be ≥ 1, got {self.batch_size}")
        require(self.learning_rate > 0, f"linear learning_rate must be > 0, got {self.learning_rate}")


@dataclass(frozen=True)
class CNNConfig:
    filters: int = 16
    kernel: int = 5
    slope: float = 0.2
    batch_size: int = 50
    learning_rate: float = 1e-3

    def __post_init__(self):
        require(self.filters >= 1 and self.kernel >= 1, "cnn filters and kernel must be ≥ 1")
        require(self.batch_size >= 1, f"cnn batch_size must be ≥ 1, got {self.batch_size}")
        require(self.learning_rate > 0, f"cnn learning_rate must be > 0, got {self.learning_rate}")


def _images(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float32) / 255.0)[..., None]


def evaluate_logits(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy (fraction) and mean negative log-likelihood (nats) of softmax(logits)."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {"test_accuracy": float((logits.argmax(1) == labels).mean()),
            "test_nll": float(-log_probs[np.arange(len(labels)), labels].mean())}


def train_linear(config: LinearConfig, x_train, y_train, x_test, y_test, seed: int,
                 on_epoch: Callable[[int, dict], None] = lambda epoch, metrics: None) -> dict:
    """Softmax regression by Adam; returns the final test metrics and seconds of training."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    xtr = _images(x_train).reshape(len(x_train), -1)
    xte = _images(x_test).reshape(len(x_test), -1)
    model = tf.keras.Sequential([tf.keras.Input((xtr.shape[1],)), tf.keras.layers.Dense(10)])
    model.compile(tf.keras.optimizers.Adam(config.learning_rate),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    for epoch in range(config.epochs):
        history = model.fit(xtr, y_train.astype(np.int64), batch_size=config.batch_size, epochs=1,
                            shuffle=True, verbose=0)
        on_epoch(epoch, {"train_loss": float(history.history["loss"][-1])})
    seconds = time.perf_counter() - start
    metrics = evaluate_logits(model.predict(xte, batch_size=1000, verbose=0), y_test)
    return {**metrics, "seconds_train": seconds}


def build_cnn(config: CNNConfig, image_shape=(28, 28, 1)):
    import tensorflow as tf

    return tf.keras.Sequential([
        tf.keras.Input(image_shape),
        tf.keras.layers.Conv2D(config.filters, config.kernel, padding="valid"),
        tf.keras.layers.LeakyReLU(negative_slope=config.slope),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
    ])


def train_cnn(config: CNNConfig, x_train, y_train, x_test, y_test, seed: int, eval_every: int,
              on_batch: Callable[[int, dict], None] = lambda seen, metrics: None,
              on_eval: EvalCallback = lambda seen, metrics: None) -> dict:
    """One pass of minibatch Adam over the training set in the given order.

    ``on_batch(seen, {train_batch_accuracy, seconds_per_batch})`` after every batch (accuracy of
    the batch *before* its update); ``on_eval(seen, {test_accuracy, test_nll})`` every
    ``eval_every`` examples and after the last batch.
    """
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    xtr, xte = _images(x_train), _images(x_test)
    ytr = y_train.astype(np.int64)
    model = build_cnn(config, xtr.shape[1:])
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return logits

    def evaluate():
        return evaluate_logits(model.predict(xte, batch_size=1000, verbose=0), y_test)

    bs, seen, start, metrics = config.batch_size, 0, time.perf_counter(), {}
    next_eval = eval_every
    for i in range(0, len(xtr), bs):
        t0 = time.perf_counter()
        logits = step(tf.constant(xtr[i:i + bs]), tf.constant(ytr[i:i + bs])).numpy()
        seen += len(logits)
        on_batch(seen, {"train_batch_accuracy": float((logits.argmax(1) == ytr[i:i + bs]).mean()),
                        "seconds_per_batch": time.perf_counter() - t0})
        if seen >= next_eval or seen == len(xtr):
            metrics = evaluate()
            on_eval(seen, metrics)
            while next_eval <= seen:
                next_eval += eval_every
    return {**metrics, "seconds_train": time.perf_counter() - start}
