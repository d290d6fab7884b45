"""Training loop of the binary-weight message-passing learners (BP, BPI, AMP/TAP, MF).

Implements section 5 of ../shared/docs/bp-amp-mf.md: minibatches with the posterior of the
previous minibatch as prior (``Hext = rho * H``), per-batch reset of the downward messages,
``maxiters`` forward/backward sweeps per minibatch, damping ``psi`` and in-batch reinforcement
``r``. One compiled ``tf.function`` performs the whole update of one minibatch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from pipeline.baselines.binary_mp import layers as L
from pipeline.baselines.binary_mp.scalar_functions import (
    argmax_channel,
    sign_channel,
    sign_gamma,
    sign_upward_field,
)
from pipeline.errors import PipelineError
from pipeline.interrupt import raise_if_interrupted

METHODS = ("bp", "bpi", "amp", "mf")
TASKS = {"10class": 10, "2class": 1}
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[3] / "configs" / "baselines" / "binary_mp.yaml"

# Measured on this 2-core CPU (784-501-501-10, batch 128, steady state per minibatch):
# plain tf.function / XLA = MF 13.3 / 12.9 ms, AMP 25.0 / 13.2 ms, BP(=BPI) 5334 / 554 ms with
# tfp.math.erfcx (XLA fuses the (M, K, N) cavity tensor into its reductions); 295 ms with XLA
# after moving the cavity erfcx to the native erfc; 252 -> 225 ms CPU time (118 -> 106 s CPU per
# epoch) with the blocked cavity loop of layers.bpi_backward. Full cavity tensors (BP with
# bp_full_cavities): 336 ms CPU. XLA is the default for every method.
_JIT_DEFAULT = {"bp": True, "bpi": True, "amp": True, "mf": True}
_EVAL_CHUNK = 10000

PerLayer = float | tuple[float, ...]


def _per_layer(values: PerLayer, n_layers: int) -> tuple[float, ...]:
    """Resolve a per-layer hyperparameter (hidden layers first, output layer last).

    A scalar or a 1-tuple applies to every weight layer; a tuple of length ``n_layers`` is used
    as is. Any other length is fitted to the depth keeping its meaning: the last value stays
    the output layer's, the others go to the hidden layers, truncated or padded by repeating the
    last hidden value. E.g. ``(1.0001, 1.0001, 0.9)`` for 4 weight layers gives
    ``(1.0001, 1.0001, 1.0001, 0.9)``, and for a perceptron (one weight layer) ``(0.9,)``.
    """
    if isinstance(values, (int, float)):
        return (float(values),) * n_layers
    vals = tuple(float(v) for v in values)
    if len(vals) == 1:
        return vals * n_layers
    if len(vals) == n_layers:
        return vals
    hidden = list(vals[:-1][: n_layers - 1])
    hidden += [vals[-2]] * (n_layers - 1 - len(hidden))
    return tuple(hidden) + (vals[-1],)


@dataclass(frozen=True)
class BinaryMPConfig:
    """Hyperparameters of one message-passing learner (defaults: section 7 of the doc / the issue).

    method: "bp", "amp" or "mf" ("bpi" is also accepted: BP with the cavity kept only in g).
    hidden: widths of the hidden layers; the input width comes from the data.
    task: "10class" (argmax output layer, 10 units) or "2class" (one sign output, odd = +1).
    rho: posterior-as-prior exponent per weight layer (hidden first, output last); psi: damping
    of the magnetisations (of the field for the argmax layer); r: in-batch reinforcement. Each of
    rho/psi/r is a number or a tuple, resolved per layer as described in ``_per_layer``.
    maxiters: forward/backward sweeps per minibatch (1 in every published minibatch run).
    init_std: std of the random initial weight fields. seed: initial fields and batch order.
    jit_compile: compile the minibatch update with XLA; None picks the faster per method.
    """

    method: str
    hidden: tuple[int, ...] = (501, 501)
    task: str = "10class"
    batch_size: int = 128
    epochs: int = 1
    rho: PerLayer = (1.0001, 1.0001, 0.9)
    psi: PerLayer = 0.8
    r: PerLayer = 0.0
    init_std: float = 1.0
    maxiters: int = 1
    seed: int = 0
    jit_compile: bool | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PipelineError(
                f"unknown message-passing method {self.method!r}; use one of bp, amp, mf"
            )
        if self.task not in TASKS:
            raise PipelineError(f"unknown task {self.task!r}; use 10class or 2class")
        try:
            hidden = tuple(int(h) for h in self.hidden)
        except (TypeError, ValueError):
            raise PipelineError(f"hidden must be a list of layer widths, got {self.hidden!r}")
        if any(h < 1 for h in hidden):
            raise PipelineError(f"hidden layer widths must be positive, got {hidden}")
        object.__setattr__(self, "hidden", hidden)
        for name in ("batch_size", "epochs", "maxiters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PipelineError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise PipelineError(f"seed must be an integer, got {self.seed!r}")
        if not (isinstance(self.init_std, (int, float)) and self.init_std >= 0):
            raise PipelineError(f"init_std must be a non-negative number, got {self.init_std!r}")
        if self.jit_compile not in (None, True, False):
            raise PipelineError(f"jit_compile must be true, false or null, got {self.jit_compile!r}")
        for name, low, high, high_open in (
            ("rho", 0.0, math.inf, False),
            ("psi", 0.0, 1.0, True),
            ("r", 0.0, 1.0, False),
        ):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                if len(value) == 0:
                    raise PipelineError(f"{name} must not be an empty list")
                value = tuple(value)
                object.__setattr__(self, name, value)
            items = value if isinstance(value, tuple) else (value,)
            for v in items:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise PipelineError(f"{name} must be a number or a list of numbers, got {value!r}")
                if v < low or v > high or (high_open and v >= high):
                    bound = f"[{low:g}, {high:g})" if high_open else f"[{low:g}, {high:g}]"
                    raise PipelineError(f"{name} values must lie in {bound}, got {value!r}")

    @property
    def n_layers(self) -> int:
        """Number of weight layers."""
        return len(self.hidden) + 1

    def per_layer(self, name: str) -> tuple[float, ...]:
        """``rho``, ``psi`` or ``r`` resolved to one value per weight layer."""
        return _per_layer(getattr(self, name), self.n_layers)


def load_config(method: str, path: str | Path | None = None, **overrides) -> BinaryMPConfig:
    """Read the defaults from ``configs/baselines/binary_mp.yaml`` (or ``path``), apply overrides.

    Overrides equal to None are ignored, so a CLI can pass its optional flags straight through.
    """
    import yaml

    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise PipelineError(f"config file {path} does not exist")
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineError(f"cannot read config file {path}: {exc}".replace("\n", " "))
    if not isinstance(data, dict):
        raise PipelineError(f"config file {path} must hold a mapping of option: value")
    data.update({k: v for k, v in overrides.items() if v is not None})
    data["method"] = method
    known = {f.name for f in fields(BinaryMPConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PipelineError(f"unknown binary_mp option(s) {', '.join(unknown)} in {path} or overrides")
    for key in ("hidden", "rho", "psi", "r"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return BinaryMPConfig(**data)


@dataclass(frozen=True)
class BinaryMPResult:
    """Outcome of ``train_binary_mp``: final metrics, per-epoch history and the weight marginals.

    fields[l] is the weight field H (K_l, N_l) of weight layer l, magnetizations[l] = m (the
    damped mean used for prediction; the pointwise weights are sign(m)). input_mean/input_std
    are the scalar normalisation of the inputs: x_net = (x - mean) / (std + 1e-5).
    """

    config: BinaryMPConfig
    metrics: dict[str, float]
    history: tuple[dict[str, float], ...]
    examples_seen: int
    fields: tuple[np.ndarray, ...]
    magnetizations: tuple[np.ndarray, ...]
    input_mean: float = 0.0
    input_std: float = 1.0


class BinaryMPNet:
    """Weight marginals of a binary MLP and the compiled minibatch update.

    Persistent state per weight layer: ``h`` (field H), ``m`` (magnetisation), ``hext`` (prior
    field), all (K, N) tf.Variables. The per-batch messages are rebuilt at every minibatch.
    ``bp_full_cavities`` forces BP's (M, K, N) cavity messages even when ``maxiters == 1``,
    where BP is identical to BPI and the cheaper BPI path is used (for tests).
    """

    def __init__(
        self,
        config: BinaryMPConfig,
        n_in: int,
        rng: np.random.Generator | None = None,
        bp_full_cavities: bool = False,
    ):
        self.config = config
        rng = rng if rng is not None else np.random.default_rng(config.seed)
        self.multiclass = config.task == "10class"
        self.widths = (int(n_in), *config.hidden, TASKS[config.task])
        self.n_layers = len(self.widths) - 1
        self.rho = config.per_layer("rho")
        self.psi = config.per_layer("psi")
        self.r = config.per_layer("r")
        kind = config.method
        if kind == "bp" and config.maxiters == 1 and not bp_full_cavities:
            kind = "bpi"  # algebraically identical after the per-batch reset (doc section 5)
        self.kind = kind
        self.h, self.m, self.hext = [], [], []
        for n, k in zip(self.widths[:-1], self.widths[1:]):
            h0 = (config.init_std * rng.standard_normal((k, n))).astype(np.float32)
            self.h.append(tf.Variable(h0, trainable=False))
            self.m.append(tf.Variable(np.tanh(h0), trainable=False))
            self.hext.append(tf.Variable(np.zeros_like(h0), trainable=False))
        jit = config.jit_compile if config.jit_compile is not None else _JIT_DEFAULT[kind]
        self.jit_compile = jit
        self._step_pasp = tf.function(lambda x, y: self._step(x, y, True), jit_compile=jit)
        self._step_fixed = tf.function(lambda x, y: self._step(x, y, False), jit_compile=jit)
        self._pointwise = tf.function(lambda x: L.pointwise_scores(self.m, x))
        self._bayes = tf.function(lambda x: L.bayes_scores(self.m, x))

    # ----- training ----------------------------------------------------------------------------

    def update(self, x, y, prior_from_posterior: bool = True) -> None:
        """One minibatch update. x: (M, N_in) float32; y: (M,) int32 classes or float32 +-1.

        With ``prior_from_posterior`` (the training loop) the prior is first set to
        ``Hext = rho * H``; otherwise the current ``hext`` variables are kept (tests).
        """
        fn = self._step_pasp if prior_from_posterior else self._step_fixed
        fn(tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, self._label_dtype))

    @property
    def _label_dtype(self):
        return tf.int32 if self.multiclass else tf.float32

    def _layer_kind(self, layer: int) -> str:
        return "argmax" if (self.multiclass and layer == self.n_layers - 1) else self.kind

    def _step(self, x, y, pasp: bool) -> None:
        hexts = []
        for layer in range(self.n_layers):
            if pasp:
                self.hext[layer].assign(self.rho[layer] * self.h[layer])
            hexts.append(self.hext[layer].read_value())
        state = self._reset(x)
        state = self._iteration(state, x, y, hexts, first=True)
        if self.config.maxiters > 1:
            _, state = tf.while_loop(
                lambda i, s: i < self.config.maxiters,
                lambda i, s: (i + 1, self._iteration(s, x, y, hexts, first=False)),
                (tf.constant(1), state),
            )
        for layer in range(self.n_layers):
            self.h[layer].assign(state[layer]["h"])
            self.m[layer].assign(state[layer]["m"])

    def _reset(self, x):
        """Messages at the start of a minibatch: downward fields 0, cavities = marginals."""
        batch = tf.shape(x)[0]
        dtype = x.dtype
        state = []
        for layer in range(self.n_layers):
            n, k = self.widths[layer], self.widths[layer + 1]
            m = self.m[layer].read_value()
            st = {"h": self.h[layer].read_value(), "m": m}
            if layer > 0:
                st["b"] = tf.zeros([batch, n], dtype)
            kind = self._layer_kind(layer)
            if kind == "bp":
                st["m_cav"] = tf.broadcast_to(m[None], [batch, k, n])
                if layer > 0:
                    st["b_cav"] = tf.zeros([batch, k, n], dtype)
            elif kind == "amp":
                st["m_old"] = m
                st["x_old"] = x if layer == 0 else tf.zeros([batch, n], dtype)
                st["g_old"] = tf.zeros([batch, k], dtype)
            state.append(st)
        return state

    def _iteration(self, state, x, y, hexts, first: bool):
        """One forward sweep (layers bottom-up) then one backward sweep (top-down)."""
        n_layers = self.n_layers
        fwd = []
        bup_below = None
        for layer in range(n_layers):
            st, kind = state[layer], self._layer_kind(layer)
            m = st["m"]
            if layer == 0:
                xh, dx = x, None
            else:
                xh, dx = L.input_moments(bup_below, st["b"])
            rec = {"xh": xh, "dx": dx}
            if kind == "bp":
                x_cav = x[:, None, :] if layer == 0 else tf.tanh(bup_below[:, None, :] + st["b_cav"])
                omega, rec["omega_cav"], var = L.bp_forward(m, st["m_cav"], xh, dx, x_cav)
                rec["x_cav"] = x_cav
            elif kind == "amp":
                omega, var = L.tap_forward(
                    m, xh, dx, st["m_old"], st["x_old"], st["g_old"], onsager=not first
                )
            else:  # mf, bpi, argmax
                omega, var = L.mean_field_moments(m, xh, dx)
            rec["omega"], rec["var"] = omega, var
            if layer < n_layers - 1:
                bup_below = sign_upward_field(omega, var)
            fwd.append(rec)

        new_state = [None] * n_layers
        btop = None
        for layer in reversed(range(n_layers)):
            st, rec, kind = state[layer], fwd[layer], self._layer_kind(layer)
            m, h_old, hext = st["m"], st["h"], hexts[layer]
            psi, r = self.psi[layer], self.r[layer]
            xh, dx, omega, var = rec["xh"], rec["dx"], rec["omega"], rec["var"]
            need_b = layer > 0
            if layer == n_layers - 1 and not self.multiclass:
                btop = y[:, None] * math.inf  # hard binary output, B = beta y with beta = inf
            out = {}
            if kind == "argmax":
                g = argmax_channel(omega, var, y)
                b, hin = L.mf_backward(m, xh, g, need_b)
                out["h"], out["m"] = L.argmax_weight_update(h_old, hin, hext, psi, r)
            elif kind == "bp":
                b, b_cav, out["h"], out["m"], out["m_cav"] = L.bp_backward(
                    m, h_old, hext, st["m_cav"], rec["x_cav"], rec["omega_cav"], var, btop,
                    need_b, psi, r,
                )
                if need_b:
                    out["b_cav"] = b_cav
            elif kind == "bpi":
                b, hin = L.bpi_backward(m, xh, omega, var, btop, need_b)
                out["h"], out["m"] = L.damped_weight_update(h_old, m, hin, hext, psi, r)
            elif kind == "amp":
                g = sign_channel(btop, omega, var)
                gamma = sign_gamma(g, omega, var)
                b, hin = L.tap_backward(
                    m, xh, dx, g, gamma, st["m_old"], st["x_old"], st["g_old"], need_b,
                    onsager=not first,
                )
                out["h"], out["m"] = L.damped_weight_update(h_old, m, hin, hext, psi, r)
                out["m_old"], out["x_old"], out["g_old"] = m, xh, g
            else:  # mf
                g = sign_channel(btop, omega, var)
                b, hin = L.mf_backward(m, xh, g, need_b)
                out["h"], out["m"] = L.damped_weight_update(h_old, m, hin, hext, psi, r)
            if need_b:
                out["b"] = b
            new_state[layer] = out
            btop = b
        return new_state

    # ----- prediction --------------------------------------------------------------------------

    def predict(self, x: np.ndarray, bayes: bool = False) -> np.ndarray:
        """Class indices (10class) or +-1 (2class) of the pointwise or Bayesian network."""
        fn = self._bayes if bayes else self._pointwise
        outs = []
        for start in range(0, len(x), _EVAL_CHUNK):
            scores = fn(tf.convert_to_tensor(x[start : start + _EVAL_CHUNK], tf.float32)).numpy()
            if self.multiclass:
                outs.append(np.argmax(scores, axis=1))
            else:
                outs.append(np.where(scores[:, 0] + 1e-10 >= 0, 1.0, -1.0))
        return np.concatenate(outs) if outs else np.zeros((0,))

    def accuracy(self, x: np.ndarray, y: np.ndarray, bayes: bool = False) -> float:
        if len(x) == 0:
            return float("nan")
        return float(np.mean(self.predict(x, bayes) == y))


EpochCallback = Callable[[int, int, Mapping[str, float]], None]


def fit_arrays(
    config: BinaryMPConfig,
    x_train: np.ndarray,
    t_train: np.ndarray,
    x_test: np.ndarray,
    t_test: np.ndarray,
    on_epoch: EpochCallback | None = None,
    net: BinaryMPNet | None = None,
) -> tuple[BinaryMPNet, list[dict[str, float]]]:
    """Train on preprocessed arrays: x (P, N_in) float, targets int classes or +-1 floats.

    Each epoch reshuffles (generator seeded by ``config.seed``) and drops the incomplete last
    minibatch, as the reference's DataLoader. ``seconds_per_epoch`` is the wall time of the
    epoch's minibatch updates (the first epoch includes tracing/compilation), not evaluation;
    ``cpu_seconds_per_epoch`` the CPU time of this process (all threads) over the same span,
    the fairer figure on a shared machine.
    """
    rng = np.random.default_rng(config.seed)
    x_train = np.asarray(x_train, np.float32)
    x_test = np.asarray(x_test, np.float32)
    if net is None:
        net = BinaryMPNet(config, x_train.shape[1], rng)
    n_batches = len(x_train) // config.batch_size
    if n_batches == 0:
        raise PipelineError(
            f"the training set has {len(x_train)} examples, fewer than one minibatch "
            f"of {config.batch_size}; lower the batch size or use more examples"
        )
    label_dtype = np.int32 if net.multiclass else np.float32
    x_tf = tf.constant(x_train)
    y_tf = tf.constant(np.asarray(t_train, label_dtype))
    history = []
    seen = 0
    for epoch in range(config.epochs):
        order = rng.permutation(len(x_train))[: n_batches * config.batch_size]
        batches = order.reshape(n_batches, config.batch_size)
        start, cpu_start = time.perf_counter(), time.process_time()
        for idx in batches:
            raise_if_interrupted()
            net.update(tf.gather(x_tf, idx), tf.gather(y_tf, idx))
        net.m[0].numpy()  # make sure the last update has run before stopping the clock
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        seen += n_batches * config.batch_size
        metrics = {
            "test_accuracy": net.accuracy(x_test, t_test),
            "test_accuracy_bayes": net.accuracy(x_test, t_test, bayes=True),
            "train_accuracy": net.accuracy(x_train, t_train),
            "seconds_per_epoch": seconds,
            "cpu_seconds_per_epoch": cpu_seconds,
        }
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, seen, dict(metrics))
    return net, history


def _check_images(name: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise PipelineError(
            f"{name} images must be (N, H, W) with N labels, got shapes {x.shape} and {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise PipelineError(f"{name} labels must be integers, got dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise PipelineError(f"{name} labels must be digits 0..9, got {y.min()}..{y.max()}")
    return x.reshape(len(x), -1).astype(np.float32), y


def preprocess(config, x_train, y_train, x_test, y_test):
    """Flatten, normalise with the training set's scalar mean/std, map labels to the task.

    Returns ``(x_train, t_train, x_test, t_test, mean, std)``. 2class: odd -> +1, even -> -1.
    """
    xtr, ytr = _check_images("training", x_train, y_train)
    xte, yte = _check_images("test", x_test, y_test)
    if xtr.shape[1:] != xte.shape[1:]:
        raise PipelineError(
            f"training and test images differ in size: {xtr.shape[1:]} vs {xte.shape[1:]}"
        )
    mean = float(xtr.mean(dtype=np.float64))
    std = float(xtr.std(dtype=np.float64, ddof=1)) if xtr.size > 1 else 0.0
    xtr = (xtr - mean) / (std + 1e-5)
    xte = (xte - mean) / (std + 1e-5)
    if config.task == "2class":
        ytr = np.where(ytr % 2 == 1, 1.0, -1.0).astype(np.float32)
        yte = np.where(yte % 2 == 1, 1.0, -1.0).astype(np.float32)
    else:
        ytr, yte = ytr.astype(np.int32), yte.astype(np.int32)
    return xtr, ytr, xte, yte, mean, std


def train_binary_mp(
    config: BinaryMPConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    on_epoch: EpochCallback | None = None,
) -> BinaryMPResult:
    """Train a BP / AMP / MF learner on raw uint8 images (N, 28, 28) and integer labels.

    ``on_epoch(epoch_index, examples_seen, metrics)`` is called after every epoch (index from 0)
    with ``test_accuracy`` (pointwise network sign(m)), ``test_accuracy_bayes`` (means and
    variances propagated through the marginals), ``train_accuracy`` (pointwise, whole training
    set) as fractions in [0, 1], ``seconds_per_epoch`` and ``cpu_seconds_per_epoch``.
    """
    xtr, ttr, xte, tte, mean, std = preprocess(config, x_train, y_train, x_test, y_test)
    net, history = fit_arrays(config, xtr, ttr, xte, tte, on_epoch)
    n_batches = len(xtr) // config.batch_size
    return BinaryMPResult(
        config=config,
        metrics=dict(history[-1]),
        history=tuple(history),
        examples_seen=n_batches * config.batch_size * config.epochs,
        fields=tuple(v.numpy() for v in net.h),
        magnetizations=tuple(v.numpy() for v in net.m),
        input_mean=mean,
        input_std=std,
    )
