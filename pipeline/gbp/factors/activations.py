"""Activation functions g of nonlinear factors, with the derivative g′ used to linearise them."""
from __future__ import annotations

import tensorflow as tf

ACTIVATIONS = ("identity", "leaky_relu")
LEAKY_SLOPE = 0.2  # g(a) = max(a, 0.2·a)


def leaky_relu(a: tf.Tensor, slope: float = LEAKY_SLOPE) -> tf.Tensor:
    """g(a) = max(a, α·a) for α ≤ 1 (α = 1: identity)."""
    return tf.where(a > 0, a, slope * a)


def leaky_relu_derivative(a: tf.Tensor, slope: float = LEAKY_SLOPE) -> tf.Tensor:
    """g′(a) = 1 for a > 0, else α (evaluated at the linearisation point)."""
    return tf.where(a > 0, tf.ones_like(a), slope * tf.ones_like(a))


def activation(a: tf.Tensor, kind: str) -> tf.Tensor:
    """g(a): identity, or leaky ReLU with slope 0.2 for a ≤ 0."""
    return a if kind == "identity" else leaky_relu(a)


def activation_derivative(a: tf.Tensor, kind: str) -> tf.Tensor:
    """g′(a): 1, or the leaky ReLU's 1 / 0.2."""
    return tf.ones_like(a) if kind == "identity" else leaky_relu_derivative(a)
