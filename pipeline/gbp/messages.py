"""Factor→variable messages of rank-1 factors, and how they are written (damping, dropout).

A linearised scalar-measurement factor over N scalar variables v has the Gaussian form

    Λ_f = j jᵀ,   η_f = j · r

where ``j = √k · J / σ`` is the robustly weighted, whitened Jacobian and
``r = √k · (Jᵀv₀ − h(v₀)) / σ`` the whitened linearised target.  Given the incoming
variable→factor messages (ν_i, λ_i), Sherman–Morrison on diag(λ) + j jᵀ gives, per element,

    s_i = j_i² / λ_i,   t_i = j_i (j_i r + ν_i) / λ_i,
    Λ_{f→i} = j_i² / (1 + S₋ᵢ),   η_{f→i} = j_i r − j_i T₋ᵢ / (1 + S₋ᵢ)

with S₋ᵢ = Σ_{l≠i} s_l and T₋ᵢ = Σ_{l≠i} t_l: O(N) per factor, one reduction over the last
axis, no loops.
"""
from __future__ import annotations

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian


def rank1_factor_to_variable(j: tf.Tensor, r: tf.Tensor, incoming: Gaussian) -> Gaussian:
    """Messages from rank-1 factors to each of their variables.

    Args:
      j: (..., N) whitened Jacobian of each factor (the factor axis/axes lead, variables last).
      r: (...,) whitened linearised target of each factor (broadcast against j[..., 0]).
      incoming: variable→factor messages, each tensor (..., N), every λ > 0.
    Returns:
      Gaussian of shape (..., N): the message from each factor to each of its variables.
    """
    r = tf.expand_dims(r, -1)
    s = j * j / incoming.lam
    t = j * (j * r + incoming.eta) / incoming.lam
    s_minus = tf.reduce_sum(s, axis=-1, keepdims=True) - s
    t_minus = tf.reduce_sum(t, axis=-1, keepdims=True) - t
    denom = 1.0 + s_minus
    return Gaussian(j * r - j * t_minus / denom, j * j / denom)


def difference_factor_message(other_end: Gaussian, a2) -> Gaussian:
    """Message of a difference factor ``h = x_a − x_b`` (E = a²h², j = (a, −a), no target) to one
    end, given the other end's cavity (ν, λ): mean ν/λ, precision a²λ/(a² + λ) (the closed form
    above with N = 2)."""
    denom = a2 + other_end.lam
    return Gaussian(a2 * other_end.eta / denom, a2 * other_end.lam / denom)


def damped_update(
    old: Gaussian,
    new: Gaussian,
    damping: float,
    dropout: float,
    seed: tf.Tensor,
    first: tf.Tensor | bool = False,
    mask_shape=None,
) -> Gaussian:
    """Write a factor→variable message with damping and message dropout.

    ``m̃ = β·m_old + (1 − β)·m_new`` in natural parameters; each element then keeps ``m_old``
    with probability p (dropout = stochastic asynchronous updates, not activation dropout).
    η and Λ share one mask.  The mask comes from a stateless RNG seeded by ``seed`` (shape [2]
    int; Philox, the same stream with and without XLA), so runs repeat exactly.  On the first update (``first`` true) the new message is
    taken raw.  Neither step moves a fixed point: at convergence m_new = m_old.

    ``mask_shape`` (broadcastable to the message) draws one decision per group of elements, e.g.
    one per factor for all of that factor's outgoing messages: asynchronous factor updates, at a
    fraction of the random numbers.
    """
    # one weight per element, so each new message is read once (lets XLA fuse the whole
    # write into the producer of ``new``): m = m_old + (1 − β_e)(m_new − m_old) with β_e = 0 on
    # the first write, 1 where dropped out, β elsewhere
    dtype = new.eta.dtype
    first = tf.convert_to_tensor(first)
    beta = tf.where(first, tf.constant(0.0, dtype), tf.constant(damping, dtype))
    if dropout > 0.0:
        shape = tf.shape(new.eta) if mask_shape is None else mask_shape
        keep_old = tf.random.stateless_uniform(shape, seed=seed, alg="philox") < dropout
        beta = tf.where(tf.logical_and(keep_old, tf.logical_not(first)), tf.constant(1.0, dtype), beta)
    step = 1.0 - beta
    return Gaussian(old.eta + step * (new.eta - old.eta), old.lam + step * (new.lam - old.lam))


def check_message_schedule(damping: float, dropout: float) -> None:
    """Damping β ∈ [0, 1) and dropout p ∈ [0, 1): β = 1 or p = 1 would never update a message."""
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
