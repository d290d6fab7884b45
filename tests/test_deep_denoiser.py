"""The deep denoiser's layers against exact Gaussian solves of the same (linear) graph.

With the filters pinned by a very tight prior at known values, identity activations and no
robust factors, every reconstruction factor is linear in (x, z, b), so the joint posterior over
pixels, coefficients, biases and upsampled variables is Gaussian and GBP's converged means must
equal the dense solve.
"""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.model import Denoiser
from pipeline.gbp.models.deep_denoiser import DeepDenoiser, DeepDenoiserConfig, LayerConfig


class DenseSystem:
    """Accumulates Λ and η of a linear-Gaussian model over named variable blocks."""

    def __init__(self, blocks):
        self.offset, n = {}, 0
        for name, shape in blocks.items():
            self.offset[name] = (n, shape)
            n += int(np.prod(shape))
        self.lam, self.eta = np.zeros((n, n)), np.zeros(n)

    def index(self, name, *idx):
        start, shape = self.offset[name]
        return start + int(np.ravel_multi_index(idx, shape))

    def factor(self, coeffs: dict, target: float, sigma: float):
        """(Σ c·v − target)² / σ²."""
        ids, vals = list(coeffs), np.array(list(coeffs.values()))
        self.lam[np.ix_(ids, ids)] += np.outer(vals, vals) / sigma**2
        self.eta[ids] += vals * target / sigma**2

    def prior(self, name, mean, sigma):
        start, shape = self.offset[name]
        for flat in range(int(np.prod(shape))):
            self.factor({start + flat: 1.0}, float(np.ravel(mean)[flat]) if np.ndim(mean) else mean, sigma)

    def solve(self, name):
        start, shape = self.offset[name]
        mean = np.linalg.solve(self.lam, self.eta)
        return mean[start:start + int(np.prod(shape))].reshape(shape)


def add_reconstruction(system, x_name, z_name, b_name, filters, sigma):
    h, w, c = system.offset[x_name][1]
    k = filters.shape[0]
    zh, zw, f = system.offset[z_name][1]
    for i in range(h):
        for j in range(w):
            for ch in range(c):
                coeffs = {system.index(x_name, i, j, ch): -1.0, system.index(b_name, ch): 1.0}
                for dy in range(k):
                    for dx in range(k):
                        zi, zj = i + dy - (k - 1), j + dx - (k - 1)
                        if 0 <= zi < zh and 0 <= zj < zw:
                            for ff in range(f):
                                key = system.index(z_name, zi, zj, ff)
                                coeffs[key] = coeffs.get(key, 0.0) + filters[dy, dx, ch, ff]
                system.factor(coeffs, 0.0, sigma)


def pinned_prior(model, filters_by_layer, channels):
    prior = model.original_prior(channels)
    for i, w in filters_by_layer.items():
        prior[f"filters_{i}"] = Gaussian.from_mean_std(tf.constant(w, tf.float32), 1e-4)
    return prior


def test_single_conv_layer_converges_to_exact_means():
    rng = np.random.default_rng(0)
    h, w, c, f, k = 6, 7, 2, 2, 3
    y = rng.uniform(size=(h, w, c))
    filters = rng.normal(scale=0.3, size=(k, k, c, f))
    layer = LayerConfig(filters=f, kernel=k, sigma=0.3, bias_prior_sigma=0.5, coeff_prior_sigma=0.8)
    config = DeepDenoiserConfig(layers=(layer,), pixel_sigma=0.2, pixel_n_rob=None, damping=0.5, dropout=0.0)
    model = DeepDenoiser(config)
    result = Denoiser(model).denoise(tf.constant(y[None], tf.float32), 600, pinned_prior(model, {0: filters}, c))

    system = DenseSystem({"x": (h, w, c), "z": (h - k + 1, w - k + 1, f), "b": (c,)})
    system.prior("x", y, 0.2)
    system.prior("z", 0.0, 0.8)
    system.prior("b", 0.0, 0.5)
    add_reconstruction(system, "x", "z", "b", filters, 0.3)
    np.testing.assert_allclose(result.mean.numpy()[0], system.solve("x"), atol=2e-4)
    np.testing.assert_allclose(result.posterior["bias_0"].mean.numpy(), system.solve("b"), atol=2e-4)


def test_conv_upsample_conv_converges_to_exact_means():
    rng = np.random.default_rng(1)
    h, w, c, k = 9, 10, 1, 3
    f1, f2 = 2, 2
    y = rng.uniform(size=(h, w, c))
    w1 = rng.normal(scale=0.4, size=(k, k, c, f1))
    w2 = rng.normal(scale=0.4, size=(k, k, f1, f2))
    layers = (LayerConfig(filters=f1, kernel=k, sigma=0.3, coeff_prior_sigma=0.7),
              LayerConfig(type="upsample", sigma=0.2, coeff_prior_sigma=1.0, inner_loops=2),
              LayerConfig(filters=f2, kernel=k, sigma=0.25, coeff_prior_sigma=0.6))
    config = DeepDenoiserConfig(layers=layers, pixel_sigma=0.2, pixel_n_rob=None, damping=0.5, dropout=0.0)
    model = DeepDenoiser(config)
    prior = pinned_prior(model, {0: w1, 2: w2}, c)
    result = Denoiser(model).denoise(tf.constant(y[None], tf.float32), 1500, prior)

    z1 = (h - k + 1, w - k + 1, f1)  # 7×8
    u = ((z1[0] + 1) // 2, (z1[1] + 1) // 2, f1)  # 4×4
    z2 = (u[0] - k + 1, u[1] - k + 1, f2)  # 2×2
    system = DenseSystem({"x": (h, w, c), "z1": z1, "b1": (c,), "u": u, "z2": z2, "b2": (f1,)})
    system.prior("x", y, 0.2)
    system.prior("z1", 0.0, 0.7)
    system.prior("b1", 0.0, 0.3)
    system.prior("u", 0.0, 1.0)
    system.prior("z2", 0.0, 0.6)
    system.prior("b2", 0.0, 0.3)
    add_reconstruction(system, "x", "z1", "b1", w1, 0.3)
    for i in range(z1[0]):
        for j in range(z1[1]):
            for ch in range(f1):
                system.factor({system.index("z1", i, j, ch): 1.0, system.index("u", i // 2, j // 2, ch): -1.0},
                              0.0, 0.2)
    add_reconstruction(system, "u", "z2", "b2", w2, 0.25)
    np.testing.assert_allclose(result.mean.numpy()[0], system.solve("x"), atol=2e-4)
    np.testing.assert_allclose(result.posterior["bias_2"].mean.numpy(), system.solve("b2"), atol=2e-4)


def test_summed_filter_messages_match_the_exact_per_edge_scheme():
    """A few iterations from the same state: the marginal-as-cavity filter sums (with the
    Onsager-like leave-one-out correction) track the exact per-edge messages summed."""
    rng = np.random.default_rng(2)
    y = rng.uniform(size=(1, 24, 28, 3)).astype(np.float32)
    base = DeepDenoiserConfig(layers=(LayerConfig(filters=4, sigma=0.1, n_rob=1.4, weight_prior_sigma=0.05),),
                              damping=0.0, dropout=0.0)
    sums = []
    for exact in (False, True):
        model = DeepDenoiser(dataclasses.replace(base, exact_filter_messages=exact))
        state = model.initial_state(tf.constant(y))
        for it in range(3):
            state = model.step(state, tf.constant(it))
        sums.append(state["conv_0"]["filter_sum"])
    for part in ("eta", "lam"):
        approx, exact = getattr(sums[0], part).numpy(), getattr(sums[1], part).numpy()
        assert np.linalg.norm(approx - exact) < 3e-3 * np.linalg.norm(exact)


def test_config_rejects_impossible_layer_stacks():
    with pytest.raises(ValueError):
        DeepDenoiserConfig(layers=(LayerConfig(type="upsample"),))
    with pytest.raises(ValueError):
        LayerConfig(sigma=0.0)


def test_warm_start_resumes_where_the_previous_frame_ended():
    """The next frame warm-started from this frame's final state (same noisy frame, posterior
    carried) is already at the previous answer after one iteration; from zero messages it is
    not.  Messages to the parameters start empty: their evidence is in the carried prior."""
    rng = np.random.default_rng(3)
    y = np.clip(rng.uniform(size=(1, 20, 22, 3)) * 0.3 + np.linspace(0, 0.6, 22)[None, None, :, None], 0, 1)
    y = tf.constant(y, tf.float32)
    config = DeepDenoiserConfig(layers=(LayerConfig(filters=4, sigma=0.1, n_rob=1.4, weight_prior_sigma=0.05),),
                                damping=0.5, dropout=0.0)
    model = DeepDenoiser(config)
    runner = Denoiser(model)
    first = runner.denoise(y, 300)
    prior = first.posterior
    warm = model.initial_state(y, prior, first.state)
    assert float(tf.reduce_max(tf.abs(warm["conv_0"]["filter_sum"].lam))) == 0.0
    warm_after_five = runner.denoise(y, 5, prior, first.state).mean
    cold_after_five = runner.denoise(y, 5, prior).mean
    warm_gap = float(tf.reduce_max(tf.abs(warm_after_five - first.mean)))
    cold_gap = float(tf.reduce_max(tf.abs(cold_after_five - first.mean)))
    assert warm_gap < 0.02 < cold_gap, (warm_gap, cold_gap)


def test_warm_start_weighs_the_new_frames_pixels_against_its_own_median():
    """Where the scene moved, the new frame's pixels are not impulses: the warm start's robust
    observation weights start at the new frame's 3×3 median, so the moved square's pixels keep
    full precision 1/σ² and only the impulses are cut.  (Weighed against the previous clean
    estimate, every pixel the square moved over started as an outlier.)"""
    def square(left):
        frame = np.full((1, 24, 28, 3), 0.3, np.float32)
        frame[:, 8:16, left:left + 8] = 0.8
        return frame
    config = DeepDenoiserConfig(layers=(LayerConfig(filters=4, sigma=0.1, n_rob=1.4),), dropout=0.0)
    model = DeepDenoiser(config)
    runner = Denoiser(model)
    first = runner.denoise(tf.constant(square(6)), 50)
    moved = square(12)
    moved[0, 4, 4], moved[0, 20, 22] = 1.0, 0.0  # two impulses
    observation = model.initial_state(tf.constant(moved), first.posterior, first.state)["observation"]
    full = 1.0 / config.pixel_sigma**2
    entered = observation.lam.numpy()[0, 9:15, 15:19]  # inside the square now, background before
    np.testing.assert_allclose(entered, full, rtol=1e-5)
    impulses = observation.lam.numpy()[0, [4, 20], [4, 22]]
    assert impulses.max() < 0.1 * full, impulses


def test_init_seed_draws_the_initial_points_and_seed_the_dropout_masks():
    """``init_seed`` alone decides the random initial linearisation points (so a study can vary
    the initialisation with the dropout masks fixed, or the reverse); ``seed`` still draws the
    dropout masks, and it draws the initial points too when ``init_seed`` is unset."""
    y = tf.constant(np.random.default_rng(4).uniform(size=(1, 12, 14, 3)), tf.float32)
    base = DeepDenoiserConfig(layers=(LayerConfig(filters=4, sigma=0.1, n_rob=1.4),), dropout=0.5)

    def init_and_two_steps(**seeds):
        model = DeepDenoiser(dataclasses.replace(base, **seeds))
        state = model.initial_state(y)
        after = model.step(model.step(state, tf.constant(0)), tf.constant(1))
        return state["init"], after["conv_0"]["to_coeffs"].eta.numpy()

    def same(a, b):
        return all(np.array_equal(a[k], b[k]) for k in a)

    init_a, step_a = init_and_two_steps(seed=1, init_seed=7)
    init_b, step_b = init_and_two_steps(seed=2, init_seed=7)
    init_c, _ = init_and_two_steps(seed=1, init_seed=8)
    init_d, step_d = init_and_two_steps(seed=7)
    assert same(init_a, init_b) and not same(init_a, init_c) and same(init_a, init_d)
    assert not np.array_equal(step_a, step_b)  # other dropout masks
    assert not np.array_equal(step_a, step_d)


@pytest.mark.parametrize("name,smallest", [("single_layer", 3), ("five_layer", 15)])
def test_minimum_size_is_the_smallest_frame_every_layer_fits(name, smallest):
    from pipeline.methods import load_method

    model = DeepDenoiser(load_method(name).graph)
    assert model.minimum_size() == smallest
    assert model.edges(smallest, smallest + 4, 3) > 0
    with pytest.raises(ValueError, match="too small"):
        model.edges(smallest - 1, 100, 3)
