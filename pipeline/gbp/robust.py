"""Robust energies as a rescaling of a factor's precision.

For a factor with quadratic (non-robust) energy E = M² evaluated at its linearisation point, the
robust factor is the Gaussian factor with both η and Λ multiplied by a weight k(M):

* Tukey-like cap (the paper's choice): ``k = (N_rob / M)²`` when ``M > N_rob``, else 1, so the
  local quadratic keeps its mean and direction but its value at the linearisation point is
  capped at ``N_rob²``.
* Huber: ``k = 2 N_rob / M − (N_rob / M)²`` when ``M > N_rob``, else 1 (energy grows linearly).
"""
from __future__ import annotations

import tensorflow as tf

ROBUST_KINDS = ("tukey", "huber")


def robust_weight(energy: tf.Tensor, n_rob: float, kind: str = "tukey") -> tf.Tensor:
    """Precision multiplier k for factors with squared Mahalanobis distance ``energy`` = M².

    ``energy`` is dimensionless (already divided by σ²).  M = 0 never divides: the branch is
    selected with ``where`` before the ratio is used.
    """
    if kind not in ROBUST_KINDS:
        raise ValueError(f"unknown robust kind {kind!r}; expected one of {ROBUST_KINDS}")
    n_rob = tf.constant(n_rob, dtype=energy.dtype)
    outside = energy > n_rob**2
    safe_energy = tf.where(outside, energy, tf.ones_like(energy))
    ratio_sq = n_rob**2 / safe_energy  # (N/M)²
    if kind == "tukey":
        k = ratio_sq
    else:
        k = 2.0 * tf.sqrt(ratio_sq) - ratio_sq
    return tf.where(outside, k, tf.ones_like(energy))


def check_robust_kind(kind: str) -> None:
    if kind not in ROBUST_KINDS:
        raise ValueError(f"robust_kind must be one of {list(ROBUST_KINDS)}, got {kind!r}")


def check_positive(**values: float | None) -> None:
    """Raise ValueError naming the first value that is not > 0 (None = not robust, allowed)."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
