"""Dense factor, decomposed into one scalar factor per (example n, output o).

    h = y[n, o] − (Σ_k w[k, o] · x[n, k] + β_o),   E = h² / σ²    (identity activation)

Variables: the inputs x[n, :] (K), the weight column w[:, o] (K), the bias β_o and the output
y[n, o]; N = 2K + 2.  Linearised at (x̄, w̄) the whitened Jacobian is j_x = −w̄[:, o]/σ,
j_w = −x̄[n, :]/σ, j_β = −1/σ, j_y = 1/σ and the whitened target r = −w̄[:, o]·x̄[n, :]/σ.  With
the weights and bias fixed (test time) they are constants: j has only x and y, and r = β̄_o/σ.

Messages use the rank-1 closed form (see feedforward_conv): with incoming means μ and variances
v, U = Σ j μ, S = Σ j² v, message to k: Λ_k = j_k²/D_k, η_k = j_k (r − U + j_k μ_k)/D_k with
D_k = 1 + S − s_k.  Per-factor messages to x (shared by the O outputs) and to w and β (shared by
the B examples) are never materialised: the incoming message of those groups is their marginal,
and the messages are returned summed over the factors that share the variable.  S and U are
matrix products; the leave-one-out reciprocal 1/(D − s_k) is the positive series
Σ_m s_k^m / D^{m+1}, each term a (B, O) × (O, K) product.  Messages to y (one factor each) are
exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian


class DenseMessages(NamedTuple):
    x: Gaussian  # (B, K) summed over outputs o
    y: Gaussian  # (B, O)
    weights: Gaussian | None  # (K, O) summed over examples (None with fixed parameters)
    bias: Gaussian | None  # (O,) summed over examples


def _series(v: tf.Tensor, q: tf.Tensor, a: tf.Tensor, j: tf.Tensor, resid: tf.Tensor,
            terms: int, examples_first: bool):
    """Σ over the sharing factors of j²/(D − s) and j·resid/(D − s), s = a·v, by the series.

    ``examples_first``: the group is indexed (n, k) and the factors sharing it are the outputs o
    (x-messages: q, resid (B,O); a, j (K,O)).  Otherwise the group is (k, o) shared over the
    examples n (w-messages: a, j (B,K)).
    """
    dtype = v.dtype  # float64 inside: the powers a^m, q^m, v^m leave float32's range
    v, q, a, j, resid = (tf.cast(t, tf.float64) for t in (v, q, a, j, resid))
    lam = tf.zeros_like(v)
    eta = tf.zeros_like(v)
    qa = q  # q^{m+1}
    rq = resid * q  # resid q^{m+1}
    a_pow = a  # a^{m+1}
    ja_pow = j  # j a^m
    v_pow = tf.ones_like(v)
    for m in range(terms):
        if examples_first:
            lam += v_pow * tf.matmul(qa, a_pow, transpose_b=True)
            eta += v_pow * tf.matmul(rq, ja_pow, transpose_b=True)
        else:
            lam += v_pow * tf.matmul(a_pow, qa, transpose_a=True)
            eta += v_pow * tf.matmul(ja_pow, rq, transpose_a=True)
        if m + 1 < terms:
            qa, rq = qa * q, rq * q
            a_pow, ja_pow = a_pow * a, ja_pow * a
            v_pow = v_pow * v
    return tf.cast(lam, dtype), tf.cast(eta, dtype)


@dataclass(frozen=True)
class DenseFactor:
    sigma: float
    series_terms: int = 3

    def __post_init__(self):
        if self.sigma <= 0:
            raise ValueError(f"dense factor sigma must be > 0, got {self.sigma}")
        if self.series_terms < 1:
            raise ValueError(f"series_terms must be ≥ 1, got {self.series_terms}")

    def forward(self, x, w_mean, b_mean):
        return tf.matmul(x, w_mean) + b_mean

    def jacobian(self, x_lin, w_lin):
        """Whitened (j_x (B,O,K), j_w (B,O,K), j_β, j_y (B,O)) and r (B,O) for tests/references."""
        bsz, out = x_lin.shape[0], w_lin.shape[1]
        j_x = tf.broadcast_to(-tf.transpose(w_lin)[None] / self.sigma, [bsz, out, x_lin.shape[1]])
        j_w = tf.broadcast_to(-x_lin[:, None, :] / self.sigma, [bsz, out, x_lin.shape[1]])
        ones = tf.ones([bsz, out], x_lin.dtype)
        return j_x, j_w, -ones / self.sigma, ones / self.sigma, -tf.matmul(x_lin, w_lin) / self.sigma

    def messages(self, x: Gaussian, y: Gaussian, x_lin: tf.Tensor, w_lin: tf.Tensor,
                 w: Gaussian | None = None, b: Gaussian | None = None,
                 fixed_bias: tf.Tensor | None = None) -> DenseMessages:
        """Messages from all B·O factors.

        Args:
          x: (B, K) incoming from the inputs (their marginal); y: (B, O) cavity of the outputs.
          x_lin, w_lin: linearisation point (with fixed parameters ``w_lin`` is their value).
          w, b: incoming from weights (K, O) and bias (O,) (their marginals); None when fixed,
            in which case ``fixed_bias`` (O,) is the bias value.
        """
        dtype = x.eta.dtype
        sigma = tf.cast(self.sigma, dtype)
        learn = w is not None
        mu_x, v_x = x.eta / x.lam, 1.0 / x.lam
        mu_y, v_y = y.eta / y.lam, 1.0 / y.lam
        a_x = tf.square(w_lin) / sigma**2  # j_x² (K, O)
        jx = -w_lin / sigma
        s_x = tf.matmul(v_x, a_x)  # (B, O)
        u_x = tf.matmul(mu_x, jx)
        s_y, u_y = v_y / sigma**2, mu_y / sigma
        if learn:
            mu_w, v_w = w.eta / w.lam, 1.0 / w.lam
            mu_b, v_b = b.eta / b.lam, 1.0 / b.lam
            a_w = tf.square(x_lin) / sigma**2  # (B, K)
            jw = -x_lin / sigma
            s_w = tf.matmul(a_w, v_w)
            u_w = tf.matmul(jw, mu_w)
            s_b, u_b = v_b / sigma**2, -mu_b / sigma
            r = -tf.matmul(x_lin, w_lin) / sigma
        else:
            s_w = u_w = tf.zeros_like(s_x)
            s_b = u_b = tf.zeros_like(s_x[0])
            r = tf.broadcast_to(fixed_bias / sigma, tf.shape(s_x))

        d_y = 1.0 + s_x + s_w + s_b
        to_y = Gaussian((r - u_x - u_w - u_b) / (sigma * d_y), 1.0 / (sigma**2 * d_y))

        q = 1.0 / (1.0 + s_x + s_w + s_b + s_y)
        resid = r - (u_x + u_w + u_b + u_y)  # r − U
        lam_x, eta_x = _series(v_x, q, a_x, jx, resid, self.series_terms, examples_first=True)
        to_x = Gaussian(eta_x + mu_x * lam_x, lam_x)
        if not learn:
            return DenseMessages(to_x, to_y, None, None)
        lam_w, eta_w = _series(v_w, q, a_w, jw, resid, self.series_terms, examples_first=False)
        to_w = Gaussian(eta_w + mu_w * lam_w, lam_w)
        d_b = 1.0 + s_x + s_w + s_y
        to_b = Gaussian(tf.reduce_sum(-(r - u_x - u_w - u_y) / (sigma * d_b), axis=0),
                        tf.reduce_sum(1.0 / (sigma**2 * d_b), axis=0))
        return DenseMessages(to_x, to_y, to_w, to_b)
