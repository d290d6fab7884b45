"""The MNIST classifier as a deep factor graph: conv(16, 5×5, leaky ReLU) → max-pool 2×2 →
dense 2304→10 → softmax class observation (doc §7.3), learned and run by GBP.

Variables (scalar Gaussians in natural parameters):
  W (k²·C, F), β₁ (F)        conv weights and per-filter bias        learned, carried
  z (B, H′/2, W′/2, 4, F)     conv outputs (leaky-ReLU activations),   prior N(0, σ_z²)
                              window-major: the 4 inputs of each max-pool on one axis
  p (B, H′/2·W′/2·F)          pooled maps, flattened (dense inputs)    prior N(0, σ_p²)
  V (K, O), β₂ (O)            dense weights and bias                   learned, carried
  y (B, O)                    logits                                   prior N(0, σ_y²)
The image is a fixed input of the conv factors.

One training iteration visits the layers [conv, pool, dense, softmax, dense, pool] (the forward
then backward sweep of doc §2.5); a test iteration (no softmax, parameters fixed) visits
[pool, dense, pool] after the conv layer, whose messages are then constant N(g(a), σ²) and are
set once.  Within a visit every factor of the layer is updated in parallel, the new messages are
damped (β) and — on conv and dense edges — dropped out (p) per element, then the layer's factors
are relinearised at the new means.  The first update of every message in a batch is taken raw.

Messages to shared parameters (W, β₁, V, β₂) and to the dense inputs are summed over the
factors that share the variable and stored only as that sum (see factors.feedforward_conv and
factors.dense; the incoming message of such a variable is its marginal).  A parameter sum is
damped deterministically with ``parameter_damping`` (default: β) and not dropped out: dropout
makes single factor updates asynchronous, which has no per-factor meaning for a stored sum
(its expectation would be β_eff = p + (1 − p)·β; measured on 200 MNIST examples × 50
iterations, β gave 77.2 % test accuracy, β_eff 75.1 %, the per-factor reference scheme of
classifier_exact.py 78.7 %).  Per-example messages (to z, p, y) are stored per element and exact,
and are damped and dropped out; without dropout (p = 0) the per-example messages oscillate and
learning collapses (8.5 %).

Every batch starts from the carried parameter prior; all linearisation points start at the
deterministic forward pass through the prior means (conv included, see filtering.py), all
factor→variable messages at 0.  With a zero-mean weight prior every conv output mean would be
exactly 0, a fixed point of GBP; ``conv_random_prior_mean`` therefore centres the *initial* conv
weight prior at a seeded draw N(0, init_weight_std²) (the reference's ``random_mean`` option).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import tensorflow as tf

from pipeline.gbp.factors.dense import DenseFactor
from pipeline.gbp.factors.feedforward_conv import FeedforwardConvFactor, extract_patches
from pipeline.gbp.factors.max_pool import MaxPoolFactor
from pipeline.gbp.factors.softmax_class_observation import SoftmaxClassObservation
from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.loop import compile_loop
from pipeline.gbp.messages import check_message_schedule, damped_update

PARAMETERS = ("conv_weights", "conv_bias", "dense_weights", "dense_bias")


@dataclass(frozen=True)
class ClassifierConfig:
    """Graph of the classifier; σ are factor noise / prior standard deviations (activation units)."""

    filters: int = 16
    kernel: int = 5
    slope: float = 0.2  # leaky-ReLU slope for negative pre-activations
    classes: int = 10
    conv_sigma: float = 0.01
    pool_sigma: float = 0.01
    dense_sigma: float = 0.01
    softmax_sigma: float = 0.01
    conv_weight_prior_sigma: float = 0.1
    conv_bias_prior_sigma: float = 0.1
    conv_coeff_prior_sigma: float = 3.0
    pool_coeff_prior_sigma: float = 3.0
    dense_weight_prior_sigma: float = 0.15
    dense_bias_prior_sigma: float = 0.1
    logit_prior_sigma: float = 2.0
    init_weight_std: float = 0.2
    conv_random_prior_mean: bool = True
    dense_random_prior_mean: bool = False
    damping: float = 0.9
    dropout: float = 0.5
    parameter_damping: float | None = None  # damping of the summed parameter messages (None: damping)
    series_terms: int = 4
    seed: int = 0
    jit: Literal["none", "loop", "layers"] = "loop"  # XLA: none, the whole loop, or each layer visit
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self):
        check_message_schedule(self.damping, self.dropout)
        if self.parameter_damping is not None:
            check_message_schedule(self.parameter_damping, 0.0)
        for name in ("conv_sigma", "pool_sigma", "dense_sigma", "softmax_sigma", "conv_weight_prior_sigma",
                     "conv_bias_prior_sigma", "conv_coeff_prior_sigma", "pool_coeff_prior_sigma",
                     "dense_weight_prior_sigma", "dense_bias_prior_sigma", "logit_prior_sigma"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.init_weight_std < 0:
            raise ValueError(f"init_weight_std must be ≥ 0, got {self.init_weight_std}")
        if self.filters < 1 or self.kernel < 1 or self.classes < 2:
            raise ValueError("filters and kernel must be ≥ 1 and classes ≥ 2")
        if self.series_terms < 1:
            raise ValueError(f"series_terms must be ≥ 1, got {self.series_terms}")


def _with_prior(messages: Gaussian, sigma: float) -> Gaussian:
    """A per-example variable's belief from a sum of messages and its N(0, σ²) prior."""
    return Gaussian(messages.eta, messages.lam + 1.0 / sigma**2)


def _zeros(shape, dtype) -> Gaussian:
    return Gaussian(tf.zeros(shape, dtype), tf.zeros(shape, dtype))


class GBPClassifier:
    """Builds, trains (one batch = one task) and evaluates the classifier factor graph."""

    def __init__(self, config: ClassifierConfig, image_shape: tuple[int, int, int]):
        self.config = c = config
        h, w, ch = image_shape
        self.image_shape = image_shape
        self.conv_shape = (h - c.kernel + 1, w - c.kernel + 1, c.filters)
        if self.conv_shape[0] % 2 or self.conv_shape[1] % 2 or self.conv_shape[0] < 2:
            raise ValueError(f"conv output {self.conv_shape[:2]} must be even for 2×2 pooling")
        self.pool_shape = (self.conv_shape[0] // 2, self.conv_shape[1] // 2, c.filters)
        self.features = int(np.prod(self.pool_shape))
        self.patch_size = c.kernel * c.kernel * ch
        self.dtype = tf.as_dtype(c.dtype)
        self.conv = FeedforwardConvFactor(c.conv_sigma, c.slope, c.series_terms)
        self.pool = MaxPoolFactor(c.pool_sigma)
        self.dense = DenseFactor(c.dense_sigma, c.series_terms)
        self.softmax = SoftmaxClassObservation(c.softmax_sigma)
        self.shared_damping = c.damping if c.parameter_damping is None else c.parameter_damping
        if c.jit == "layers":  # XLA-fuse each visit's elementwise work; the loop stays plain
            self._visit_conv = tf.function(self._visit_conv, jit_compile=True)
            self._visit_pool = tf.function(self._visit_pool, jit_compile=True)
            self._visit_dense = tf.function(self._visit_dense, jit_compile=True)
            self._visit_softmax = tf.function(self._visit_softmax, jit_compile=True)
        self._train_loop = compile_loop(self.train_step, jit=c.jit == "loop")
        self._test_loop = compile_loop(self.test_step, jit=c.jit == "loop")
        self._train_init = tf.function(self.train_state, reduce_retracing=True)
        self._test_init = tf.function(self.test_state, reduce_retracing=True)

    # ---------------------------------------------------------------- priors and posteriors
    def initial_prior(self) -> dict[str, Gaussian]:
        """The original parameter prior (seeded random mean where configured)."""
        c = self.config
        rng = np.random.default_rng(c.seed)
        conv_mean = rng.normal(0.0, c.init_weight_std, (self.patch_size, c.filters))
        dense_mean = rng.normal(0.0, c.init_weight_std, (self.features, c.classes))
        if not c.conv_random_prior_mean:
            conv_mean = np.zeros_like(conv_mean)
        if not c.dense_random_prior_mean:
            dense_mean = np.zeros_like(dense_mean)

        def g(mean, sigma):
            return Gaussian.from_mean_std(tf.constant(mean, self.dtype), sigma)

        return {"conv_weights": g(conv_mean, c.conv_weight_prior_sigma),
                "conv_bias": g(np.zeros(c.filters), c.conv_bias_prior_sigma),
                "dense_weights": g(dense_mean, c.dense_weight_prior_sigma),
                "dense_bias": g(np.zeros(c.classes), c.dense_bias_prior_sigma)}

    def _seed(self, state, edge: int, iteration):
        return tf.stack([state["seed"] * 64 + edge, tf.cast(iteration, tf.int64)])

    def _shared(self, old: Gaussian, new: Gaussian, first) -> Gaussian:
        beta = tf.cast(self.shared_damping, new.eta.dtype)
        eta = beta * old.eta + (1.0 - beta) * new.eta
        lam = beta * old.lam + (1.0 - beta) * new.lam
        return Gaussian(tf.where(first, new.eta, eta), tf.where(first, new.lam, lam))

    def _damp(self, state, key: str, new: Gaussian, edge: int, iteration, first, dropout: bool) -> Gaussian:
        c = self.config
        return damped_update(state[key], new, c.damping, c.dropout if dropout else 0.0,
                             self._seed(state, edge, iteration), first)

    # ---------------------------------------------------------------- state
    def window_patches(self, images) -> tf.Tensor:
        """Conv input patches in window-major layout (B, H′/2, W′/2, 4, k²·C): the four conv outputs
        pooled together sit on one axis, so z is stored as (B, H′/2, W′/2, 4, F) and pooling never
        transposes."""
        patches = extract_patches(tf.cast(images, self.dtype), self.config.kernel)
        h2, w2, _ = self.pool_shape
        patches = tf.reshape(patches, [-1, h2, 2, w2, 2, self.patch_size])
        patches = tf.transpose(patches, [0, 1, 3, 2, 4, 5])
        return tf.reshape(patches, [-1, h2, w2, 4, self.patch_size])

    def _forward_lin(self, patches, prior):
        mean = {k: v.mean for k, v in prior.items()}
        z = self.conv.forward(patches, mean["conv_weights"], mean["conv_bias"])
        x = tf.reshape(self.pool.forward(z), [-1, self.features])
        y = self.dense.forward(x, mean["dense_weights"], mean["dense_bias"])
        return z, x, y

    def train_state(self, images, onehot, prior: dict[str, Gaussian], batch_seed):
        """Fresh graph for one training batch: images (B,H,W,C) in [0,1], onehot (B, classes)."""
        patches = self.window_patches(images)
        z, x, y = self._forward_lin(patches, prior)
        return {
            "seed": tf.cast(batch_seed, tf.int64), "patches": patches, "onehot": tf.cast(onehot, self.dtype),
            "powers": self.conv.patch_powers(patches),
            "prior": dict(prior),
            "conv_w": _zeros(prior["conv_weights"].eta.shape, self.dtype),
            "conv_b": _zeros(prior["conv_bias"].eta.shape, self.dtype),
            "dense_w": _zeros(prior["dense_weights"].eta.shape, self.dtype),
            "dense_b": _zeros(prior["dense_bias"].eta.shape, self.dtype),
            "conv_z": Gaussian(tf.zeros_like(z), tf.zeros_like(z)),
            "pool_z": Gaussian(tf.zeros_like(z), tf.zeros_like(z)),
            "pool_p": Gaussian(tf.zeros_like(x), tf.zeros_like(x)),
            "dense_x": Gaussian(tf.zeros_like(x), tf.zeros_like(x)),
            "dense_y": Gaussian(tf.zeros_like(y), tf.zeros_like(y)),
            "soft_y": Gaussian(tf.zeros_like(y), tf.zeros_like(y)),
            "lin_w": prior["conv_weights"].mean, "lin_b": prior["conv_bias"].mean,
            "lin_z": z, "lin_x": x, "lin_v": prior["dense_weights"].mean, "lin_y": y,
        }

    def test_state(self, images, posterior: dict[str, Gaussian], batch_seed):
        """Fresh graph for one test batch with the parameters fixed at their posterior means."""
        patches = self.window_patches(images)
        mean = {k: v.mean for k, v in posterior.items()}
        conv_z = self.conv.fixed_parameter_message(patches, mean["conv_weights"], mean["conv_bias"])
        z, x, _ = self._forward_lin(patches, posterior)
        zeros_x = Gaussian(tf.zeros_like(x), tf.zeros_like(x))
        y0 = tf.zeros([tf.shape(x)[0], self.config.classes], self.dtype)
        return {
            "seed": tf.cast(batch_seed, tf.int64), "conv_z": conv_z,
            "pool_z": Gaussian(tf.zeros_like(z), tf.zeros_like(z)), "pool_p": zeros_x, "dense_x": zeros_x,
            "dense_y": Gaussian(y0, y0), "lin_z": z, "lin_x": x,
            "w": mean["dense_weights"], "b": mean["dense_bias"],
        }

    # ---------------------------------------------------------------- marginals
    def _z(self, s) -> Gaussian:
        return _with_prior(s["conv_z"] + s["pool_z"], self.config.conv_coeff_prior_sigma)

    def _p(self, s) -> Gaussian:
        return _with_prior(s["pool_p"] + s["dense_x"], self.config.pool_coeff_prior_sigma)

    def _y(self, s, with_softmax=True) -> Gaussian:
        total = s["dense_y"] + s["soft_y"] if with_softmax else s["dense_y"]
        return _with_prior(total, self.config.logit_prior_sigma)

    def posterior(self, s) -> dict[str, Gaussian]:
        p = s["prior"]
        return {"conv_weights": p["conv_weights"] + s["conv_w"], "conv_bias": p["conv_bias"] + s["conv_b"],
                "dense_weights": p["dense_weights"] + s["dense_w"], "dense_bias": p["dense_bias"] + s["dense_b"]}

    def logits(self, s, with_softmax: bool = False) -> Gaussian:
        return self._y(s, with_softmax)

    # ---------------------------------------------------------------- layer visits
    def _visit_conv(self, s, it):
        c, first = self.config, tf.equal(it, 0)
        prior = s["prior"]
        w = prior["conv_weights"] + s["conv_w"]
        b = prior["conv_bias"] + s["conv_b"]
        z_cav = _with_prior(s["pool_z"], c.conv_coeff_prior_sigma)
        msg = self.conv.messages(s["patches"], w, b, z_cav, s["lin_w"], s["lin_b"], s["powers"])
        s = dict(s)
        s["conv_z"] = self._damp(s, "conv_z", msg.z, 0, it, first, dropout=True)
        s["conv_w"] = self._shared(s["conv_w"], msg.weights, first)
        s["conv_b"] = self._shared(s["conv_b"], msg.bias, first)
        s["lin_w"] = (prior["conv_weights"] + s["conv_w"]).mean
        s["lin_b"] = (prior["conv_bias"] + s["conv_b"]).mean
        return s

    def _visit_pool(self, s, it, first, edge):
        c = self.config
        z_cav = _with_prior(s["conv_z"], c.conv_coeff_prior_sigma)
        p_cav = _with_prior(s["dense_x"], c.pool_coeff_prior_sigma)
        shape = [-1, *self.pool_shape]
        msg = self.pool.messages(z_cav, Gaussian(tf.reshape(p_cav.eta, shape), tf.reshape(p_cav.lam, shape)),
                                 s["lin_z"])
        to_p = Gaussian(tf.reshape(msg.p.eta, [-1, self.features]), tf.reshape(msg.p.lam, [-1, self.features]))
        s = dict(s)
        s["pool_z"] = self._damp(s, "pool_z", msg.z, edge, it, first, dropout=False)
        s["pool_p"] = self._damp(s, "pool_p", to_p, edge + 1, it, first, dropout=False)
        s["lin_z"] = self._z(s).mean
        return s

    def _visit_dense(self, s, it, first, edge, train: bool):
        c = self.config
        x = self._p(s)
        if train:
            prior = s["prior"]
            v = prior["dense_weights"] + s["dense_w"]
            b = prior["dense_bias"] + s["dense_b"]
            y_cav = _with_prior(s["soft_y"], c.logit_prior_sigma)
            msg = self.dense.messages(x, y_cav, s["lin_x"], s["lin_v"], v, b)
        else:
            y_cav = _with_prior(Gaussian(tf.zeros_like(s["dense_y"].eta), tf.zeros_like(s["dense_y"].lam)),
                                c.logit_prior_sigma)
            msg = self.dense.messages(x, y_cav, s["lin_x"], s["w"], fixed_bias=s["b"])
        s = dict(s)
        s["dense_x"] = self._damp(s, "dense_x", msg.x, edge, it, first, dropout=True)
        s["dense_y"] = self._damp(s, "dense_y", msg.y, edge + 1, it, first, dropout=True)
        if train:
            s["dense_w"] = self._shared(s["dense_w"], msg.weights, first)
            s["dense_b"] = self._shared(s["dense_b"], msg.bias, first)
            s["lin_v"] = (s["prior"]["dense_weights"] + s["dense_w"]).mean
        s["lin_x"] = self._p(s).mean
        return s

    def _visit_softmax(self, s, it):
        c, first = self.config, tf.equal(it, 0)
        y_cav = _with_prior(s["dense_y"], c.logit_prior_sigma)
        msg = self.softmax.messages(y_cav, s["lin_y"], s["onehot"])
        s = dict(s)
        s["soft_y"] = self._damp(s, "soft_y", msg, 9, it, first, dropout=False)
        s["lin_y"] = self._y(s).mean
        return s

    def train_step(self, s, it):
        """One iteration: [conv, pool, dense, softmax, dense, pool]."""
        first = tf.equal(it, 0)
        s = self._visit_conv(s, it)
        s = self._visit_pool(s, it, first, 1)
        s = self._visit_dense(s, it, first, 3, train=True)
        s = self._visit_softmax(s, it)
        s = self._visit_dense(s, it, tf.constant(False), 5, train=True)
        s = self._visit_pool(s, it, tf.constant(False), 7)
        return s

    def test_step(self, s, it):
        """One iteration with fixed parameters: [conv (constant), pool, dense, pool]."""
        first = tf.equal(it, 0)
        s = self._visit_pool(s, it, first, 1)
        s = self._visit_dense(s, it, first, 3, train=False)
        s = self._visit_pool(s, it, tf.constant(False), 7)
        return s

    # ---------------------------------------------------------------- drivers
    def forward_logits(self, images, posterior: dict[str, Gaussian]) -> np.ndarray:
        """Deterministic forward pass through the posterior means (B, classes)."""
        _, _, y = self._forward_lin(self.window_patches(images), posterior)
        return y.numpy()

    def train_batch(self, images, onehot, prior: dict[str, Gaussian], iterations: int, batch_seed: int):
        """GBP on one training batch; returns (posterior, seconds of the compiled loop)."""
        state = self._train_init(tf.constant(images), tf.constant(onehot), prior,
                                 tf.constant(batch_seed, tf.int64))
        start = time.perf_counter()
        state = self._train_loop(state, tf.constant(0), tf.constant(iterations))
        posterior = self.posterior(state)
        _ = posterior["conv_weights"].eta.numpy()
        return posterior, time.perf_counter() - start

    def predict(self, images, posterior: dict[str, Gaussian], iterations: int, batch_seed: int):
        """GBP with fixed parameters; returns (logit means, logit stds, seconds of the loop)."""
        state = self._test_init(tf.constant(images), posterior, tf.constant(batch_seed, tf.int64))
        start = time.perf_counter()
        state = self._test_loop(state, tf.constant(0), tf.constant(iterations))
        y = self.logits(state)
        mean = y.mean.numpy()
        return mean, y.std.numpy(), time.perf_counter() - start
