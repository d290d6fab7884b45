"""Robust pairwise smoothness between neighbouring pixels (the classical GBP denoiser).

For every VALID 3×3 window of the image and each channel, four factors link the centre pixel
x_c to its north, west, east and south neighbour x_n: ``h = x_n − x_c``, energy
``E = h² / σ²``, robust weight k evaluated at the current means.  An interior neighbour pair is
therefore represented twice (once from each endpoint's window) and border pairs once or not at
all: this is the counting of Nabarro et al. for which σ = 1.3, N_rob = 0.35 were tuned.

With a = √k/σ the factor is rank-1 with j = (a, −a) and no target (η_f = 0), and the closed form
(pipeline.gbp.messages) reduces to a series combination: the message to one end has mean equal
to the other end's cavity mean ν/λ and precision ``a²λ / (a² + λ)``.

Layout: factors of direction d live in tensors (4, B, H−2, W−2, C), indexed by their centre.
"""
from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.messages import difference_factor_message
from pipeline.gbp.robust import robust_weight

# (dy, dx) of the neighbour relative to the centre: north, west, east, south.
NEIGHBOUR_OFFSETS = ((-1, 0), (0, -1), (0, 1), (1, 0))


class PairMessages(NamedTuple):
    """Factor→variable messages of all pairwise factors: to the neighbour and to the centre."""

    to_neighbour: Gaussian
    to_centre: Gaussian


def _neighbour_slices(x: tf.Tensor) -> tf.Tensor:
    """(B,H,W,C) → (4,B,H−2,W−2,C): the neighbour of every interior centre, per direction."""
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    return tf.stack([x[:, 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx, :] for dy, dx in NEIGHBOUR_OFFSETS])


def _centres(x: tf.Tensor) -> tf.Tensor:
    """(B,H,W,C) → (1,B,H−2,W−2,C): the interior pixels (centres of VALID 3×3 windows)."""
    return x[None, :, 1:-1, 1:-1, :]


def _scatter_to_image(to_neighbour: tf.Tensor, to_centre: tf.Tensor) -> tf.Tensor:
    """Sum per-factor values (4,B,H−2,W−2,C) back onto the (B,H,W,C) pixels they belong to."""
    total = tf.pad(tf.reduce_sum(to_centre, axis=0), [[0, 0], [1, 1], [1, 1], [0, 0]])
    for d, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
        total += tf.pad(to_neighbour[d], [[0, 0], [1 + dy, 1 - dy], [1 + dx, 1 - dx], [0, 0]])
    return total


class PairwiseSmoothness:
    """The family of all robust 4-neighbour smoothness factors of one image."""

    def __init__(self, sigma: float, n_rob: float | None, robust_kind: str = "tukey"):
        self.sigma, self.n_rob, self.robust_kind = sigma, n_rob, robust_kind

    def zero_messages(self, image: tf.Tensor) -> PairMessages:
        zeros = tf.zeros_like(_neighbour_slices(image))
        return PairMessages(Gaussian(zeros, zeros), Gaussian(zeros, zeros))

    def message_sum(self, messages: PairMessages) -> Gaussian:
        """Σ over all factors of their messages to each pixel, (B,H,W,C)."""
        return Gaussian(
            _scatter_to_image(messages.to_neighbour.eta, messages.to_centre.eta),
            _scatter_to_image(messages.to_neighbour.lam, messages.to_centre.lam),
        )

    def messages(self, marginal: Gaussian, old: PairMessages, mean: tf.Tensor) -> PairMessages:
        """New factor→variable messages, linearised (robust weight) at pixel means ``mean``."""
        a2 = tf.ones_like(old.to_centre.lam) / self.sigma**2  # a² = k/σ²
        if self.n_rob is not None:
            energy = (_neighbour_slices(mean) - _centres(mean)) ** 2 / self.sigma**2
            a2 = a2 * robust_weight(energy, self.n_rob, self.robust_kind)
        # Cavities: marginal with this factor's own message divided out.
        nb_eta = _neighbour_slices(marginal.eta) - old.to_neighbour.eta
        nb_lam = _neighbour_slices(marginal.lam) - old.to_neighbour.lam
        c_eta = _centres(marginal.eta) - old.to_centre.eta
        c_lam = _centres(marginal.lam) - old.to_centre.lam
        return PairMessages(difference_factor_message(Gaussian(c_eta, c_lam), a2),
                            difference_factor_message(Gaussian(nb_eta, nb_lam), a2))
