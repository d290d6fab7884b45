"""Transposed-convolution reconstruction: every input element is explained by filters applied to
the latent coefficient maps of the layer above.

For input element (b, i, j, c) of x (B, H, W, C), coefficient maps z (B, H−k+1, W−k+1, F) zero-
padded by k−1 to z̃, filters W (k, k, C, F) and bias b (C):

    a = Σ_{dy,dx,f} W[dy,dx,c,f] · z̃[b, i+dy, j+dx, f] + b_c,     h = g(a) − x,     E = h²/σ².

The factor has N = 2Fk² + 2 scalar variables.  Linearised at v₀ with s₀ = Σ W₀ z̃₀ and g′ = g′(a₀):
J_x = −1, J_W = g′ z̃₀, J_z = g′ W₀ (0 on padded positions), J_b = g′, and the whitened target is
r = √k · g′ · s₀ / σ (for g = identity and the leaky ReLU, g(a₀) = g′ a₀).  The robust weight k is
shared by the channels of a pixel (E summed over c), as in the reference.

Messages use the rank-1 closed form (pipeline.gbp.messages) split by variable kind:

* coefficients, inputs, biases: exact cavities from stored per-edge messages (padded window
  entries are given a huge cavity precision instead of a zero Jacobian, so no mask is needed);
* filter weights: every weight is shared by all B·H·W factors of its channel, so one factor's
  message is a negligible part of its marginal and the cavity is taken to be the marginal (the
  idea behind AMP's treatment of cavities).  Then no per-factor filter message is stored: the
  per-factor sums Σ_w s_w, Σ_w t_w are convolutions of z̃₀², z̃₀ with 1/Λ_W, μ_W, and the
  messages' sums over factors are correlations of per-factor scalars with z̃₀², z̃₀ (the filter
  gradient of a convolution).  The leave-one-out terms s_w = j_w²/Λ_W are O(1/N) and dropped;
  t_w ≈ j_w μ_w is not small and is kept (the "Onsager" correction μ_w Σ_f Λ_{f→w}).  ``exact_filter_messages`` keeps per-edge filter messages instead,
  for comparison.

Shapes: per-edge tensors are (B, H, W, C, K, F) with K = k² window offsets (dy-major).
"""
from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from pipeline.gbp.factors.activations import activation, activation_derivative
from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.robust import robust_weight

PAD_PRECISION = 1e30  # precision of padded (non-existent) coefficients: they add ~0 to every sum


def pad_coeffs(z: tf.Tensor, kernel: int, value: float = 0.0) -> tf.Tensor:
    """z (B, h, w, F) → z̃ (B, h+2(k−1), w+2(k−1), F), padded with ``value``."""
    p = kernel - 1
    return tf.pad(z, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=value)


def windows(z_padded: tf.Tensor, kernel: int, height: int, width: int) -> tf.Tensor:
    """z̃ → (B, H, W, K, F): the k×k window of every input element, offsets dy-major."""
    return tf.stack([z_padded[:, dy:dy + height, dx:dx + width, :]
                     for dy in range(kernel) for dx in range(kernel)], axis=3)


def scatter_windows(per_window: tf.Tensor, kernel: int) -> tf.Tensor:
    """Adjoint of ``windows`` then crop: (B, H, W, K, F) → (B, H−k+1, W−k+1, F) sums."""
    p = kernel - 1
    total = 0.0
    for d in range(kernel * kernel):
        dy, dx = divmod(d, kernel)
        total += tf.pad(per_window[:, :, :, d, :], [[0, 0], [dy, p - dy], [dx, p - dx], [0, 0]])
    return total[:, p:-p, p:-p, :]


def correlate(z_padded: tf.Tensor, kernel_kcf: tf.Tensor) -> tf.Tensor:
    """Σ_{dy,dx,f} K[dy,dx,c,f] · z̃[b,i+dy,j+dx,f] → (B, H, W, C) (a VALID cross-correlation)."""
    return tf.nn.conv2d(z_padded, tf.transpose(kernel_kcf, [0, 1, 3, 2]), strides=1, padding="VALID")


def filter_correlation(per_factor: tf.Tensor, z_padded: tf.Tensor, kernel: int) -> tf.Tensor:
    """Σ_{b,i,j} P[b,i,j,c] · z̃[b,i+dy,j+dx,f] → (k, k, C, F): the filter gradient of ``correlate``."""
    h, w = tf.shape(per_factor)[1], tf.shape(per_factor)[2]
    patches = windows(z_padded, kernel, h, w)  # (B,H,W,K,F)
    summed = tf.einsum("bhwc,bhwkf->kcf", per_factor, patches)
    return tf.reshape(summed, [kernel, kernel, tf.shape(per_factor)[3], tf.shape(z_padded)[3]])


def filters_per_window(filters: tf.Tensor) -> tf.Tensor:
    """(k, k, C, F) → (1, 1, 1, C, K, F): the filter entry each window edge multiplies."""
    k, channels = filters.shape[0], filters.shape[2]
    return tf.reshape(tf.transpose(tf.reshape(filters, [k * k, channels, -1]), [1, 0, 2]),
                      [1, 1, 1, channels, k * k, -1])


class Linearisation(NamedTuple):
    """Per-factor quantities (B, H, W, C) at the linearisation point."""

    scale: tf.Tensor  # √k · g′ / σ : multiplies J_W, J_z, J_b entries
    x_scale: tf.Tensor  # −√k / σ : J_x, whitened
    r: tf.Tensor  # √k (Jᵀv₀ − h(v₀)) / σ
    k: tf.Tensor  # robust weight (per pixel, broadcast over channels)


class ReconstructionMessages(NamedTuple):
    """New factor→variable messages of one visit."""

    to_input: Gaussian  # (B, H, W, C)
    to_bias: Gaussian  # (B, H, W, C) one per factor
    to_coeffs: Gaussian  # (B, H, W, C, K, F) per edge
    filter_sum: Gaussian  # (k, k, C, F) Σ over factors (approximate scheme)
    to_filters: Gaussian | None  # (B, H, W, C, K, F) per edge (exact scheme only)


class TransposedConvReconstruction:
    """All reconstruction factors of one layer (one per input element)."""

    def __init__(self, kernel: int, sigma: float, n_rob: float | None, activation_kind: str,
                 robust_kind: str = "tukey", exact_filter_messages: bool = False):
        self.kernel, self.sigma, self.n_rob = kernel, sigma, n_rob
        self.activation_kind, self.robust_kind = activation_kind, robust_kind
        self.exact_filter_messages = exact_filter_messages

    def prediction(self, z: tf.Tensor, filters: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
        """g(a): the reconstruction of the input from coefficient means (B, H, W, C)."""
        return activation(correlate(pad_coeffs(z, self.kernel), filters) + bias, self.activation_kind)

    def linearise(self, x0, z0_padded, filters0, bias0) -> Linearisation:
        s0 = correlate(z0_padded, filters0)
        a0 = s0 + bias0
        gp = activation_derivative(a0, self.activation_kind)
        h0 = activation(a0, self.activation_kind) - x0
        if self.n_rob is None:
            k = tf.ones_like(h0)
        else:
            energy = tf.reduce_sum(h0 * h0, axis=-1, keepdims=True) / self.sigma**2
            k = tf.broadcast_to(robust_weight(energy, self.n_rob, self.robust_kind), tf.shape(h0))
        root_k = tf.sqrt(k) / self.sigma
        return Linearisation(root_k * gp, -root_k, root_k * gp * s0, k)

    def messages(self, lin: Linearisation, z0_padded, filters0,
                 input_cavity: Gaussian, bias_cavity: Gaussian, coeff_cavity: Gaussian,
                 filter_cavity: Gaussian) -> ReconstructionMessages:
        """Rank-1 messages of every factor given the variable→factor cavities.

        ``coeff_cavity`` is per edge (B,H,W,C,K,F); window entries on padding carry a huge
        precision (``PAD_PRECISION``) so they add nothing to the sums, and the messages sent to
        them are cropped away by the caller.  ``filter_cavity`` is the filter marginal (k,k,C,F)
        shared by every factor, or per edge (B,H,W,C,K,F) with ``exact_filter_messages``.

        With s_i = j_i²/λ_i, m_i = ν_i/λ_i and per factor S = Σ s_i, T = Σ (s_i r + j_i m_i),
        the closed form rearranges to one shared per-factor scalar R = r(1 + S) − T:
            Λ_{f→i} = j_i² / (1 + S − s_i),     η_{f→i} = j_i (R + j_i m_i) / (1 + S − s_i).
        """
        kernel, r, scale = self.kernel, lin.r, lin.scale
        h, w = tf.shape(r)[1], tf.shape(r)[2]
        scale6 = scale[..., None, None]
        # coefficients: j = scale · W₀[dy,dx,c,f], arranged (1,1,1,C,K,F)
        w6 = filters_per_window(filters0)
        inv_z = 1.0 / coeff_cavity.lam
        w2_inv = w6 * w6 * inv_z
        w_m = w6 * coeff_cavity.eta * inv_z
        s_sum = scale * scale * tf.reduce_sum(w2_inv, axis=[-2, -1])
        jm_sum = scale * tf.reduce_sum(w_m, axis=[-2, -1])
        # inputs and biases: one edge per factor
        j_x, j_b = lin.x_scale, scale
        s_x, m_x = j_x * j_x / input_cavity.lam, input_cavity.mean
        s_b, m_b = j_b * j_b / bias_cavity.lam, bias_cavity.mean
        s_sum += s_x + s_b
        jm_sum += j_x * m_x + j_b * m_b
        # filters
        z0_win = windows(z0_padded, kernel, h, w)[:, :, :, None]  # (B,H,W,1,K,F)
        if self.exact_filter_messages:
            j_w = scale6 * z0_win
            s_w = j_w * j_w / filter_cavity.lam
            s_sum += tf.reduce_sum(s_w, axis=[-2, -1])
            jm_sum += tf.reduce_sum(j_w * filter_cavity.mean, axis=[-2, -1])
        else:
            s_sum += scale * scale * correlate(z0_padded * z0_padded, 1.0 / filter_cavity.lam)
            jm_sum += scale * correlate(z0_padded, filter_cavity.mean)
        big_r = r * (1.0 + s_sum) - (r * s_sum + jm_sum)  # R = r(1+S) − T, T = rS + Σ j m

        def message(j, s, m, S, R):
            denom = 1.0 / (1.0 + S - s)
            return Gaussian(j * (R + j * m) * denom, j * j * denom)

        s6, r6 = s_sum[..., None, None], big_r[..., None, None]
        j_z = scale6 * w6
        to_coeffs = Gaussian(j_z * (r6 + scale6 * w_m) / (1.0 + s6 - scale6 * scale6 * w2_inv),
                             j_z * j_z / (1.0 + s6 - scale6 * scale6 * w2_inv))
        to_input = message(j_x, s_x, m_x, s_sum, big_r)
        to_bias = message(j_b, s_b, m_b, s_sum, big_r)
        if self.exact_filter_messages:
            to_filters = message(j_w, s_w, filter_cavity.mean, s6, r6)
            filter_sum = None
        else:
            # Σ_f of the filter messages with s_w = O(1/N) dropped: Λ = Σ j_w²/(1+S),
            # η = Σ j_w (R + j_w μ_w)/(1+S) = Σ j_w R/(1+S) + μ_w Σ Λ  (the j_w μ_w leave-one-out
            # term is O(1) and is kept — an Onsager-like correction)
            to_filters = None
            inv = 1.0 / (1.0 + s_sum)
            lam_sum = filter_correlation(scale * scale * inv, z0_padded * z0_padded, kernel)
            eta_sum = filter_correlation(scale * big_r * inv, z0_padded, kernel)
            filter_sum = Gaussian(eta_sum + filter_cavity.mean * lam_sum, lam_sum)
        return ReconstructionMessages(to_input, to_bias, to_coeffs, filter_sum, to_filters)
