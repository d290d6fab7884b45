"""Robust pixel observation: a unary factor tying each pixel variable x to its observed value y.

Energy ``E = (x − y)² / σ²`` per pixel and channel.  With the robust weight k evaluated at the
linearisation point x₀ (the current pixel mean) the message is ``(k·y/σ², k/σ²)``: an impulse-
corrupted pixel far from what the rest of the graph believes gets its precision cut so that its
energy is capped at N_rob² (Tukey) instead of pulling the estimate.
"""
from __future__ import annotations

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.robust import robust_weight


def pixel_observation_message(observed: tf.Tensor, pixel_mean: tf.Tensor, sigma: float,
                              n_rob: float | None, robust_kind: str = "tukey") -> Gaussian:
    """Message (k·y/σ², k/σ²) for every pixel; k = 1 when ``n_rob`` is None. Intensities in [0, 1]."""
    precision = tf.cast(1.0 / sigma**2, observed.dtype)
    if n_rob is None:
        k = tf.ones_like(observed)
    else:
        k = robust_weight((pixel_mean - observed) ** 2 * precision, n_rob, robust_kind)
    return Gaussian(k * precision * observed, k * precision)
