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


def load_posterior(path) -> dict[str, Gaussian]:
    """Read a posterior saved by ``stages.log.save_posterior`` (``<name>.eta``/``<name>.lam``)."""
    import numpy as np
    import tensorflow as tf

    from pipeline.errors import PipelineError

    try:
        with np.load(path) as data:
            names = sorted({key.rsplit(".", 1)[0] for key in data.files})
            posterior = {n: Gaussian(tf.constant(data[f"{n}.eta"], tf.float32), tf.constant(data[f"{n}.lam"], tf.float32))
                         for n in names}
    except OSError as exc:
        raise PipelineError(f"cannot read a saved posterior from {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError):  # not an .npz, or one without <name>.eta / <name>.lam pairs
        raise PipelineError(f"{path} is not a saved posterior (an .npz of <name>.eta and <name>.lam arrays)") from None
    if not posterior:
        raise PipelineError(f"{path} holds no posterior arrays")
    return posterior


def check_posterior_fits(posterior: dict[str, Gaussian], original_prior: dict[str, Gaussian], source: str) -> None:
    """A loaded posterior must have exactly the model's parameters, with the same shapes."""
    from pipeline.errors import PipelineError

    if set(posterior) != set(original_prior):
        raise PipelineError(f"the posterior in {source} has parameters {sorted(posterior)}, "
                            f"this model has {sorted(original_prior)}")
    for name, prior in original_prior.items():
        if tuple(posterior[name].eta.shape) != tuple(prior.eta.shape):
            raise PipelineError(f"the posterior in {source} has {name} of shape {tuple(posterior[name].eta.shape)}, "
                                f"this model needs {tuple(prior.eta.shape)}")
