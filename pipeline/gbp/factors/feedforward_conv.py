"""Feedforward convolution factor with fixed inputs (the first layer of the MNIST classifier).

One factor per output element (b, i, j, f) of a VALID, stride-1 cross-correlation:

    a = Σ_d W[d, f] · P[b, i, j, d] + β_f,      h = g(a) − z[b, i, j, f],     E = h² / σ²

where P[b, i, j, :] is the k×k×C_in input patch (flattened in (dy, dx, c) order, so W is the
(k, k, C_in, F) kernel reshaped to (k²·C_in, F)), β_f the bias of filter f (one per filter: the
reference tied all filters' biases together through a reduction over the filter axis, doc §9.1;
we implement the intended per-filter bias) and g the leaky ReLU g(a) = max(a, α·a).  The inputs
are fixed (the image), so they are constants, not variables.

Linearised at v₀ (current means of W, β and z), with g′ = g′(a₀) (1 or α), the whitened
Jacobian is j_W = g′·P/σ, j_β = g′/σ, j_z = −1/σ and the whitened target
r = (g′·a₀ − g(a₀))/σ, which is 0 for the leaky ReLU (piecewise linear through 0).

Messages (rank-1 closed form, pipeline.gbp.messages): with incoming means μ and variances v,
U = Σ j·μ, S = Σ j²·v, the message to variable k is

    Λ_k = j_k² / D_k,   η_k = j_k (r − U + j_k μ_k) / D_k,   D_k = 1 + S − s_k,  s_k = j_k² v_k.

Shared parameters (W, β) are connected to B·H′·W′ factors each, so their per-factor messages are
never stored: the incoming message from W or β is taken to be its current marginal (each factor's
own message is ~1/(B·H′·W′) of it), and the factor family's messages to W are returned already
summed over (b, i, j).  S and U are then matrix products with the patches.  The leave-one-out
denominator of a weight message, D_k = (1 + S) − s_k, depends on the weight, so its reciprocal is
expanded as 1/(D − s) = Σ_{m≥0} s^m / D^{m+1}: every term is again one patch contraction (all
of them one batched matrix product with the powers of the fixed patches) and all terms are
positive, so truncating after ``series_terms`` terms can only under-state the message
precision (never over-confident); the ratio s/D is small once the weights are learned.  Messages
to z are per element and exact (leave-one-out of the scalar groups is formed without
subtraction, so no cancellation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from pipeline.gbp.factors.activations import leaky_relu, leaky_relu_derivative
from pipeline.gbp.gaussian import Gaussian


class ConvMessages(NamedTuple):
    z: Gaussian  # (B, H′, W′, F) one message per output variable
    weights: Gaussian  # (k²·C_in, F) summed over every factor that uses the weight
    bias: Gaussian  # (F,) summed over every factor


def extract_patches(images: tf.Tensor, kernel: int) -> tf.Tensor:
    """(B, H, W, C) → (B, H−k+1, W−k+1, k²·C) patches in (dy, dx, c) order (VALID, stride 1)."""
    return tf.image.extract_patches(images, [1, kernel, kernel, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")


@dataclass(frozen=True)
class FeedforwardConvFactor:
    sigma: float  # std of the factor's residual h, in activation units
    slope: float = 0.2  # leaky-ReLU slope α for a ≤ 0
    series_terms: int = 4  # terms of the leave-one-out series for weight messages

    def __post_init__(self):
        if self.sigma <= 0:
            raise ValueError(f"conv factor sigma must be > 0, got {self.sigma}")
        if not 0.0 <= self.slope <= 1.0:
            raise ValueError(f"leaky-ReLU slope must be in [0, 1], got {self.slope}")
        if not 1 <= self.series_terms <= 6:
            raise ValueError(f"series_terms must be in 1..6, got {self.series_terms}")

    def preactivation(self, patches: tf.Tensor, w_mean: tf.Tensor, b_mean: tf.Tensor) -> tf.Tensor:
        """a = P·W + β, (B, H′, W′, F)."""
        return tf.einsum("...d,df->...f", patches, w_mean) + b_mean

    def forward(self, patches, w_mean, b_mean) -> tf.Tensor:
        """g(P·W + β): the deterministic forward pass at the given parameter values."""
        return leaky_relu(self.preactivation(patches, w_mean, b_mean), self.slope)

    def fixed_parameter_message(self, patches, w_mean, b_mean) -> Gaussian:
        """Message to z when W and β are fixed (test time): N(g(a), σ²) exactly (N = 1)."""
        out = self.forward(patches, w_mean, b_mean)
        lam = tf.ones_like(out) / self.sigma**2
        return Gaussian(out * lam, lam)

    def jacobian(self, patches, w_lin, b_lin):
        """Whitened Jacobian at the linearisation point: (j_W (B,H′,W′,F,D), j_β (B,H′,W′,F),
        j_z (B,H′,W′,F)) and the whitened target r (B,H′,W′,F).  Used by tests and references."""
        a0 = self.preactivation(patches, w_lin, b_lin)
        gp = leaky_relu_derivative(a0, self.slope)
        j_w = gp[..., None] * patches[..., None, :] / self.sigma
        r = (gp * a0 - leaky_relu(a0, self.slope)) / self.sigma
        return j_w, gp / self.sigma, -tf.ones_like(gp) / self.sigma, r

    def patch_powers(self, patches: tf.Tensor) -> tf.Tensor:
        """(2M, n, D): P^{2m+2} for m < M, then P^{2m+1}, over the n = Π(factor axes) factors.
        Constant while the inputs are fixed, so a model computes it once per batch."""
        flat = tf.reshape(patches, [-1, patches.shape[-1]])
        p2 = flat * flat
        even, odd = [p2], [flat]
        for _ in range(self.series_terms - 1):
            even.append(even[-1] * p2)
            odd.append(odd[-1] * p2)
        return tf.stack(even + odd)

    def messages(self, patches: tf.Tensor, w: Gaussian, b: Gaussian, z: Gaussian,
                 w_lin: tf.Tensor, b_lin: tf.Tensor, powers: tf.Tensor | None = None) -> ConvMessages:
        """All factor→variable messages of the layer.

        Args:
          patches: (B, H′, W′, D) fixed input patches, D = k²·C_in (any leading factor
            axes, e.g. the window-major (B, H′/2, W′/2, 4, D) layout of the classifier).
          w: (D, F) incoming from the weights (their marginal); b: (F,) likewise.
          z: (B, H′, W′, F) incoming from each output variable (its cavity: prior + other factors).
          w_lin, b_lin: the linearisation point of the parameters.
          powers: ``patch_powers(patches)`` if already computed.
        """
        sigma = tf.cast(self.sigma, patches.dtype)
        mu_w, v_w = w.eta / w.lam, 1.0 / w.lam
        mu_b, v_b = b.eta / b.lam, 1.0 / b.lam
        mu_z, v_z = z.eta / z.lam, 1.0 / z.lam
        a0 = self.preactivation(patches, w_lin, b_lin)
        gp = leaky_relu_derivative(a0, self.slope)
        r = (gp * a0 - leaky_relu(a0, self.slope)) / sigma
        c = gp * gp / sigma**2  # j_W² / P² per factor
        p2 = patches * patches
        s_w = c * tf.einsum("...d,df->...f", p2, v_w)  # Σ_d s_d
        u_w = gp / sigma * tf.einsum("...d,df->...f", patches, mu_w)  # Σ_d j_d μ_d
        s_b, u_b = c * v_b, gp / sigma * mu_b
        s_z, u_z = v_z / sigma**2, -mu_z / sigma

        # z: j_z = −1/σ, D = 1 + S_W + s_β
        d_z = 1.0 + s_w + s_b
        to_z = Gaussian(-(r - u_w - u_b) / (sigma * d_z), 1.0 / (sigma**2 * d_z))

        # β: j_β = g′/σ, D = 1 + S_W + s_z, summed over the factors of each filter
        d_b = 1.0 + s_w + s_z
        j_b = gp / sigma
        axes = list(range(len(patches.shape) - 1))
        to_b = Gaussian(tf.reduce_sum(j_b * (r - u_w - u_z) / d_b, axis=axes),
                        tf.reduce_sum(j_b * j_b / d_b, axis=axes))

        # W: Σ_factors j_d² / (D − s_d) and Σ j_d (r − U) / (D − s_d) by the series in s_d / D.
        # Normalised so that float32 keeps its range: v = v_max,f · v̂ (v̂ ≤ 1), t = c·q·v_max,f,
        #   Σ j_d²/(D − s_d)   = Σ_m v̂^m / v_max · Σ_factors P_d^{2m+2} t^{m+1}
        #   Σ j_d ρ/(D − s_d)  = Σ_m v̂^m · Σ_factors P_d^{2m+1} (resid·q) t^m
        # All 2M patch contractions are one batched matrix product with the powers of P.
        if powers is None:
            powers = self.patch_powers(patches)
        q = 1.0 / (1.0 + s_w + s_b + s_z)
        resid = gp / sigma * (r - (u_w + u_b + u_z))  # j_d (r − U) / P_d
        v_max = tf.reduce_max(v_w, axis=0)
        v_hat = v_w / v_max
        t = tf.reshape(c * q * v_max, [-1, v_w.shape[1]])
        rq = tf.reshape(resid * q, [-1, v_w.shape[1]])
        lam_coeffs, eta_coeffs, t_pow = [], [], t
        eta_coeffs.append(rq)
        for m in range(self.series_terms):
            lam_coeffs.append(t_pow)
            if m + 1 < self.series_terms:
                eta_coeffs.append(rq * t_pow)
                t_pow = t_pow * t
        sums = tf.matmul(powers, tf.stack(lam_coeffs + eta_coeffs), transpose_a=True)  # (2M, D, F)
        lam_w = tf.zeros_like(v_w)
        eta_w = tf.zeros_like(v_w)
        v_pow = tf.ones_like(v_w)
        for m in range(self.series_terms):
            lam_w += v_pow * sums[m]
            eta_w += v_pow * sums[self.series_terms + m]
            v_pow = v_pow * v_hat
        lam_w = lam_w / v_max
        eta_w = eta_w + mu_w * lam_w
        return ConvMessages(to_z, Gaussian(eta_w, lam_w), to_b)
