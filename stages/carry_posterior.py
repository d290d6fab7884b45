"""Carry posterior: after a frame, the learned parameters' marginals become the next frame's prior."""
from __future__ import annotations

from pipeline.gbp.filtering import carry_posterior
from pipeline.gbp.gaussian import Gaussian


def carry_posterior_as_prior(posterior: dict[str, Gaussian], original_prior: dict[str, Gaussian],
                             enabled: bool, alpha: float | None) -> dict[str, Gaussian] | None:
    """The prior for the next frame: the (optionally α-interpolated) posterior, or None (= the
    model's original prior) when carrying is off or the model has no parameters."""
    if not enabled or not posterior:
        return None
    return carry_posterior(posterior, original_prior, alpha)
