"""2×2 nearest-neighbour upsampling: one linear factor per fine element tying it to its coarse
parent, ``h = z_fine − u_coarse``, E = h²/σ².

With a² = 1/σ² the factor is rank-1 with j = (a, −a) and no target, so (as for pairwise
smoothness) each message has the other end's cavity mean and precision a²λ/(a² + λ).  Coarse
grids have ⌈fine/2⌉ rows and columns; fine elements past an odd border have no partner row.
"""
from __future__ import annotations

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.messages import difference_factor_message


def coarse_size(fine: int) -> int:
    return (fine + 1) // 2


def upsample_nearest(u: tf.Tensor, fine_height, fine_width) -> tf.Tensor:
    """(B, h, w, C) → (B, fine_height, fine_width, C): each coarse value repeated 2×2, cropped."""
    up = tf.repeat(tf.repeat(u, 2, axis=1), 2, axis=2)
    return up[:, :fine_height, :fine_width, :]


def block_sum(fine: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) → (B, ⌈H/2⌉, ⌈W/2⌉, C): the sum over each 2×2 block (adjoint of upsampling)."""
    h, w = tf.shape(fine)[1], tf.shape(fine)[2]
    padded = tf.pad(fine, [[0, 0], [0, h % 2], [0, w % 2], [0, 0]])
    shape = tf.shape(padded)
    blocks = tf.reshape(padded, [shape[0], shape[1] // 2, 2, shape[2] // 2, 2, shape[3]])
    return tf.reduce_sum(blocks, axis=[2, 4])


def upsample_messages(fine_cavity: Gaussian, coarse_cavity_on_fine: Gaussian, sigma: float):
    """Messages (to fine, to coarse), both on the fine grid, from cavities on the fine grid."""
    a2 = 1.0 / sigma**2
    return (difference_factor_message(coarse_cavity_on_fine, a2),
            difference_factor_message(fine_cavity, a2))
