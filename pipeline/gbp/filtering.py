"""Filtering between tasks: the parameter posterior of one batch becomes the next batch's prior.

After GBP on a batch, each learned parameter θ has the marginal (η_post, Λ_post) = prior +
Σ factor messages.  For the next batch (doc §5) every message and per-example variable is reset
and the prior factor of θ is replaced by

    no interpolation (α = None):  (η', Λ') = (η_post, Λ_post)
    with α ∈ (0, 1]:               μ' = α·μ_post + (1 − α)·μ₀,   σ' = α·σ_post + (1 − α)·σ₀,
                                   (η', Λ') = (μ'/σ'², 1/σ'²)

where (μ₀, σ₀) is the original prior (interpolation in mean/std space, as in the reference; its
μ₀ = 0, ours is the original prior's mean, which is 0 unless a random prior mean was chosen).
The dictionary keys are parameter names; every model parameter must be present in both.

The models relinearise their factors at the carried posterior mean at the start of the next
batch — for the convolution too (the reference restarted the conv linearisation at the random
init every batch, doc §9.2; we implement the intended behaviour).
"""
from __future__ import annotations

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian


def check_alpha(alpha: float | None) -> None:
    if alpha is not None and not 0.0 < alpha <= 1.0:
        raise ValueError(f"filtering alpha must be in (0, 1] or None, got {alpha}")


def carry_posterior(posterior: dict[str, Gaussian], original_prior: dict[str, Gaussian],
                    alpha: float | None = None) -> dict[str, Gaussian]:
    """The next task's parameter priors from this task's posterior (see module docstring)."""
    check_alpha(alpha)
    if set(posterior) != set(original_prior):
        raise ValueError(f"posterior has {sorted(posterior)}, prior has {sorted(original_prior)}")
    if alpha is None:
        return {k: Gaussian(tf.identity(v.eta), tf.identity(v.lam)) for k, v in posterior.items()}
    carried = {}
    for name, post in posterior.items():
        prior = original_prior[name]
        mean = alpha * post.mean + (1.0 - alpha) * prior.mean
        std = alpha * post.std + (1.0 - alpha) * prior.std
        carried[name] = Gaussian.from_mean_std(mean, std)
    return carried
