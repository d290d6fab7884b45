"""Learned deep factor graphs for denoising: a stack of transposed-convolution reconstruction
layers (and 2×2 upsampling layers between them) over the pixels, all learned by GBP.

Variables, for conv layer ℓ with input x_ℓ (the pixels for ℓ = 0, else the coarse variables of
the upsample layer below it):
  z_ℓ (B, H_ℓ−k+1, W_ℓ−k+1, F_ℓ)  latent coefficients, prior N(0, σ_z²)
  W_ℓ (k, k, C_ℓ, F_ℓ)            filters, prior N(0, σ_W²) or the carried posterior
  b_ℓ (C_ℓ)                       per-channel bias, prior N(0, σ_b²) or carried
An upsample layer ties z_ℓ (fine) to new coarse variables u_ℓ (prior N(0, σ_u²)), which are the
input of the next conv layer.  The pixels have a robust observation factor N(y, σ_pix²).

One iteration visits the layers [0, 1, …, L−1, L−2, …, 1] (forward then backward sweep, doc §2.5).
A conv visit: cavities → rank-1 messages of all its factors (damped; dropout decided once per
factor for all its outgoing messages, i.e. asynchronous factor updates, 36× fewer random draws
than per edge; the summed filter messages get the law-of-large-numbers equivalent
β_eff = p + (1−p)β)
→ for layer 0 the robust pixel-observation message → marginals.  Factors are linearised at the
current means at every visit, except the very first visit of a frame, which uses the random init
(coefficients N(0, init_std²), upsampled to the fine grid below an upsample layer as in the
reference) and, for filters, the carried posterior mean (or a random init for a fresh prior).
With ``init: principal_patches`` a frame with a fresh prior starts layer 0's filters and
coefficients at the noisy frame's principal k×k patches instead (see principal_patches.py).
An upsample visit repeats its update ``inner_loops`` times (damped, no dropout).  A frame can
instead be warm-started from the previous frame's final state (``warm_start``).

Differences from the reference (doc §9), deliberately: the observation message is written once
per iteration; dropout masks are independent per edge family and visit; conv factors are
linearised at the carried posterior mean of the filters at the start of a frame; the upsample
coarse prior uses the configured σ; warm starts, which the reference does not have (it
restarts every frame from zero messages and random coefficients); and the optional
principal-patch start of layer 0 (the reference always starts at random).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import tensorflow as tf

from pipeline.baselines.classical_filters import median_filter_batch
from pipeline.gbp.factors.pixel_observation import pixel_observation_message
from pipeline.gbp.factors.transposed_conv_reconstruction import (
    PAD_PRECISION, TransposedConvReconstruction, filters_per_window, pad_coeffs, scatter_windows, windows)
from pipeline.gbp.factors.upsample import block_sum, coarse_size, upsample_messages, upsample_nearest
from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.loop import edge_seed
from pipeline.gbp.messages import check_message_schedule, damped_update
from pipeline.gbp.models.principal_patches import principal_patch_init
from pipeline.gbp.robust import check_positive, check_robust_kind

LayerType = Literal["conv", "upsample"]
# the first linearisation point of the first conv layer's filters and coefficients on a frame
# with the original prior: random, or the noisy frame's principal patches (principal_patches.py)
InitKind = Literal["random", "principal_patches"]


@dataclass(frozen=True)
class LayerConfig:
    """One layer: ``conv`` (transposed-conv reconstruction of its input) or ``upsample`` (2×2)."""

    type: LayerType = "conv"
    filters: int = 4
    kernel: int = 3
    sigma: float = 0.1  # reconstruction (or upsample) factor noise std, in input units
    n_rob: float | None = None  # Tukey threshold in units of σ; None = not robust
    activation: Literal["identity", "leaky_relu"] = "identity"
    weight_prior_sigma: float = 0.1
    bias_prior_sigma: float = 0.3
    coeff_prior_sigma: float = 0.5  # conv: prior of z; upsample: prior of the coarse variables
    inner_loops: int = 4  # upsample only: updates per visit

    def __post_init__(self):
        check_positive(sigma=self.sigma, n_rob=self.n_rob, weight_prior_sigma=self.weight_prior_sigma,
                       bias_prior_sigma=self.bias_prior_sigma, coeff_prior_sigma=self.coeff_prior_sigma)
        if self.filters < 1 or self.kernel < 1 or self.inner_loops < 1:
            raise ValueError("filters, kernel and inner_loops must be ≥ 1")


@dataclass(frozen=True)
class DeepDenoiserConfig:
    layers: tuple[LayerConfig, ...] = (LayerConfig(),)
    pixel_sigma: float = 0.2
    pixel_n_rob: float | None = 0.2
    robust_kind: str = "tukey"
    damping: float = 0.8
    dropout: float = 0.6
    init_std: float = 0.1  # std of the random initial linearisation point of coefficients/filters
    init: InitKind = "random"  # layer 0's start on a frame with the original prior (InitKind)
    # principal_patches: the norm of each start filter; its coefficients scale inversely, so the
    # start reconstructs the same frame (five_layer's GBP diverges from norm 0.52, the random
    # start's expected norm init_std·√(k²C); single_layer scores 0.1 dB higher at 0.15 than there)
    init_filter_norm: float = 0.15
    exact_filter_messages: bool = False  # store per-factor filter messages (slow; for comparison)
    seed: int = 0  # dropout masks, and the initial linearisation points unless init_seed is set
    init_seed: int | None = None  # the random initial linearisation points alone (None: seed)

    def __post_init__(self):
        check_robust_kind(self.robust_kind)
        check_positive(pixel_sigma=self.pixel_sigma, pixel_n_rob=self.pixel_n_rob, init_std=self.init_std,
                       init_filter_norm=self.init_filter_norm)
        check_message_schedule(self.damping, self.dropout)
        if not self.layers or self.layers[0].type != "conv" or self.layers[-1].type != "conv":
            raise ValueError("layers must start and end with a conv layer")
        if any(a.type == b.type == "upsample" for a, b in zip(self.layers, self.layers[1:])):
            raise ValueError("two upsample layers in a row")


def schedule(n_layers: int) -> list[int]:
    """[0, 1, …, L−1, L−2, …, 1]: forward then backward sweep."""
    return list(range(n_layers)) + list(range(n_layers - 2, 0, -1))


class DeepDenoiser:
    """The model: shapes of every variable follow from the frame shape (B, H, W, C)."""

    def __init__(self, config: DeepDenoiserConfig):
        self.config = config
        self.layers = config.layers
        self.factors = {
            i: TransposedConvReconstruction(l.kernel, l.sigma, l.n_rob, l.activation, config.robust_kind,
                                            config.exact_filter_messages)
            for i, l in enumerate(self.layers) if l.type == "conv"}
        self.visits = schedule(len(self.layers))

    # ---- shapes and priors --------------------------------------------------------------
    def _shapes(self, height, width, channels):
        """Per layer: (input H, W, C) and for conv the coefficient shape."""
        shapes, h, w, c = [], height, width, channels
        for layer in self.layers:
            if layer.type == "conv":
                if h < layer.kernel or w < layer.kernel:
                    raise ValueError(f"a {height}×{width} frame is too small for this model's layers")
                shapes.append({"input": (h, w, c), "coeffs": (h - layer.kernel + 1, w - layer.kernel + 1, layer.filters)})
                h, w, c = h - layer.kernel + 1, w - layer.kernel + 1, layer.filters
            else:
                shapes.append({"fine": (h, w, c), "coarse": (coarse_size(h), coarse_size(w), c)})
                h, w = coarse_size(h), coarse_size(w)
        return shapes

    def original_prior(self, channels: int) -> dict[str, Gaussian]:
        """The parameter priors before any frame: N(0, σ²) filters and biases."""
        prior, c = {}, channels
        for i, layer in enumerate(self.layers):
            if layer.type == "conv":
                shape = (layer.kernel, layer.kernel, c, layer.filters)
                prior[f"filters_{i}"] = Gaussian.from_mean_std(tf.zeros(shape), layer.weight_prior_sigma)
                prior[f"bias_{i}"] = Gaussian.from_mean_std(tf.zeros((c,)), layer.bias_prior_sigma)
                c = layer.filters
        return prior

    # ---- state ----------------------------------------------------------------------------
    def initial_state(self, noisy, prior=None, previous=None):
        """Variables and messages for one frame.  ``previous``: the final state of the previous
        frame (same shape) to warm-start from, see ``warm_start``."""
        config = self.config
        noisy = tf.convert_to_tensor(noisy, tf.float32)
        batch = noisy.shape[0]
        shapes = self._shapes(*noisy.shape[1:])
        carried = prior is not None
        prior = dict(prior) if carried else self.original_prior(noisy.shape[-1])
        rng = np.random.default_rng(config.seed if config.init_seed is None else config.init_seed)
        state = {"noisy": noisy, "prior": prior, "init": {}, "warm": tf.constant(False),
                 "observation": pixel_observation_message(noisy, noisy, config.pixel_sigma, None)}
        # random initial linearisation points, from the top down so that a fine grid below an
        # upsample layer starts at the upsampled coarse init (doc §3.6)
        coarse_init = None
        for i in reversed(range(len(self.layers))):
            layer, shape = self.layers[i], shapes[i]
            if layer.type == "upsample":
                coarse_init = tf.constant(rng.normal(0, config.init_std, (batch, *shape["coarse"])), tf.float32)
                state["init"][f"input_{i + 1}"] = coarse_init
                continue
            zshape = (batch, *shape["coeffs"])
            if coarse_init is not None:
                z_init = upsample_nearest(coarse_init, zshape[1], zshape[2])
                coarse_init = None
            else:
                z_init = tf.constant(rng.normal(0, config.init_std, zshape), tf.float32)
            state["init"][f"coeffs_{i}"] = z_init
            filters = prior[f"filters_{i}"]
            state["init"][f"filters_{i}"] = filters.mean if carried else tf.constant(
                rng.normal(0, config.init_std, filters.eta.shape), tf.float32)
            state["init"][f"bias_{i}"] = prior[f"bias_{i}"].mean
        state["init"]["input_0"] = noisy
        if config.init == "principal_patches" and not carried:
            layer, init = self.layers[0], state["init"]
            filters, coeffs = principal_patch_init(noisy, layer.kernel, layer.filters, config.init_filter_norm)
            n = filters.shape[-1]  # more filters than patch dimensions (k²C): the rest keep their random start
            init["filters_0"] = tf.concat([filters, init["filters_0"][..., n:]], axis=-1)
            init["coeffs_0"] = tf.concat([coeffs, init["coeffs_0"][..., n:]], axis=-1)
        for i, (layer, shape) in enumerate(zip(self.layers, shapes)):
            if layer.type == "conv":
                h, w, c = shape["input"]
                edge = (batch, h, w, c, layer.kernel**2, layer.filters)
                zero6 = Gaussian(tf.zeros(edge), tf.zeros(edge))
                zero4 = Gaussian.zeros_like(tf.zeros((batch, h, w, c)))
                filt = prior[f"filters_{i}"]
                state[f"conv_{i}"] = {
                    "to_input": zero4, "to_bias": zero4, "to_coeffs": zero6,
                    "coeff_sum": Gaussian.zeros_like(tf.zeros((batch, *shape["coeffs"]))),
                    "bias_sum": Gaussian.zeros_like(tf.zeros((c,))),
                    "filter_sum": Gaussian.zeros_like(filt.eta),
                }
                if config.exact_filter_messages:
                    state[f"conv_{i}"]["to_filters"] = zero6
            else:
                fine = (batch, *shape["fine"])
                state[f"up_{i}"] = {"to_fine": Gaussian.zeros_like(tf.zeros(fine)),
                                    "to_coarse": Gaussian.zeros_like(tf.zeros(fine)),
                                    "coarse_sum": Gaussian.zeros_like(tf.zeros((batch, *shape["coarse"])))}
        if previous is not None:
            state = self.warm_start(state, previous)
        return state

    def warm_start(self, state, previous):
        """Start GBP on a new frame where it ended on the previous one (video is coherent).

        Copied from ``previous``: the messages between the reconstruction/upsample factors and
        the per-example variables (coefficients, upsampled maps, pixels) and, as first
        linearisation points, the previous means of coefficients, hidden inputs, filters, biases
        and pixels.  The new frame's robust observation message starts with its weights at the
        new frame's 3×3 median, not at the previous clean estimate: where the scene moved, that
        would start correct pixels as outliers (single_layer, seed 1 of the paper's protocol:
        +0.2 dB at frame 5, benchmarks/README.md).  Not copied: the messages to filters and
        biases — their evidence is already in the carried prior, copying them would count it
        twice.  The new frame's graph is unchanged (same factors and priors, so the same fixed
        points); only where GBP starts differs, and the first update is damped like every later
        one.  A previous frame of another size gives a cold start.
        """
        if previous["noisy"].shape != state["noisy"].shape:
            return state
        state, init = dict(state), dict(state["init"])
        posterior = self.parameter_posterior(previous)
        for i, layer in enumerate(self.layers):
            if layer.type == "conv":
                conv = dict(state[f"conv_{i}"])
                for key in ("to_coeffs", "coeff_sum", "to_input"):
                    conv[key] = previous[f"conv_{i}"][key]
                state[f"conv_{i}"] = conv
                init[f"coeffs_{i}"] = self.coeff_marginal(previous, i).mean
                init[f"filters_{i}"] = posterior[f"filters_{i}"].mean
                init[f"bias_{i}"] = posterior[f"bias_{i}"].mean
                if i > 0:
                    init[f"input_{i}"] = self.input_marginal(previous, i).mean
            else:
                state[f"up_{i}"] = dict(previous[f"up_{i}"])
        state["init"] = init
        # the robust weights start at the new frame's own 3×3 median, an outlier-free estimate of
        # this frame: the previous clean estimate would mark every pixel that changed by more than
        # N_rob·σ (0.04 for the video configs) as an impulse
        state["observation"] = pixel_observation_message(
            state["noisy"], median_filter_batch(state["noisy"].numpy(), 3), self.config.pixel_sigma,
            self.config.pixel_n_rob, self.config.robust_kind)
        state["warm"] = tf.constant(True)
        return state

    # ---- marginals ------------------------------------------------------------------------
    def _coeff_prior(self, i, like):
        return Gaussian.from_mean_std(tf.zeros_like(like), self.layers[i].coeff_prior_sigma)

    def input_marginal(self, state, i) -> Gaussian:
        """Marginal of conv layer i's input: pixels (observation) or coarse upsample variables."""
        conv = state[f"conv_{i}"]
        if i == 0:
            return state["observation"] + conv["to_input"]
        up = state[f"up_{i - 1}"]
        return self._coeff_prior(i - 1, up["coarse_sum"].eta) + up["coarse_sum"] + conv["to_input"]

    def coeff_marginal(self, state, i) -> Gaussian:
        conv = state[f"conv_{i}"]
        marginal = self._coeff_prior(i, conv["coeff_sum"].eta) + conv["coeff_sum"]
        if i + 1 < len(self.layers):
            marginal = marginal + state[f"up_{i + 1}"]["to_fine"]
        return marginal

    def pixel_marginal(self, state) -> Gaussian:
        return self.input_marginal(state, 0)

    def parameter_posterior(self, state) -> dict[str, Gaussian]:
        post = {}
        for i, layer in enumerate(self.layers):
            if layer.type == "conv":
                conv = state[f"conv_{i}"]
                post[f"filters_{i}"] = state["prior"][f"filters_{i}"] + conv["filter_sum"]
                post[f"bias_{i}"] = state["prior"][f"bias_{i}"] + conv["bias_sum"]
        return post

    # ---- one iteration ------------------------------------------------------------------
    def step(self, state, iteration):
        state = dict(state)
        for v, i in enumerate(self.visits):
            counter = iteration * len(self.visits) + v
            # forward-sweep visit of iteration 0 of a cold start: raw (undamped) first messages
            first = tf.logical_and(tf.logical_and(iteration == 0, tf.constant(v == i)),
                                   tf.logical_not(state["warm"]))
            if self.layers[i].type == "conv":
                state = self._visit_conv(state, i, counter, first)
            else:
                state = self._visit_upsample(state, i, first)
        return state

    def _visit_conv(self, state, i, counter, first):
        config, layer, factor = self.config, self.layers[i], self.factors[i]
        conv = dict(state[f"conv_{i}"])
        prior_w, prior_b = state["prior"][f"filters_{i}"], state["prior"][f"bias_{i}"]
        x_marg = self.input_marginal(state, i)
        z_marg = self.coeff_marginal(state, i)
        w_marg = prior_w + conv["filter_sum"]
        b_marg = prior_b + conv["bias_sum"]
        init = state["init"]

        def lin(name, marginal):
            return tf.where(first, init[name], marginal.mean)

        x0, z0 = lin(f"input_{i}", x_marg), lin(f"coeffs_{i}", z_marg)
        w0, b0 = lin(f"filters_{i}", w_marg), lin(f"bias_{i}", b_marg)
        z0_padded = pad_coeffs(z0, layer.kernel)
        linear = factor.linearise(x0, z0_padded, w0, b0)
        h, w = x0.shape[1], x0.shape[2]
        # cavities (variable→factor messages)
        z_win = Gaussian(windows(pad_coeffs(z_marg.eta, layer.kernel), layer.kernel, h, w)[:, :, :, None],
                         windows(pad_coeffs(z_marg.lam, layer.kernel, PAD_PRECISION), layer.kernel, h, w)[:, :, :, None])
        coeff_cavity = z_win - conv["to_coeffs"]
        input_cavity = x_marg - conv["to_input"]
        bias_cavity = b_marg - conv["to_bias"]
        filter_cavity = w_marg
        if config.exact_filter_messages:
            filter_cavity = Gaussian(filters_per_window(w_marg.eta), filters_per_window(w_marg.lam)) - conv["to_filters"]
        new = factor.messages(linear, z0_padded, w0, input_cavity, bias_cavity, coeff_cavity, filter_cavity)

        def write(old, msg, edge_id, per_factor=True):
            # one dropout decision per factor for all its outgoing messages (asynchronous factor
            # updates); the same seed for every edge family of the layer makes it the same mask
            mask = tf.concat([tf.shape(x0), tf.ones([tf.rank(msg.eta) - 4], tf.int32)], 0) if per_factor else None
            return damped_update(old, msg, config.damping, config.dropout,
                                 edge_seed(config.seed, 10 * i + edge_id, counter), first, mask)

        conv["to_coeffs"] = write(conv["to_coeffs"], new.to_coeffs, 0)
        conv["to_input"] = write(conv["to_input"], new.to_input, 0)
        conv["to_bias"] = write(conv["to_bias"], new.to_bias, 0)
        if config.exact_filter_messages:
            conv["to_filters"] = write(conv["to_filters"], new.to_filters, 0)
            conv["filter_sum"] = Gaussian(*(tf.reduce_sum(t, axis=[0, 1, 2]) for t in conv["to_filters"]))
            conv["filter_sum"] = self._edge_sum_to_filters(conv["filter_sum"], layer)
        else:
            beta_eff = config.dropout + (1.0 - config.dropout) * config.damping
            conv["filter_sum"] = damped_update(conv["filter_sum"], new.filter_sum, beta_eff, 0.0, None, first)
        conv["coeff_sum"] = Gaussian(*(scatter_windows(tf.reduce_sum(t, axis=3), layer.kernel)
                                       for t in conv["to_coeffs"]))
        conv["bias_sum"] = Gaussian(*(tf.reduce_sum(t, axis=[0, 1, 2]) for t in conv["to_bias"]))
        state[f"conv_{i}"] = conv
        if i == 0:
            observed = pixel_observation_message(state["noisy"], x_marg.mean, config.pixel_sigma,
                                                 config.pixel_n_rob, config.robust_kind)
            state["observation"] = write(state["observation"], observed, 4, per_factor=False)
        return state

    @staticmethod
    def _edge_sum_to_filters(summed: Gaussian, layer) -> Gaussian:
        """(C,K,F) sums over factors → (k,k,C,F)."""
        def arrange(t):
            c = t.shape[0]
            return tf.reshape(tf.transpose(t, [1, 0, 2]), [layer.kernel, layer.kernel, c, -1])
        return Gaussian(arrange(summed.eta), arrange(summed.lam))

    def _visit_upsample(self, state, i, first):
        layer, config = self.layers[i], self.config
        up = dict(state[f"up_{i}"])
        for loop in range(layer.inner_loops):
            state[f"up_{i}"] = up
            fine = self.coeff_marginal(state, i - 1)
            coarse = self.input_marginal(state, i + 1)
            fh, fw = fine.eta.shape[1], fine.eta.shape[2]
            coarse_on_fine = Gaussian(upsample_nearest(coarse.eta, fh, fw), upsample_nearest(coarse.lam, fh, fw))
            to_fine, to_coarse = upsample_messages(fine - up["to_fine"], coarse_on_fine - up["to_coarse"],
                                                   layer.sigma)
            raw = tf.logical_and(first, loop == 0)
            up["to_fine"] = damped_update(up["to_fine"], to_fine, config.damping, 0.0, None, raw)
            up["to_coarse"] = damped_update(up["to_coarse"], to_coarse, config.damping, 0.0, None, raw)
            up["coarse_sum"] = Gaussian(block_sum(up["to_coarse"].eta), block_sum(up["to_coarse"].lam))
        state[f"up_{i}"] = up
        return state

    # ---- sizes ----------------------------------------------------------------------------
    def minimum_size(self) -> int:
        """The smallest frame height (and width) every layer fits in: a conv layer needs k inputs
        for one coefficient, an upsample layer's coarse grid has ⌈n/2⌉ of its n inputs."""
        size = 1
        for layer in reversed(self.layers):
            size = size + layer.kernel - 1 if layer.type == "conv" else 2 * size - 1
        return size

    def edges(self, height, width, channels) -> int:
        """Number of factor–coefficient edges (the per-edge message count)."""
        total = 0
        for layer, shape in zip(self.layers, self._shapes(height, width, channels)):
            if layer.type == "conv":
                h, w, c = shape["input"]
                total += h * w * c * layer.kernel**2 * layer.filters
        return total

    def estimated_bytes(self, height, width, channels) -> int:
        """≈ 12 float32 per-edge tensors live at the peak of a conv visit (messages, cavities,
        new messages, temporaries), ×2 with exact filter messages."""
        per_edge = 24 if self.config.exact_filter_messages else 12
        return 4 * per_edge * self.edges(height, width, channels)

    def bytes_moved_per_iteration(self, height, width, channels) -> int:
        """Algorithm-level float32 traffic per iteration: each visit reads the stored per-edge
        coefficient messages (η, Λ) twice (sums, then new messages), writes them once and reads
        the window-gathered marginals; per-pixel tensors are small next to that."""
        visits = {}
        for i in self.visits:
            visits[i] = visits.get(i, 0) + 1
        total = 0
        for i, (layer, shape) in enumerate(zip(self.layers, self._shapes(height, width, channels))):
            if layer.type == "conv":
                h, w, c = shape["input"]
                edges = h * w * c * layer.kernel**2 * layer.filters
                per_visit = 4 * edges * (2 * 2 + 2 + 2) * (2 if self.config.exact_filter_messages else 1)
                total += visits[i] * per_visit
        return total
