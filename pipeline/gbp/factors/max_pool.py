"""2×2 max-pool factor (stride 2), one factor per output element.

For the window of inputs z_1..z_4 of output p:  h = max(z) − p,  E = h² / σ².  Linearised at
the current input means z̄ the Jacobian is one-hot at a = argmax z̄ (ties to the first index)
for the inputs and −1 for p; h is piecewise linear, so the whitened target r = 0 exactly and the
factor is the linear constraint z_a − p = 0 with noise σ.  Its rank-1 messages reduce to

    to z_a:  N(μ_p, σ² + v_p),      to p:  N(μ_{z_a}, σ² + v_{z_a}),

and exactly zero messages to the other three inputs (their Jacobian entry is 0), where (μ, v) are
the incoming cavity mean and variance.  Everything is elementwise over (B, H/2, W/2, C); no
patches are materialised: the window axis is made by a reshape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian


def to_windows(x: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) → (B, H/2, W/2, C, 4), window entries in (dy, dx) order."""
    b, h, w, c = x.shape
    x = tf.reshape(x, [-1, h // 2, 2, w // 2, 2, c])
    x = tf.transpose(x, [0, 1, 3, 5, 2, 4])
    return tf.reshape(x, [-1, h // 2, w // 2, c, 4])


def from_windows(x: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`to_windows`: (B, H/2, W/2, C, 4) → (B, H, W, C)."""
    b, h2, w2, c, _ = x.shape
    x = tf.reshape(x, [-1, h2, w2, c, 2, 2])
    x = tf.transpose(x, [0, 1, 4, 2, 5, 3])
    return tf.reshape(x, [-1, h2 * 2, w2 * 2, c])


def argmax_mask(z_lin: tf.Tensor) -> tf.Tensor:
    """One-hot (B, H/2, W/2, C, 4) of the first maximum of each window of ``z_lin``."""
    return tf.one_hot(tf.argmax(to_windows(z_lin), axis=-1, output_type=tf.int32), 4, dtype=z_lin.dtype)


class PoolMessages(NamedTuple):
    z: Gaussian  # (B, H, W, C): to every input (zero to non-maximal ones)
    p: Gaussian  # (B, H/2, W/2, C): to every output


@dataclass(frozen=True)
class MaxPoolFactor:
    sigma: float

    def __post_init__(self):
        if self.sigma <= 0:
            raise ValueError(f"max-pool factor sigma must be > 0, got {self.sigma}")

    def forward(self, z: tf.Tensor) -> tf.Tensor:
        return tf.reduce_max(to_windows(z), axis=-1)

    def jacobian(self, z_lin: tf.Tensor):
        """Whitened Jacobian (j_z (B,H/2,W/2,C,4), j_p (B,H/2,W/2,C)) and r (= 0)."""
        onehot = argmax_mask(z_lin)
        j_p = -tf.ones_like(onehot[..., 0]) / self.sigma
        return onehot / self.sigma, j_p, tf.zeros_like(j_p)

    def messages(self, z: Gaussian, p: Gaussian, z_lin: tf.Tensor) -> PoolMessages:
        """Messages given cavities ``z`` (B,H,W,C), ``p`` (B,H/2,W/2,C) and the inputs'
        linearisation point ``z_lin`` (B,H,W,C)."""
        sigma2 = tf.cast(self.sigma**2, z.eta.dtype)
        onehot = argmax_mask(z_lin)
        z_eta, z_lam = to_windows(z.eta), to_windows(z.lam)
        za_mean = tf.reduce_sum(onehot * z_eta / z_lam, axis=-1)
        za_var = tf.reduce_sum(onehot / z_lam, axis=-1)
        lam_p = 1.0 / (sigma2 + za_var)
        to_p = Gaussian(za_mean * lam_p, lam_p)
        lam_z = 1.0 / (sigma2 + 1.0 / p.lam)
        eta_z = p.eta / p.lam * lam_z
        to_z = Gaussian(from_windows(onehot * eta_z[..., None]), from_windows(onehot * lam_z[..., None]))
        return PoolMessages(to_z, to_p)
