"""Activation functions g of nonlinear factors, with the derivative g′ used to linearise them."""
from __future__ import annotations

import tensorflow as tf

ACTIVATIONS = ("identity", "leaky_relu")
LEAKY_SLOPE = 0.2  # g(a) = max(a, 0.2·a)


def activation(a: tf.Tensor, kind: str) -> tf.Tensor:
    """g(a): identity, or leaky ReLU with slope 0.2 for a ≤ 0."""
    return a if kind == "identity" else tf.where(a > 0, a, LEAKY_SLOPE * a)


def activation_derivative(a: tf.Tensor, kind: str) -> tf.Tensor:
    """g′(a): 1, or 1 for a > 0 and 0.2 otherwise (evaluated at the linearisation point)."""
    if kind == "identity":
        return tf.ones_like(a)
    return tf.where(a > 0, tf.ones_like(a), tf.fill(tf.shape(a), tf.constant(LEAKY_SLOPE, a.dtype)))
