"""Classifier factors against exact dense Gaussian algebra (numpy) and TensorFlow autodiff.

Every factor's messages are checked by building, for each factor, the joint Gaussian of its
variables — factor (j jᵀ, j r) times the incoming messages — inverting it directly and dividing
the incoming message out of each marginal; parameter messages are then summed over factors.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pipeline.gbp.factors.dense import DenseFactor
from pipeline.gbp.factors.activations import leaky_relu
from pipeline.gbp.factors.feedforward_conv import FeedforwardConvFactor, extract_patches
from pipeline.gbp.factors.max_pool import MaxPoolFactor, from_windows, to_windows
from pipeline.gbp.factors.softmax_class_observation import SoftmaxClassObservation
from pipeline.gbp.filtering import carry_posterior
from pipeline.gbp.gaussian import Gaussian

RNG = np.random.default_rng(7)


def exact_rank1_messages(j, r, nu, lam):
    """Messages of one linearised factor (Λ_f = j jᵀ, η_f = j r) by a direct matrix inverse."""
    joint = np.outer(j, j) + np.diag(lam)
    cov = np.linalg.inv(joint)
    mean = cov @ (j * r + nu)
    marg_lam = 1.0 / np.diag(cov)
    return mean * marg_lam - nu, marg_lam - lam


def gaussian(shape, mean_scale=1.0, lam_low=0.5, lam_high=5.0):
    lam = RNG.uniform(lam_low, lam_high, shape)
    return Gaussian(tf.constant(RNG.normal(0, mean_scale, shape) * lam), tf.constant(lam))


# ------------------------------------------------------------------------------ feedforward conv
def conv_problem():
    images = tf.constant(RNG.uniform(0, 1, (2, 4, 4, 1)))
    patches = extract_patches(images, 2)  # (2, 3, 3, 4)
    w = gaussian((4, 3), 0.5, 20.0, 60.0)
    b = gaussian((3,), 0.5, 20.0, 60.0)
    z = gaussian((2, 3, 3, 3), 1.0, 0.5, 3.0)
    w_lin = tf.constant(RNG.normal(0, 0.5, (4, 3)))
    b_lin = tf.constant(RNG.normal(0, 0.2, (3,)))
    return images, patches, w, b, z, w_lin, b_lin


def test_conv_messages_match_exact_solve():
    _, patches, w, b, z, w_lin, b_lin = conv_problem()
    factor = FeedforwardConvFactor(sigma=0.5, slope=0.2, series_terms=6)
    msg = factor.messages(patches, w, b, z, w_lin, b_lin)
    j_w, j_b, j_z, r = (t.numpy() for t in factor.jacobian(patches, w_lin, b_lin))
    sum_w = np.zeros((2, 4, 3)), np.zeros((2,))
    eta_w, lam_w = np.zeros((4, 3)), np.zeros((4, 3))
    eta_b, lam_b = np.zeros(3), np.zeros(3)
    for n, i, k, f in np.ndindex(2, 3, 3, 3):
        j = np.concatenate([j_w[n, i, k, f], [j_b[n, i, k, f], j_z[n, i, k, f]]])
        nu = np.concatenate([w.eta.numpy()[:, f], [b.eta.numpy()[f], z.eta.numpy()[n, i, k, f]]])
        lam = np.concatenate([w.lam.numpy()[:, f], [b.lam.numpy()[f], z.lam.numpy()[n, i, k, f]]])
        e, l = exact_rank1_messages(j, r[n, i, k, f], nu, lam)
        eta_w[:, f] += e[:4]
        lam_w[:, f] += l[:4]
        eta_b[f] += e[4]
        lam_b[f] += l[4]
        np.testing.assert_allclose(msg.z.eta.numpy()[n, i, k, f], e[5], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(msg.z.lam.numpy()[n, i, k, f], l[5], rtol=1e-6)
    del sum_w
    np.testing.assert_allclose(msg.weights.lam.numpy(), lam_w, rtol=1e-6)
    np.testing.assert_allclose(msg.weights.eta.numpy(), eta_w, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(msg.bias.lam.numpy(), lam_b, rtol=1e-6)
    np.testing.assert_allclose(msg.bias.eta.numpy(), eta_b, rtol=1e-6, atol=1e-8)


def test_conv_truncated_series_never_overstates_precision():
    _, patches, w, b, z, w_lin, b_lin = conv_problem()
    exact = FeedforwardConvFactor(0.5, 0.2, 6).messages(patches, w, b, z, w_lin, b_lin).weights.lam.numpy()
    short = FeedforwardConvFactor(0.5, 0.2, 1).messages(patches, w, b, z, w_lin, b_lin).weights.lam.numpy()
    assert np.all(short <= exact + 1e-12) and np.all(short > 0.5 * exact)


def test_conv_jacobian_matches_autodiff_and_test_message_is_forward_pass():
    images, patches, _, _, _, w_lin, b_lin = conv_problem()
    factor = FeedforwardConvFactor(sigma=0.5, slope=0.2)
    z0 = tf.constant(RNG.normal(0, 1, (2, 3, 3, 3)))
    w_var, b_var, z_var = tf.Variable(w_lin), tf.Variable(b_lin), tf.Variable(z0)
    with tf.GradientTape(persistent=True) as tape:
        kernel = tf.reshape(w_var, (2, 2, 1, 3))
        a = tf.nn.conv2d(images, kernel, 1, "VALID") + b_var
        h = leaky_relu(a, 0.2) - z_var
        total = tf.reduce_sum(h)
    j_w, j_b, j_z, r = factor.jacobian(patches, w_lin, b_lin)
    # Σ over factors of ∂h/∂W equals the autodiff gradient of Σ h
    np.testing.assert_allclose(tf.reduce_sum(j_w, [0, 1, 2]).numpy().T * 0.5, tape.gradient(total, w_var).numpy(), rtol=1e-9)
    np.testing.assert_allclose(tf.reduce_sum(j_b, [0, 1, 2]).numpy() * 0.5, tape.gradient(total, b_var).numpy(), rtol=1e-9)
    np.testing.assert_allclose(j_z.numpy() * 0.5, tape.gradient(total, z_var).numpy())
    # per-factor Jacobian row: jacobian of one output element
    with tf.GradientTape() as tape2:
        a = tf.nn.conv2d(images, tf.reshape(w_var, (2, 2, 1, 3)), 1, "VALID") + b_var
        one = leaky_relu(a, 0.2)[1, 2, 0, 1]
    np.testing.assert_allclose(tape2.gradient(one, w_var).numpy()[:, 1], j_w.numpy()[1, 2, 0, 1] * 0.5, rtol=1e-9)
    np.testing.assert_allclose(r.numpy(), 0.0, atol=1e-12)  # leaky ReLU is linear through 0
    msg = factor.fixed_parameter_message(patches, w_lin, b_lin)
    np.testing.assert_allclose(msg.mean.numpy(), leaky_relu(tf.nn.conv2d(images, tf.reshape(w_lin, (2, 2, 1, 3)), 1, "VALID") + b_lin, 0.2).numpy())


# ------------------------------------------------------------------------------ max-pool
def test_pool_windows_roundtrip_and_forward():
    x = tf.constant(RNG.normal(size=(2, 4, 6, 3)))
    np.testing.assert_array_equal(from_windows(to_windows(x)).numpy(), x.numpy())
    np.testing.assert_allclose(MaxPoolFactor(0.1).forward(to_windows(x)).numpy(),
                               tf.nn.max_pool2d(x, 2, 2, "VALID").numpy())


def test_pool_messages_match_exact_solve_and_autodiff_jacobian():
    factor = MaxPoolFactor(sigma=0.3)
    z = gaussian((1, 4, 4, 2))
    p = gaussian((1, 2, 2, 2))
    z_lin = tf.constant(RNG.normal(size=(1, 4, 4, 2)))
    zw = Gaussian(to_windows(z.eta), to_windows(z.lam))
    msg = factor.messages(zw, p, to_windows(z_lin))
    j_z, j_p, r = factor.jacobian(to_windows(z_lin))
    zw_eta, zw_lam = zw.eta.numpy(), zw.lam.numpy()
    out_eta, out_lam = msg.z.eta.numpy(), msg.z.lam.numpy()
    zv = tf.Variable(z_lin)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tf.nn.max_pool2d(zv, 2, 2, "VALID"))
    np.testing.assert_allclose(to_windows(tape.gradient(total, zv)).numpy() / 0.3, j_z.numpy())
    for b, i, k, c in np.ndindex(1, 2, 2, 2):
        idx, win = (b, i, k, c), (b, i, k, slice(None), c)
        j = np.concatenate([j_z.numpy()[win], [j_p.numpy()[idx]]])
        nu = np.concatenate([zw_eta[win], [p.eta.numpy()[idx]]])
        lam = np.concatenate([zw_lam[win], [p.lam.numpy()[idx]]])
        e, l = exact_rank1_messages(j, 0.0, nu, lam)
        np.testing.assert_allclose(out_eta[win], e[:4], rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(out_lam[win], l[:4], rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(msg.p.eta.numpy()[idx], e[4], rtol=1e-7)
        np.testing.assert_allclose(msg.p.lam.numpy()[idx], l[4], rtol=1e-7)


# ------------------------------------------------------------------------------ dense
def dense_problem():
    x = gaussian((3, 5), 1.0, 1.0, 4.0)
    y = gaussian((3, 2), 1.0, 0.3, 2.0)
    w = gaussian((5, 2), 0.5, 5.0, 20.0)
    b = gaussian((2,), 0.5, 5.0, 20.0)
    x_lin = tf.constant(RNG.normal(size=(3, 5)))
    w_lin = tf.constant(RNG.normal(0, 0.5, (5, 2)))
    return x, y, w, b, x_lin, w_lin


@pytest.mark.parametrize("learn", [True, False])
def test_dense_messages_match_exact_solve(learn):
    x, y, w, b, x_lin, w_lin = dense_problem()
    factor = DenseFactor(sigma=0.7, series_terms=80)
    if learn:
        msg = factor.messages(x, y, x_lin, w_lin, w, b)
    else:
        msg = factor.messages(x, y, x_lin, w_lin, fixed_bias=b.mean)
    sig = 0.7
    X = {k: v.numpy() for k, v in dict(xe=x.eta, xl=x.lam, ye=y.eta, yl=y.lam, we=w.eta, wl=w.lam, be=b.eta, bl=b.lam).items()}
    xl, wl, bmean = x_lin.numpy(), w_lin.numpy(), b.mean.numpy()
    acc = {k: np.zeros(s) for k, s in dict(xe=(3, 5), xl=(3, 5), we=(5, 2), wl=(5, 2), be=2, bl=2).items()}
    for n, o in np.ndindex(3, 2):
        if learn:  # variables [x_n, w_o, b_o, y_no]
            j = np.concatenate([-wl[:, o], -xl[n], [-1.0, 1.0]]) / sig
            r = -(xl[n] @ wl[:, o]) / sig
            nu = np.concatenate([X["xe"][n], X["we"][:, o], [X["be"][o], X["ye"][n, o]]])
            lam = np.concatenate([X["xl"][n], X["wl"][:, o], [X["bl"][o], X["yl"][n, o]]])
        else:  # variables [x_n, y_no], weights and bias constants
            j = np.concatenate([-wl[:, o], [1.0]]) / sig
            r = bmean[o] / sig
            nu = np.concatenate([X["xe"][n], [X["ye"][n, o]]])
            lam = np.concatenate([X["xl"][n], [X["yl"][n, o]]])
        e, l = exact_rank1_messages(j, r, nu, lam)
        acc["xe"][n] += e[:5]
        acc["xl"][n] += l[:5]
        np.testing.assert_allclose(msg.y.eta.numpy()[n, o], e[-1], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(msg.y.lam.numpy()[n, o], l[-1], rtol=1e-6)
        if learn:
            acc["we"][:, o] += e[5:10]
            acc["wl"][:, o] += l[5:10]
            acc["be"][o] += e[10]
            acc["bl"][o] += l[10]
    np.testing.assert_allclose(msg.x.lam.numpy(), acc["xl"], rtol=1e-6)
    np.testing.assert_allclose(msg.x.eta.numpy(), acc["xe"], rtol=1e-6, atol=1e-8)
    if learn:
        np.testing.assert_allclose(msg.weights.lam.numpy(), acc["wl"], rtol=1e-6)
        np.testing.assert_allclose(msg.weights.eta.numpy(), acc["we"], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(msg.bias.lam.numpy(), acc["bl"], rtol=1e-6)
        np.testing.assert_allclose(msg.bias.eta.numpy(), acc["be"], rtol=1e-6, atol=1e-8)


def test_dense_jacobian_matches_autodiff():
    _, _, _, _, x_lin, w_lin = dense_problem()
    factor = DenseFactor(sigma=0.5)
    j_x, j_w, j_b, j_y, r = factor.jacobian(x_lin, w_lin)
    xv, wv, bv = tf.Variable(x_lin), tf.Variable(w_lin), tf.Variable(tf.zeros(2, tf.float64))
    yv = tf.Variable(tf.zeros((3, 2), tf.float64))
    with tf.GradientTape(persistent=True) as tape:
        h = yv - (tf.matmul(xv, wv) + bv)
        one = h[1, 0]
    np.testing.assert_allclose(tape.gradient(one, xv).numpy()[1] / 0.5, j_x.numpy()[1, 0])
    np.testing.assert_allclose(tape.gradient(one, wv).numpy()[:, 0] / 0.5, j_w.numpy()[1, 0])
    np.testing.assert_allclose(tape.gradient(one, bv).numpy()[0] / 0.5, j_b.numpy()[1, 0])
    np.testing.assert_allclose(tape.gradient(one, yv).numpy()[1, 0] / 0.5, j_y.numpy()[1, 0])
    # r = (Jᵀv₀ − h(v₀))/σ at v₀ = (x̄, w̄, b=0, y=0)
    jt_v0 = -(w_lin.numpy()[:, 0] @ x_lin.numpy()[1]) * 2
    np.testing.assert_allclose(r.numpy()[1, 0] * 0.5, jt_v0 - (-(x_lin.numpy()[1] @ w_lin.numpy()[:, 0])))


# ------------------------------------------------------------------------------ softmax
def test_softmax_linearisation_matches_autodiff():
    factor = SoftmaxClassObservation(sigma=0.2)
    f0 = tf.constant(RNG.normal(size=(4, 10)))
    onehot = tf.one_hot([1, 3, 5, 9], 10, dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(f0)
        s = tf.nn.softmax(f0)
    jac = tape.batch_jacobian(s, f0).numpy()
    eta_f, lam_f = factor.linearise(f0, onehot)
    s0 = s.numpy()
    for n in range(4):
        np.testing.assert_allclose(lam_f.numpy()[n], jac[n].T @ jac[n] / 0.04, rtol=1e-9, atol=1e-12)
        resid = onehot.numpy()[n] - s0[n] + jac[n] @ f0.numpy()[n]
        np.testing.assert_allclose(eta_f.numpy()[n], jac[n].T @ resid / 0.04, rtol=1e-9, atol=1e-12)


def test_softmax_messages_match_direct_inverse_and_schur_complement():
    factor = SoftmaxClassObservation(sigma=0.3)
    f0 = tf.constant(RNG.normal(size=(3, 10)))
    onehot = tf.one_hot([0, 4, 7], 10, dtype=tf.float64)
    cav = gaussian((3, 10), 1.0, 0.25, 3.0)
    msg = factor.messages(cav, f0, onehot)
    eta_f, lam_f = (t.numpy() for t in factor.linearise(f0, onehot))
    for n in range(3):
        lam, nu = cav.lam.numpy()[n], cav.eta.numpy()[n]
        cov = np.linalg.inv(lam_f[n] + np.diag(lam))
        mean = cov @ (eta_f[n] + nu)
        np.testing.assert_allclose(msg.lam.numpy()[n], 1 / np.diag(cov) - lam, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(msg.eta.numpy()[n], mean / np.diag(cov) - nu, rtol=1e-6, atol=1e-8)
        for i in range(10):  # Schur complement: factor info on i after marginalising the rest
            rest = [k for k in range(10) if k != i]
            a_rr = lam_f[n][np.ix_(rest, rest)] + np.diag(lam[rest])
            a_ir = lam_f[n][i, rest]
            lam_i = lam_f[n][i, i] - a_ir @ np.linalg.solve(a_rr, a_ir)
            eta_i = eta_f[n][i] - a_ir @ np.linalg.solve(a_rr, eta_f[n][rest] + nu[rest])
            np.testing.assert_allclose(msg.lam.numpy()[n, i], lam_i, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(msg.eta.numpy()[n, i], eta_i, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------ filtering
def test_carry_posterior_algebra():
    post = {"w": Gaussian.from_mean_std(tf.constant([1.0, -2.0], tf.float64), tf.constant([0.5, 0.1], tf.float64))}
    prior = {"w": Gaussian.from_mean_std(tf.constant([0.0, 0.0], tf.float64), 2.0)}
    same = carry_posterior(post, prior, None)["w"]
    np.testing.assert_allclose(same.eta.numpy(), post["w"].eta.numpy())
    np.testing.assert_allclose(same.lam.numpy(), post["w"].lam.numpy())
    half = carry_posterior(post, prior, 0.5)["w"]
    np.testing.assert_allclose(half.mean.numpy(), [0.5, -1.0])
    np.testing.assert_allclose(half.std.numpy(), [1.25, 1.05])
    with pytest.raises(ValueError):
        carry_posterior(post, prior, 1.5)
    with pytest.raises(ValueError):
        carry_posterior(post, {"v": prior["w"]}, None)


def test_conv_leave_one_out_matters_in_the_test_problem():
    """Guards the exact-solve test above: dropping the series (M = 1) must change the weight
    messages visibly, so that test really checks the leave-one-out terms."""
    _, patches, w, b, z, w_lin, b_lin = conv_problem()
    six = FeedforwardConvFactor(0.5, 0.2, 6).messages(patches, w, b, z, w_lin, b_lin).weights
    one = FeedforwardConvFactor(0.5, 0.2, 1).messages(patches, w, b, z, w_lin, b_lin).weights
    assert np.max(np.abs(one.lam.numpy() / six.lam.numpy() - 1)) > 1e-3
    assert np.max(np.abs(one.eta.numpy() - six.eta.numpy())) > 1e-3 * np.max(np.abs(six.eta.numpy()))


def test_summed_parameter_messages_equal_per_factor_reference_on_first_iteration():
    """One iteration without dropout: in the first (raw) visit every cavity equals the marginal,
    in the second (damped) visit the fast model's cavities include the factor's own message, so
    the fast model's summed parameter messages must equal the per-factor reference (exact
    cavities, generic rank-1 messages in float64) up to that O(1/N) difference and the series."""
    from pipeline.gbp.models.classifier import ClassifierConfig, GBPClassifier
    from pipeline.gbp.models.classifier_exact import PerFactorMessagesClassifier

    config = ClassifierConfig(dtype="float64", jit="none", series_terms=6, seed=3, dropout=0.0)
    images = RNG.uniform(0, 1, (2, 28, 28, 1)) * (RNG.uniform(size=(2, 28, 28, 1)) > 0.6)
    onehot = np.eye(10)[[3, 7]]
    posts = []
    for cls in (GBPClassifier, PerFactorMessagesClassifier):
        model = cls(config, (28, 28, 1))
        post, _ = model.train_batch(images, onehot, model.initial_prior(), 1, 0)
        posts.append(post)
    fast, exact = posts
    for key in ("conv_weights", "conv_bias", "dense_weights", "dense_bias"):
        np.testing.assert_allclose(fast[key].lam.numpy(), exact[key].lam.numpy(), rtol=1e-4, err_msg=key)
        np.testing.assert_allclose(fast[key].eta.numpy(), exact[key].eta.numpy(), rtol=5e-3,
                                   atol=1e-3 * np.abs(exact[key].eta.numpy()).max(), err_msg=key)
    # the first iteration moved the parameters: the comparison is not between two priors
    prior = GBPClassifier(config, (28, 28, 1)).initial_prior()
    assert np.abs(fast["dense_weights"].eta.numpy() - prior["dense_weights"].eta.numpy()).max() > 1e-3
