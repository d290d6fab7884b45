"""The frame-by-frame runner of a learned model: what prior each frame starts from."""
import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import with_overrides
from pipeline.gbp.gaussian import Gaussian
from pipeline.methods import load_method
from stages.infer import GBPFrameDenoiser


def single_layer(carry: bool) -> GBPFrameDenoiser:
    config = load_method("single_layer")  # carry.alpha 0.5, filter prior σ 0.018
    config = with_overrides(config, iterations=2, carry=with_overrides(config.carry, enabled=carry))
    return GBPFrameDenoiser("single_layer", config, seed=0)


def saved_posterior(denoise: GBPFrameDenoiser) -> dict:
    return {name: Gaussian.from_mean_std(tf.fill(prior.eta.shape, 0.2), 0.01)
            for name, prior in denoise.model.original_prior(3).items()}


def test_a_saved_posterior_enters_through_the_carry_rule_like_a_carried_one():
    """--prior-from continues a run: the saved posterior becomes the prior the run itself would
    have given its next frame, μ' = α μ + (1 − α) μ₀, σ' = α σ + (1 − α) σ₀ with α = 0.5."""
    denoise = single_layer(carry=True)
    denoise.start_from(saved_posterior(denoise), channels=3)
    filters = denoise.prior["filters_0"]
    np.testing.assert_allclose(filters.mean.numpy(), 0.5 * 0.2, rtol=1e-5)
    np.testing.assert_allclose(filters.std.numpy(), 0.5 * 0.01 + 0.5 * 0.018, rtol=1e-5)
    denoise(np.full((12, 12, 3), 0.5, np.float32))
    assert not np.allclose(denoise.prior["filters_0"].mean.numpy(), 0.1)  # then the frames carry on


@pytest.mark.parametrize("given", [False, True])
def test_without_carrying_every_frame_starts_from_the_same_prior(given):
    denoise = single_layer(carry=False)
    if given:
        denoise.start_from(saved_posterior(denoise), channels=3)
    first = denoise.prior
    for _ in range(2):
        denoise(np.full((12, 12, 3), 0.5, np.float32))
        assert denoise.prior is first  # the given posterior's prior, or None: the original prior
