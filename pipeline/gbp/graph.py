"""A general scalar-variable factor graph with linear rank-1 factors, indexed sparsely.

Every variable is a scalar Gaussian with a unary prior; every factor f of a family measures
``h_f(v) = J_fᵀ v[idx_f] − z_f`` with noise σ (energy ``E = h²/σ²``), optionally robust.
Messages are computed for all factors of a family at once (gather → rank-1 closed form →
scatter-add), so this is the reference implementation the structured image layers are tested
against, and a small general-purpose GBP solver in its own right.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.loop import compile_loop, edge_seed
from pipeline.gbp.messages import damped_update, rank1_factor_to_variable
from pipeline.gbp.robust import robust_weight


@dataclass(frozen=True)
class LinearFactorFamily:
    """F factors of arity N: ``h_f = Σ_n jacobian[f, n] · v[index[f, n]] − target[f]``."""

    index: np.ndarray  # (F, N) int
    jacobian: np.ndarray  # (F, N)
    target: np.ndarray  # (F,)
    sigma: float
    n_rob: float | None = None
    robust_kind: str = "tukey"


class LinearGaussianGraph:
    """Synchronous (flooding) GBP on a set of linear factor families plus unary priors."""

    def __init__(self, prior_mean, prior_std, families, damping=0.0, dropout=0.0, seed=0,
                 dtype=tf.float64):
        self.dtype = dtype
        prior_mean = np.asarray(prior_mean, dtype=np.float64)
        self.num_vars = prior_mean.shape[0]
        self.prior = Gaussian.from_mean_std(tf.constant(prior_mean, dtype),
                                            tf.constant(prior_std, dtype))
        self.families = families
        self.damping, self.dropout, self.seed = damping, dropout, seed
        self._index = [tf.constant(f.index, tf.int32) for f in families]
        self._jac = [tf.constant(f.jacobian, dtype) for f in families]
        self._target = [tf.constant(f.target, dtype) for f in families]
        self._run = compile_loop(self._step)

    def initial_state(self):
        """All factor→variable messages 0; linearisation point = prior mean."""
        msgs = [Gaussian.zeros_like(j) for j in self._jac]
        return {"messages": msgs, "mean": self.prior.mean}

    def marginal(self, state) -> Gaussian:
        """Prior plus the scatter-sum of every factor→variable message."""
        eta, lam = self.prior.eta, self.prior.lam
        for idx, msg in zip(self._index, state["messages"]):
            flat = tf.reshape(idx, [-1])
            eta = eta + tf.math.unsorted_segment_sum(tf.reshape(msg.eta, [-1]), flat, self.num_vars)
            lam = lam + tf.math.unsorted_segment_sum(tf.reshape(msg.lam, [-1]), flat, self.num_vars)
        return Gaussian(eta, lam)

    def _step(self, state, iteration):
        marginal = self.marginal(state)
        v0 = state["mean"]
        new_messages = []
        for e, (fam, idx, jac, z, old) in enumerate(
            zip(self.families, self._index, self._jac, self._target, state["messages"])
        ):
            incoming = Gaussian(tf.gather(marginal.eta, idx), tf.gather(marginal.lam, idx)) - old
            residual = tf.reduce_sum(jac * tf.gather(v0, idx), axis=-1) - z  # h(v0)
            sigma = tf.constant(fam.sigma, self.dtype)
            if fam.n_rob is None:
                k = tf.ones_like(residual)
            else:
                k = robust_weight(residual**2 / sigma**2, fam.n_rob, fam.robust_kind)
            sqrt_k = tf.sqrt(k)
            j = jac * tf.expand_dims(sqrt_k / sigma, -1)
            r = sqrt_k * z / sigma  # √k (Jᵀv0 − h(v0)) / σ
            new = rank1_factor_to_variable(j, r, incoming)
            new_messages.append(
                damped_update(old, new, self.damping, self.dropout,
                              edge_seed(self.seed, e, iteration), first=iteration == 0)
            )
        state = {"messages": new_messages, "mean": v0}
        state["mean"] = self.marginal(state).mean  # relinearise at the new means
        return state

    def solve(self, n_iterations: int) -> Gaussian:
        """Run ``n_iterations`` of GBP from the initial state and return the marginals."""
        state = self._run(self.initial_state(), 0, n_iterations)
        return self.marginal(state)
