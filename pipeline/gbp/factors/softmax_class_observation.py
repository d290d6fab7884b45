"""Softmax class observation: a 10-dimensional measurement of the logits of each example.

    E(f) = ‖onehot(label) − softmax(f)‖² / σ²

Linearised at f₀ with s = softmax(f₀) and the (symmetric, rank C−1) Jacobian J = diag(s) − s sᵀ:

    Λ_f = J Jᵀ / σ²,     η_f = J (J f₀ − s + onehot) / σ².

The factor is not rank-1, so its messages are computed by exact Gaussian marginalisation: with
the incoming cavity messages (ν, λ) (diagonal), the joint is A = Λ_f + diag(λ), c = η_f + ν; the
marginal of logit i has precision 1/(A⁻¹)_ii and information (A⁻¹c)_i/(A⁻¹)_ii, and the message
is that marginal divided by the cavity: (η_i − ν_i, Λ_i − λ_i) — the same as the Schur
complement of the other C−1 logits.  One batched C×C Cholesky factorisation and solve per
iteration, in float64 (Λ_f is singular, so A is conditioned only by λ > 0 from the logits'
prior).  The message precision is ≥ 0 in exact arithmetic and is clipped at 0 against round-off.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.robust import check_positive


@dataclass(frozen=True)
class SoftmaxClassObservation:
    sigma: float

    def __post_init__(self):
        check_positive(sigma=self.sigma)

    def linearise(self, f_lin: tf.Tensor, onehot: tf.Tensor):
        """(η_f (B, C), Λ_f (B, C, C)) in float64."""
        f0 = tf.cast(f_lin, tf.float64)
        y = tf.cast(onehot, tf.float64)
        s = tf.nn.softmax(f0, axis=-1)
        jac = tf.linalg.diag(s) - s[:, :, None] * s[:, None, :]
        jf0 = tf.linalg.matvec(jac, f0)
        eta_f = tf.linalg.matvec(jac, jf0 - s + y) / self.sigma**2
        lam_f = tf.matmul(jac, jac) / self.sigma**2
        return eta_f, lam_f

    def messages(self, f: Gaussian, f_lin: tf.Tensor, onehot: tf.Tensor) -> Gaussian:
        """Message to every logit (B, C), given the cavity ``f`` (every λ > 0)."""
        dtype = f.eta.dtype
        eta_f, lam_f = self.linearise(f_lin, onehot)
        nu = tf.cast(f.eta, tf.float64)
        lam = tf.cast(f.lam, tf.float64)
        joint = lam_f + tf.linalg.diag(lam)
        chol = tf.linalg.cholesky(joint)
        cov = tf.linalg.cholesky_solve(chol, tf.eye(tf.shape(lam)[-1], batch_shape=tf.shape(lam)[:1], dtype=tf.float64))
        mean = tf.linalg.matvec(cov, eta_f + nu)
        var = tf.linalg.diag_part(cov)
        marg_lam = 1.0 / var
        msg_lam = tf.maximum(marg_lam - lam, 0.0)
        msg_eta = mean * marg_lam - nu
        return Gaussian(tf.cast(msg_eta, dtype), tf.cast(msg_lam, dtype))
