"""2×2 max-pool factor (stride 2), one factor per output element.

For the window of inputs z_1..z_4 of output p:  h = max(z) − p,  E = h² / σ².  Linearised at
the current input means z̄ the Jacobian is one-hot at a = argmax z̄ (ties to the first index)
for the inputs and −1 for p; h is piecewise linear, so the whitened target r = 0 exactly and the
factor is the linear constraint z_a − p = 0 with noise σ.  Its rank-1 messages reduce to

    to z_a:  N(μ_p, σ² + v_p),      to p:  N(μ_{z_a}, σ² + v_{z_a}),

and exactly zero messages to the other three inputs (their Jacobian entry is 0), where (μ, v) are
the incoming cavity mean and variance.  Inputs are taken in window-major layout
(B, H/2, W/2, 4, C) — window entries in (dy, dx) order on the second-last axis — so a model that
keeps its pooled variables in that layout never transposes; :func:`to_windows` /
:func:`from_windows` convert from and to image layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.robust import check_positive


def to_windows(x: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) → (B, H/2, W/2, 4, C), window entries in (dy, dx) order."""
    _, h, w, c = x.shape
    x = tf.reshape(x, [-1, h // 2, 2, w // 2, 2, c])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [-1, h // 2, w // 2, 4, c])


def from_windows(x: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`to_windows`: (B, H/2, W/2, 4, C) → (B, H, W, C)."""
    _, h2, w2, _, c = x.shape
    x = tf.reshape(x, [-1, h2, w2, 2, 2, c])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [-1, h2 * 2, w2 * 2, c])


def argmax_mask(z_lin: tf.Tensor) -> tf.Tensor:
    """One-hot over the window axis (−2) of the first maximum of each window of ``z_lin``."""
    index = tf.argmax(z_lin, axis=-2, output_type=tf.int32)
    return tf.one_hot(index, z_lin.shape[-2], axis=len(z_lin.shape) - 2, dtype=z_lin.dtype)


class PoolMessages(NamedTuple):
    z: Gaussian  # (B, H/2, W/2, 4, C): to every input (zero to non-maximal ones)
    p: Gaussian  # (B, H/2, W/2, C): to every output


@dataclass(frozen=True)
class MaxPoolFactor:
    sigma: float

    def __post_init__(self):
        check_positive(sigma=self.sigma)

    def forward(self, z_windows: tf.Tensor) -> tf.Tensor:
        return tf.reduce_max(z_windows, axis=-2)

    def jacobian(self, z_lin: tf.Tensor):
        """Whitened Jacobian (j_z (…, 4, C), j_p (…, C)) and r (= 0), inputs window-major."""
        onehot = argmax_mask(z_lin)
        j_p = -tf.ones_like(onehot[..., 0, :]) / self.sigma
        return onehot / self.sigma, j_p, tf.zeros_like(j_p)

    def messages(self, z: Gaussian, p: Gaussian, z_lin: tf.Tensor) -> PoolMessages:
        """Messages given cavities ``z`` (…, 4, C), ``p`` (…, C) and the inputs' linearisation
        point ``z_lin`` (…, 4, C)."""
        sigma2 = tf.cast(self.sigma**2, z.eta.dtype)
        onehot = argmax_mask(z_lin)
        za_mean = tf.reduce_sum(onehot * z.eta / z.lam, axis=-2)
        za_var = tf.reduce_sum(onehot / z.lam, axis=-2)
        lam_p = 1.0 / (sigma2 + za_var)
        to_p = Gaussian(za_mean * lam_p, lam_p)
        lam_z = 1.0 / (sigma2 + 1.0 / p.lam)
        eta_z = p.eta / p.lam * lam_z
        return PoolMessages(Gaussian(onehot * eta_z[..., None, :], onehot * lam_z[..., None, :]), to_p)
