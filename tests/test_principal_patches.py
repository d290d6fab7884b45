"""The principal-patch start of the first conv layer: its filters and coefficients must
reconstruct the (median-filtered) frame through the layer's own transposed convolution."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from pipeline.baselines.classical_filters import median_filter
from pipeline.gbp.factors.transposed_conv_reconstruction import correlate, pad_coeffs
from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.models.deep_denoiser import DeepDenoiser, DeepDenoiserConfig, LayerConfig
from pipeline.gbp.models.principal_patches import principal_patch_init


INSIDE = (slice(None), slice(2, -2), slice(2, -2))  # pixels that lie in all k² = 9 patches


def two_plane_waves(height=40, width=48):
    """A colour frame whose centred 3×3 patches span 4 dimensions: two plane waves (cos and sin
    each), of different colours, neither symmetric under flipping the patch."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    first = np.sin(0.45 * i + 0.3 * j)[..., None] * np.array([0.2, 0.1, -0.05])
    second = np.cos(0.3 * i + 0.4 * j)[..., None] * np.array([-0.05, 0.1, 0.15])
    return tf.constant((0.5 + first + second)[None], tf.float32)


def test_init_reconstructs_the_frame_through_the_transposed_convolution():
    """Σ_f W_f ⊛ z_f = ỹ − mean inside the frame (where every pixel lies in k² patches); the
    filters have the requested norm.  Filters placed unflipped would rotate each wave's phase."""
    y = two_plane_waves()
    weights, coeffs = principal_patch_init(y, kernel=3, filters=4, filter_norm=0.5)
    assert weights.shape == (3, 3, 3, 4) and coeffs.shape == (1, 38, 46, 4)
    np.testing.assert_allclose(tf.norm(tf.reshape(weights, [-1, 4]), axis=0).numpy(), 0.5, rtol=1e-5)
    smooth = median_filter(y[0].numpy(), 3)[None]
    centred = smooth - tf.reduce_mean(smooth, axis=[0, 1, 2])
    reconstruction = correlate(pad_coeffs(coeffs, 3), weights)
    error = tf.norm(reconstruction[INSIDE] - centred[INSIDE]) / tf.norm(centred[INSIDE])
    assert float(error) < 0.05, float(error)
    unflipped = correlate(pad_coeffs(coeffs, 3), tf.reverse(weights, axis=[0, 1]))
    assert float(tf.norm(unflipped[INSIDE] - centred[INSIDE]) / tf.norm(centred[INSIDE])) > 0.2


def test_impulse_outliers_stay_out_of_the_start():
    """10 % of pixels replaced by uniform noise (the protocol's corruption): thanks to the median
    filter the start still reconstructs the clean frame (without it, the error is 0.28)."""
    y = two_plane_waves()
    rng = np.random.default_rng(1)
    hit = rng.uniform(size=y.shape[:3] + (1,)) < 0.1
    noisy = tf.constant(np.where(hit, rng.uniform(size=y.shape), y.numpy()), tf.float32)
    weights, coeffs = principal_patch_init(noisy, 3, 4, 0.5)
    clean = (y - tf.reduce_mean(y, axis=[0, 1, 2]))[INSIDE]
    reconstruction = correlate(pad_coeffs(coeffs, 3), weights)[INSIDE]
    error = float(tf.norm(reconstruction - clean) / tf.norm(clean))
    assert error < 0.12, error


def test_the_denoiser_starts_there_only_with_a_fresh_prior():
    y = two_plane_waves()
    config = DeepDenoiserConfig(layers=(LayerConfig(filters=4, sigma=0.1, n_rob=1.4),), init="principal_patches")
    model = DeepDenoiser(config)
    expected_w, expected_z = principal_patch_init(y, 3, 4, config.init_filter_norm)
    fresh = model.initial_state(y)["init"]
    np.testing.assert_allclose(fresh["filters_0"], expected_w)
    np.testing.assert_allclose(fresh["coeffs_0"], expected_z)
    carried = dict(model.original_prior(3))
    carried["filters_0"] = Gaussian.from_mean_std(tf.fill([3, 3, 3, 4], 0.2), 0.01)
    start = model.initial_state(y, carried)["init"]
    np.testing.assert_allclose(start["filters_0"], 0.2)
    random_start = DeepDenoiser(dataclasses.replace(config, init="random")).initial_state(y)["init"]
    assert not np.allclose(random_start["filters_0"], expected_w)


def test_filters_beyond_the_patch_dimensions_keep_their_random_start():
    """A grayscale 3×3 patch has 9 dimensions: with 12 filters, 9 start at the components and
    the other 3 at the random start (a zero start would never move: its Jacobians are zero)."""
    gray = tf.reduce_mean(two_plane_waves(), axis=-1, keepdims=True)
    config = DeepDenoiserConfig(layers=(LayerConfig(filters=12, sigma=0.1),), init="principal_patches")
    start = DeepDenoiser(config).initial_state(gray)["init"]
    random_start = DeepDenoiser(dataclasses.replace(config, init="random")).initial_state(gray)["init"]
    expected_w, expected_z = principal_patch_init(gray, 3, 12, config.init_filter_norm)
    assert expected_w.shape == (3, 3, 1, 9) and start["filters_0"].shape == (3, 3, 1, 12)
    np.testing.assert_allclose(start["filters_0"][..., :9], expected_w)
    np.testing.assert_allclose(start["coeffs_0"][..., :9], expected_z)
    np.testing.assert_array_equal(start["filters_0"][..., 9:], random_start["filters_0"][..., 9:])
    np.testing.assert_array_equal(start["coeffs_0"][..., 9:], random_start["coeffs_0"][..., 9:])


def test_init_filter_norm_trades_filter_scale_for_coefficient_scale():
    """``init_filter_norm`` sets each start filter's norm; the coefficients scale by its inverse,
    so the start reconstructs the same frame.  The layers above the first start at random."""
    y = two_plane_waves()
    layers = (LayerConfig(filters=4, sigma=0.12), LayerConfig(type="upsample", sigma=0.03),
              LayerConfig(filters=8, sigma=0.07, activation="leaky_relu"))
    def start(norm):
        config = DeepDenoiserConfig(layers=layers, init="principal_patches", init_filter_norm=norm)
        return DeepDenoiser(config).initial_state(y)["init"]
    small, large = start(0.15), start(0.6)
    np.testing.assert_allclose(tf.norm(tf.reshape(small["filters_0"], [-1, 4]), axis=0).numpy(), 0.15, rtol=1e-5)
    np.testing.assert_allclose(small["filters_0"] / 0.15, large["filters_0"] / 0.6, atol=1e-5)
    np.testing.assert_allclose(small["coeffs_0"] * 0.15, large["coeffs_0"] * 0.6, atol=1e-5)
    np.testing.assert_array_equal(small["filters_2"], large["filters_2"])
    random_start = DeepDenoiser(DeepDenoiserConfig(layers=layers)).initial_state(y)["init"]
    np.testing.assert_array_equal(small["filters_2"], random_start["filters_2"])
    with pytest.raises(ValueError, match="init_filter_norm"):
        DeepDenoiserConfig(layers=layers, init_filter_norm=0.0)
