"""Tests of the BP / AMP / MF message-passing learners (pipeline.baselines.binary_mp)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import yaml

from pipeline.baselines.binary_mp import (
    BinaryMPConfig,
    BinaryMPNet,
    fit_arrays,
    load_config,
    train_binary_mp,
)
from pipeline.baselines.binary_mp import layers as layers_mod
from pipeline.baselines.binary_mp import scalar_functions as sf
from pipeline.baselines.binary_mp.learner import DEFAULT_CONFIG_PATH
from pipeline.errors import PipelineError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
F64 = tf.float64


def _t(x):
    return tf.constant(np.asarray(x, np.float64), F64)


def _grad_and_hessian_diag(fn, *args, wrt):
    """First and second derivative of sum(fn(*args)) with respect to args[wrt], elementwise."""
    args = [_t(a) for a in args]
    with tf.GradientTape() as outer:
        outer.watch(args[wrt])
        with tf.GradientTape() as inner:
            inner.watch(args[wrt])
            value = tf.reduce_sum(fn(*args))
        grad = inner.gradient(value, args[wrt])
    return grad.numpy(), outer.gradient(grad, args[wrt]).numpy()


def _central_difference(fn, args, wrt, eps=1e-5):
    lo, hi = list(map(np.asarray, args)), list(map(np.asarray, args))
    lo[wrt] = lo[wrt] - eps
    hi[wrt] = hi[wrt] + eps
    return (fn(*[_t(a) for a in hi]).numpy() - fn(*[_t(a) for a in lo]).numpy()) / (2 * eps)


# --- scalar functions --------------------------------------------------------------------------


def test_weight_moments_are_derivatives_of_log_2cosh():
    h = np.linspace(-8, 8, 41)
    d1, d2 = _grad_and_hessian_diag(sf.weight_log_partition, h, wrt=0)
    m, var = sf.weight_moments(_t(h))
    np.testing.assert_allclose(m.numpy(), d1, atol=1e-12)
    np.testing.assert_allclose(var.numpy(), d2, atol=1e-10)
    np.testing.assert_allclose(sf.weight_log_partition(_t(h)).numpy(), np.log(2 * np.cosh(h)), rtol=1e-12)


def test_log_h_and_gh_match_references_over_a_wide_range():
    from tensorflow_probability.python.internal import special_math

    x = np.linspace(-40, 40, 8001)
    ref = special_math.log_ndtr(_t(-x)).numpy()
    np.testing.assert_allclose(sf.log_h(_t(x)).numpy(), ref, rtol=1e-8, atol=1e-13)  # log_ndtr: 3-term series past 20
    gh_ref = np.exp(-0.5 * x**2 - 0.5 * np.log(2 * np.pi) - ref)
    np.testing.assert_allclose(sf.gh(_t(x)).numpy(), gh_ref, rtol=1e-7, atol=1e-300)
    # float32 stays finite where the naive forms overflow
    for fn in (sf.log_h, sf.gh):
        assert np.all(np.isfinite(fn(tf.constant(x, tf.float32)).numpy()))


def test_fast_erfcx_matches_tfp_erfcx():
    for dtype, rtol in ((tf.float64, 1e-12), (tf.float32, 2e-5)):
        x = np.linspace(-12, 60, 20001)
        _, e = sf._exp_half_sq_and_erfcx(tf.constant(x, dtype))
        ref = tfp.math.erfcx(_t(x / np.sqrt(2))).numpy()
        np.testing.assert_allclose(e.numpy().astype(np.float64), ref, rtol=rtol)


SIGN_CASES = [  # (b, omega, V): fields from above of both signs and sizes, wide omega/sqrt V
    (b, w, v)
    for b in (-7.0, -1.3, -0.2, 0.0, 0.4, 2.5, 9.0)
    for w in (-9.0, -2.0, -0.3, 0.0, 0.7, 3.0, 11.0)
    for v in (0.05, 1.0, 30.0)
]


def test_sign_channel_g_gamma_and_fields_are_derivatives_of_phi():
    b, w, v = (np.array(c) for c in zip(*SIGN_CASES))
    g = sf.sign_channel(_t(b), _t(w), _t(v)).numpy()
    dphi_dw, d2phi_dw2 = _grad_and_hessian_diag(sf.sign_log_partition, b, w, v, wrt=1)
    np.testing.assert_allclose(g, dphi_dw, rtol=1e-8, atol=1e-12)
    gamma = sf.sign_gamma(_t(g), _t(w), _t(v)).numpy()
    np.testing.assert_allclose(gamma, -d2phi_dw2, rtol=1e-7, atol=1e-10)
    # finite differences of phi, independent of autodiff through erfcx
    fd = _central_difference(sf.sign_log_partition, (b, w, v), wrt=1, eps=1e-6)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)
    # posterior mean of the unit: d phi / d b = tanh(b + Bup)
    dphi_db, _ = _grad_and_hessian_diag(sf.sign_log_partition, b, w, v, wrt=0)
    bup = sf.sign_upward_field(_t(w), _t(v)).numpy()
    np.testing.assert_allclose(np.tanh(b + bup), dphi_db, atol=1e-10)
    # g vanishes without a field from above
    assert np.all(g[b == 0.0] == 0.0)


def test_sign_mean_is_mean_of_sign_and_bup_is_its_atanh():
    w = np.linspace(-30, 30, 601)
    v = np.full_like(w, 2.0)
    mean = sf.sign_mean(_t(w), _t(v)).numpy()
    dphi_db, _ = _grad_and_hessian_diag(sf.sign_log_partition, np.zeros_like(w), w, v, wrt=0)
    np.testing.assert_allclose(mean, dphi_db, atol=1e-12)
    bup = sf.sign_upward_field(_t(w), _t(v)).numpy()
    assert np.all(np.isfinite(bup))  # no atanh(+-1) even where the mean rounds to +-1
    inner = np.abs(w) < 8
    np.testing.assert_allclose(np.tanh(bup[inner]), mean[inner], atol=1e-12)


@pytest.mark.parametrize("y", [1.0, -1.0])
def test_binary_output_is_the_infinite_field_limit(y):
    w = np.linspace(-25, 25, 101)
    v = np.full_like(w, 3.0)
    g = sf.sign_channel(_t(np.full_like(w, y * np.inf)), _t(w), _t(v)).numpy()

    def phi_out(w_, v_):
        return sf.log_h(-y * w_ / tf.sqrt(v_))

    d1, d2 = _grad_and_hessian_diag(phi_out, w, v, wrt=0)
    np.testing.assert_allclose(g, d1, rtol=1e-9, atol=1e-14)
    gamma = sf.sign_gamma(_t(g), _t(w), _t(v)).numpy()
    np.testing.assert_allclose(gamma, -d2, rtol=1e-6, atol=1e-12)
    # float32 stays finite at extreme arguments
    g32 = sf.sign_channel(tf.constant(np.full_like(w, y * np.inf), tf.float32),
                          tf.constant(w * 10, tf.float32), tf.constant(v * 0 + 1e-8, tf.float32))
    assert np.all(np.isfinite(g32.numpy()))


def test_argmax_g_is_gradient_of_pairwise_log_partition():
    rng = np.random.default_rng(3)
    omega = rng.normal(0, 3, (7, 10))
    var = rng.uniform(0.1, 5, (7, 10))
    labels = tf.constant(rng.integers(0, 10, 7), tf.int32)
    w = _t(omega)
    with tf.GradientTape() as tape:
        tape.watch(w)
        phi = tf.reduce_sum(sf.argmax_log_partition(w, _t(var), labels))
    np.testing.assert_allclose(
        sf.argmax_channel(w, _t(var), labels).numpy(), tape.gradient(phi, w).numpy(), rtol=1e-9, atol=1e-12
    )


# --- configuration -----------------------------------------------------------------------------


def test_yaml_defaults_equal_dataclass_defaults():
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    assert load_config("amp") == BinaryMPConfig(method="amp")
    assert set(data) <= {f for f in BinaryMPConfig.__dataclass_fields__}
    cfg = load_config("mf", epochs=3, hidden=[31], psi=None)
    assert cfg.epochs == 3 and cfg.hidden == (31,) and cfg.psi == 0.8


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "sgd"},
        {"method": "bp", "task": "3class"},
        {"method": "bp", "psi": 1.0},
        {"method": "bp", "rho": (1.0, -0.1, 0.9)},
        {"method": "bp", "rho": ()},
        {"method": "bp", "batch_size": 0},
        {"method": "bp", "maxiters": 1.5},
        {"method": "bp", "hidden": (10, 0)},
        {"method": "bp", "init_std": -1.0},
    ],
)
def test_invalid_configs_raise_pipeline_error(kwargs):
    with pytest.raises(PipelineError):
        BinaryMPConfig(**kwargs)


def test_unknown_yaml_option_raises(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("hidden: [5]\nlearning_rate: 3\n")
    with pytest.raises(PipelineError, match="learning_rate"):
        load_config("bp", path=bad)


def test_per_layer_values_broadcast():
    assert BinaryMPConfig(method="mf").per_layer("rho") == (1.0001, 1.0001, 0.9)
    assert BinaryMPConfig(method="mf", hidden=(5, 5, 5)).per_layer("rho") == (1.0001,) * 3 + (0.9,)
    assert BinaryMPConfig(method="mf", hidden=(5,)).per_layer("rho") == (1.0001, 0.9)
    assert BinaryMPConfig(method="mf", hidden=()).per_layer("rho") == (0.9,)
    assert BinaryMPConfig(method="mf", hidden=(5,)).per_layer("psi") == (0.8, 0.8)
    assert BinaryMPConfig(method="mf", hidden=(5, 5), rho=[1.0]).per_layer("rho") == (1.0,) * 3


# --- message passing on tiny networks ----------------------------------------------------------


def _exact_marginals(x, y, hext):
    """Posterior mean of +-1 weights: prior exp(hext . w), likelihood prod_a 1[y_a = sign(w . x_a)]."""
    w = np.array(list(itertools.product([-1.0, 1.0], repeat=x.shape[1])))
    allowed = np.all(np.sign(w @ x.T) == y[None, :], axis=1)
    logp = w @ hext
    p = np.exp(logp - logp.max()) * allowed
    return p @ w / p.sum()


@pytest.mark.parametrize("n_examples, seeds, tol", [(1, (100, 101, 102), 0.02), (2, (200, 201, 202), 0.04)])
def test_bp_and_amp_magnetisations_match_exact_enumeration(n_examples, seeds, tol):
    """12-weight perceptron, full-batch BP/AMP run to convergence vs enumeration of 4096 states.

    Tolerance on the mean |m - m_exact|: with one example the factor graph is a tree and the only
    approximation left is the Gaussian (central-limit) cavity field of the other 11 weights,
    an O(1/N) effect (observed <= 0.011); with two examples loops add error (observed <= 0.03).
    MF, which drops the reaction terms, is several times worse; a trivial answer (the prior
    tanh(Hext)) is off by 0.13-0.23.
    """
    n = 12
    for seed in seeds:
        rng = np.random.default_rng(seed)
        teacher = np.sign(rng.standard_normal(n))
        x = rng.standard_normal((n_examples, n))
        y = np.sign(x @ teacher)
        hext = 0.3 * rng.standard_normal(n)
        exact = _exact_marginals(x, y, hext)
        errors = {}
        for method in ("bp", "amp", "mf"):
            cfg = BinaryMPConfig(
                method=method, hidden=(), task="2class", batch_size=n_examples, maxiters=200,
                psi=0.5, rho=0.0, seed=seed, jit_compile=False,
            )
            net = BinaryMPNet(cfg, n)
            net.hext[0].assign(hext[None].astype(np.float32))
            net.update(x.astype(np.float32), y.astype(np.float32), prior_from_posterior=False)
            errors[method] = float(np.mean(np.abs(net.m[0].numpy()[0] - exact)))
        prior_error = float(np.mean(np.abs(np.tanh(hext) - exact)))
        assert errors["bp"] < tol and errors["amp"] < tol, (seed, errors)
        assert errors["mf"] > 2 * max(errors["bp"], errors["amp"]), (seed, errors)
        assert max(errors["bp"], errors["amp"]) < 0.25 * prior_error, (seed, errors, prior_error)


@pytest.mark.parametrize("method", ["bp", "amp"])
def test_teacher_student_perceptron_reaches_zero_training_error(method):
    rng = np.random.default_rng(0)
    n, p = 101, 202  # alpha = 2, where BP-based algorithms recover a binary teacher
    teacher = np.sign(rng.standard_normal(n))
    x = np.sign(rng.standard_normal((p, n))).astype(np.float32)
    y = np.sign(x @ teacher).astype(np.float32)
    xt = np.sign(rng.standard_normal((500, n))).astype(np.float32)
    yt = np.sign(xt @ teacher).astype(np.float32)
    cfg = BinaryMPConfig(
        method=method, hidden=(), task="2class", batch_size=20, epochs=5, rho=1.0, psi=0.5,
        seed=0, jit_compile=False,
    )
    net, history = fit_arrays(cfg, x, y, xt, yt)
    assert history[-1]["train_accuracy"] == 1.0
    assert np.mean(np.sign(net.m[0].numpy()[0]) == teacher) > 0.95


@pytest.mark.parametrize("task", ["10class", "2class"])
def test_bp_with_one_iteration_equals_bpi(task):
    """Full cavity BP (maxiters = 1) and the BPI update give the same fields after several batches."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 16, 20)).astype(np.float32)
    if task == "10class":
        y = rng.integers(0, 10, (4, 16)).astype(np.int32)
    else:
        y = np.sign(rng.standard_normal((4, 16))).astype(np.float32)
    nets = []
    for method, full in (("bp", True), ("bpi", False)):
        cfg = BinaryMPConfig(method=method, hidden=(9, 7), task=task, batch_size=16, seed=2, jit_compile=False)
        net = BinaryMPNet(cfg, 20, bp_full_cavities=full)
        for xb, yb in zip(x, y):
            net.update(xb, yb)
        nets.append(net)
    assert nets[0].kind == "bp" and nets[1].kind == "bpi"
    assert BinaryMPNet(BinaryMPConfig(method="bp", hidden=(3,)), 5).kind == "bpi"  # fast path
    for a, b in zip(nets[0].h, nets[1].h):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(nets[0].m, nets[1].m):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


@pytest.mark.parametrize("batch, jit", [(13, True), (24, True), (24, False)])
def test_blocked_bpi_cavity_loop_equals_the_whole_tensor(batch, jit):
    """BPI's (M, K, N) cavity reduced in blocks of examples gives the same B and Hin as at once."""
    rng = np.random.default_rng(batch)
    k, n = 7, 11
    m = tf.constant(np.tanh(rng.standard_normal((k, n))), tf.float32)
    xh = tf.constant(rng.uniform(-1, 1, (batch, n)), tf.float32)
    btop = tf.constant(3 * rng.standard_normal((batch, k)), tf.float32)
    omega = tf.matmul(xh, m, transpose_b=True)
    var = tf.matmul(tf.square(xh), 1 - tf.square(m), transpose_b=True) + 0.1
    run = tf.function(lambda chunk: layers_mod.bpi_backward(m, xh, omega, var, btop, True, chunk),
                      jit_compile=jit)
    b_all, h_all = (t.numpy() for t in run(None))
    b_blk, h_blk = (t.numpy() for t in run(8))  # blocks of 1 (batch 13) or 8 (batch 24)
    np.testing.assert_allclose(b_blk, b_all, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_blk, h_all, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["bp", "amp", "mf"])
def test_multi_iteration_updates_stay_finite_and_change_weights(method):
    rng = np.random.default_rng(1)
    cfg = BinaryMPConfig(method=method, hidden=(6,), task="10class", batch_size=8, maxiters=4, jit_compile=False)
    net = BinaryMPNet(cfg, 12)
    before = [m.numpy().copy() for m in net.m]
    net.update(rng.standard_normal((8, 12)).astype(np.float32), rng.integers(0, 10, 8).astype(np.int32))
    for m0, m1 in zip(before, net.m):
        assert np.all(np.isfinite(m1.numpy())) and np.all(np.abs(m1.numpy()) <= 1)
        assert not np.allclose(m0, m1.numpy())


# --- end to end on MNIST -----------------------------------------------------------------------


def test_train_binary_mp_on_an_mnist_subset():
    path = DATA / "mnist" / "mnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with np.load(path) as d:
        x_train, y_train = d["x_train"][:3000], d["y_train"][:3000]
        x_test, y_test = d["x_test"][:1000], d["y_test"][:1000]
    calls = []
    cfg = BinaryMPConfig(method="amp", hidden=(101,), batch_size=100, epochs=2, seed=1)
    result = train_binary_mp(cfg, x_train, y_train, x_test, y_test, lambda *a: calls.append(a))
    assert [(c[0], c[1]) for c in calls] == [(0, 3000), (1, 6000)]
    keys = {"test_accuracy", "test_accuracy_bayes", "train_accuracy", "seconds_per_epoch",
            "cpu_seconds_per_epoch"}
    assert set(calls[-1][2]) == keys and result.metrics == calls[-1][2]
    assert result.metrics["test_accuracy"] > 0.75 and result.metrics["test_accuracy_bayes"] > 0.75
    assert [f.shape for f in result.fields] == [(101, 784), (10, 101)]
    assert all(np.all(np.abs(m) <= 1) for m in result.magnetizations)
    two = train_binary_mp(
        BinaryMPConfig(method="mf", hidden=(51,), task="2class", batch_size=100, seed=1),
        x_train, y_train, x_test, y_test,
    )
    assert two.fields[-1].shape == (1, 51) and two.metrics["test_accuracy"] > 0.7


def test_train_binary_mp_rejects_bad_inputs():
    cfg = BinaryMPConfig(method="mf", hidden=(3,), batch_size=4)
    x = np.zeros((3, 28, 28), np.uint8)
    with pytest.raises(PipelineError, match="fewer than one minibatch"):
        train_binary_mp(cfg, x, np.arange(3), x, np.arange(3))
    with pytest.raises(PipelineError, match="labels"):
        train_binary_mp(cfg, x, np.array([0, 1, 12]), x, np.arange(3))
    with pytest.raises(PipelineError):
        train_binary_mp(cfg, x, np.arange(2), x, np.arange(3))
