"""Scalar Gaussians in natural (information) parameters, stored elementwise.

A belief or message over a tensor of independent scalar variables is the pair
``(eta, lam)`` with ``eta = mu / sigma**2`` (information vector) and ``lam = 1 / sigma**2``
(precision).  Products of Gaussians are sums of natural parameters; dividing a message out of a
marginal is a subtraction.
"""
from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class Gaussian(NamedTuple):
    """Elementwise Gaussian ``N(eta / lam, 1 / lam)`` in natural parameters."""

    eta: tf.Tensor
    lam: tf.Tensor

    @staticmethod
    def from_mean_std(mean, std) -> "Gaussian":
        """``eta = mean / std²``, ``lam = 1 / std²`` (std broadcast to mean's shape)."""
        mean = tf.convert_to_tensor(mean)
        precision = tf.ones_like(mean) / tf.cast(std, mean.dtype) ** 2
        return Gaussian(mean * precision, precision)

    @staticmethod
    def zeros_like(x) -> "Gaussian":
        """The uninformative message (η = 0, Λ = 0)."""
        return Gaussian(tf.zeros_like(x), tf.zeros_like(x))

    @property
    def mean(self) -> tf.Tensor:
        """μ = η / Λ."""
        return self.eta / self.lam

    @property
    def variance(self) -> tf.Tensor:
        """σ² = 1 / Λ."""
        return 1.0 / self.lam

    @property
    def std(self) -> tf.Tensor:
        """σ = Λ^(-1/2)."""
        return tf.math.rsqrt(self.lam)

    def __add__(self, other: "Gaussian") -> "Gaussian":  # type: ignore[override]
        """Product of densities = sum of natural parameters."""
        return Gaussian(self.eta + other.eta, self.lam + other.lam)

    def __sub__(self, other: "Gaussian") -> "Gaussian":
        """Division of densities (divide a message out of a marginal)."""
        return Gaussian(self.eta - other.eta, self.lam - other.lam)

    def scale(self, k) -> "Gaussian":
        """Raise the density to the power k: (k·η, k·Λ) (robust rescaling of a unary factor)."""
        return Gaussian(k * self.eta, k * self.lam)
