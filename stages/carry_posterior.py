"""Carry posterior: after a frame (or minibatch), the learned parameters' marginals become the
next one's prior (the rule: ``pipeline.gbp.filtering.carry_posterior``); here they are saved to and
read back from ``.npz`` files so that a later run can start from them."""
from __future__ import annotations

from pathlib import Path

from pipeline.gbp.gaussian import Gaussian

POSTERIOR_FOLDER = "posterior"  # the MLflow artifact folder runs save their posteriors in


def save_posterior(posterior: dict[str, Gaussian], path: Path) -> Path:
    """Means and precisions of every learned parameter as ``<name>.eta`` / ``<name>.lam`` arrays
    (information form: η = Λμ, Λ = 1/σ²) in one ``.npz`` file."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{name}.{part}": np.asarray(getattr(g, part)) for name, g in posterior.items()
                      for part in ("eta", "lam")})
    return path


def load_posterior(source: str, tracker, dtype=None) -> dict[str, Gaussian]:
    """The posterior named by ``--prior-from``: a file written by ``save_posterior``, or the last
    one an MLflow run id saved under its ``posterior/`` artifacts."""
    import numpy as np
    import tensorflow as tf

    from pipeline.errors import PipelineError

    path = Path(source)
    if not path.is_file():  # a run id, even one that names an artifact folder in the working directory
        if path.suffix == ".npz":
            raise PipelineError(f"--prior-from: no file {source}")
        path = tracker.latest_artifact(source, POSTERIOR_FOLDER)
    try:
        with np.load(path) as data:
            names = sorted({key.rsplit(".", 1)[0] for key in data.files})
            posterior = {n: Gaussian(tf.constant(data[f"{n}.eta"], dtype or tf.float32),
                                     tf.constant(data[f"{n}.lam"], dtype or tf.float32)) for n in names}
    except OSError as exc:
        raise PipelineError(f"--prior-from: cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError):  # not an .npz, or one without <name>.eta / <name>.lam pairs
        raise PipelineError(f"--prior-from: {path} is not a saved posterior "
                            f"(an .npz of <name>.eta and <name>.lam arrays)") from None
    if not posterior:
        raise PipelineError(f"--prior-from: {path} holds no posterior arrays")
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
