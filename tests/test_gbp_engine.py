"""The engine's algebra against exact Gaussian solves (numpy.linalg)."""
import numpy as np
import pytest
import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.graph import LinearFactorFamily, LinearGaussianGraph
from pipeline.gbp.messages import damped_update, rank1_factor_to_variable
from pipeline.gbp.robust import robust_weight


def exact_solve(prior_mean, prior_std, families):
    """Dense posterior of a linear-Gaussian graph: Λ = Σ JJᵀ/σ² + prior, η = Σ J z/σ² + prior."""
    n = len(prior_mean)
    lam = np.diag(1.0 / np.asarray(prior_std) ** 2 * np.ones(n))
    eta = np.asarray(prior_mean) / np.asarray(prior_std) ** 2
    for fam in families:
        for idx, jac, z in zip(fam.index, fam.jacobian, fam.target):
            row = np.zeros(n)
            np.add.at(row, idx, jac)
            lam += np.outer(row, row) / fam.sigma**2
            eta += row * z / fam.sigma**2
    cov = np.linalg.inv(lam)
    return cov @ eta, np.diag(cov)


def random_tree(rng, n_vars=14, arities=(2, 3, 4)):
    """A factor tree: every new factor joins one existing variable to fresh ones."""
    by_arity = {a: ([], [], []) for a in arities}
    count = 1
    while count < n_vars:
        arity = int(rng.choice(arities))
        fresh = list(range(count, min(count + arity - 1, n_vars)))
        if len(fresh) != arity - 1:
            arity = len(fresh) + 1
            by_arity.setdefault(arity, ([], [], []))
        idx = [int(rng.integers(0, count))] + fresh
        count += len(fresh)
        index, jac, target = by_arity[arity]
        index.append(idx)
        jac.append(rng.normal(size=arity))
        target.append(rng.normal())
    return [LinearFactorFamily(np.array(i), np.array(j), np.array(t), sigma=float(rng.uniform(0.3, 2)))
            for i, j, t in by_arity.values() if i]


def grid(rows, cols, rng, sigma=0.7):
    """4-connected grid of pairwise difference factors with random targets (a loopy graph)."""
    ids = np.arange(rows * cols).reshape(rows, cols)
    pairs = [(ids[r, c], ids[r, c + 1]) for r in range(rows) for c in range(cols - 1)]
    pairs += [(ids[r, c], ids[r + 1, c]) for r in range(rows - 1) for c in range(cols)]
    index = np.array(pairs)
    return [LinearFactorFamily(index, np.tile([1.0, -1.0], (len(pairs), 1)),
                               rng.normal(scale=0.3, size=len(pairs)), sigma)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tree_means_and_variances_are_exact(seed):
    rng = np.random.default_rng(seed)
    families = random_tree(rng)
    n = max(int(f.index.max()) for f in families) + 1
    prior_mean, prior_std = rng.normal(size=n), rng.uniform(0.5, 3.0, size=n)
    mean, var = exact_solve(prior_mean, prior_std, families)
    marginal = LinearGaussianGraph(prior_mean, prior_std, families).solve(60)
    np.testing.assert_allclose(marginal.mean.numpy(), mean, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(marginal.variance.numpy(), var, rtol=1e-5)


def test_loopy_grid_converges_to_exact_means():
    rng = np.random.default_rng(3)
    families = grid(6, 7, rng)
    n = 42
    prior_mean, prior_std = rng.normal(size=n), np.full(n, 1.5)
    mean, var = exact_solve(prior_mean, prior_std, families)
    marginal = LinearGaussianGraph(prior_mean, prior_std, families).solve(300)
    np.testing.assert_allclose(marginal.mean.numpy(), mean, rtol=1e-6, atol=1e-8)
    # loopy GBP variances are not exact, but they are positive and overconfident
    assert np.all(marginal.variance.numpy() > 0) and np.all(marginal.variance.numpy() <= var * (1 + 1e-9))


@pytest.mark.parametrize("damping,dropout", [(0.5, 0.0), (0.0, 0.4), (0.7, 0.5)])
def test_damping_and_dropout_keep_the_fixed_point(damping, dropout):
    rng = np.random.default_rng(4)
    families = grid(5, 5, rng)
    prior_mean, prior_std = rng.normal(size=25), np.full(25, 2.0)
    mean, _ = exact_solve(prior_mean, prior_std, families)
    plain = LinearGaussianGraph(prior_mean, prior_std, families).solve(400)
    slowed = LinearGaussianGraph(prior_mean, prior_std, families, damping=damping,
                                 dropout=dropout, seed=7).solve(1500)
    np.testing.assert_allclose(slowed.mean.numpy(), mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(slowed.variance.numpy(), plain.variance.numpy(), rtol=1e-6)


def test_rank1_message_equals_schur_complement():
    """Closed form vs marginalising the dense factor-times-cavities Gaussian directly."""
    rng = np.random.default_rng(5)
    n = 6
    j, r = rng.normal(size=n), rng.normal()
    nu, lam = rng.normal(size=n), rng.uniform(0.2, 3.0, size=n)
    msg = rank1_factor_to_variable(tf.constant(j), tf.constant(r, tf.float64), Gaussian(tf.constant(nu), tf.constant(lam)))
    for i in range(n):
        rest = [k for k in range(n) if k != i]
        big_lam = np.outer(j, j)
        big_eta = j * r
        block = big_lam[np.ix_(rest, rest)] + np.diag(lam[rest])
        expect_lam = big_lam[i, i] - big_lam[i, rest] @ np.linalg.solve(block, big_lam[rest, i])
        expect_eta = big_eta[i] - big_lam[i, rest] @ np.linalg.solve(block, big_eta[rest] + nu[rest])
        np.testing.assert_allclose(msg.lam.numpy()[i], expect_lam, rtol=1e-10)
        np.testing.assert_allclose(msg.eta.numpy()[i], expect_eta, rtol=1e-10, atol=1e-12)


def test_tukey_weight_is_capped_ratio_beyond_threshold_and_one_inside():
    n_rob = 0.35
    m = np.array([0.0, 0.1, 0.3499, 0.3501, 0.7, 3.0, 40.0])
    k = robust_weight(tf.constant(m**2), n_rob, "tukey").numpy()
    expected = np.where(m > n_rob, (n_rob / np.maximum(m, 1e-3)) ** 2, 1.0)
    np.testing.assert_allclose(k, expected, rtol=1e-12)
    # the robust energy k·M² equals N_rob² beyond the threshold: the cap
    np.testing.assert_allclose((k * m**2)[m > n_rob], n_rob**2, rtol=1e-12)


def test_huber_weight_grows_energy_linearly():
    n_rob = 0.5
    m = np.array([0.2, 0.5, 1.0, 4.0])
    k = robust_weight(tf.constant(m**2), n_rob, "huber").numpy()
    expected = np.where(m > n_rob, 2 * n_rob / m - (n_rob / m) ** 2, 1.0)
    np.testing.assert_allclose(k, expected, rtol=1e-12)


def test_damped_update_first_write_is_raw_and_dropout_is_reproducible():
    old = Gaussian(tf.fill([1000], 1.0), tf.fill([1000], 2.0))
    new = Gaussian(tf.fill([1000], 3.0), tf.fill([1000], 4.0))
    seed = tf.constant([1, 2], tf.int64)
    raw = damped_update(old, new, 0.8, 0.5, seed, first=True)
    np.testing.assert_allclose(raw.eta.numpy(), 3.0)
    a = damped_update(old, new, 0.8, 0.5, seed)
    b = damped_update(old, new, 0.8, 0.5, seed)
    np.testing.assert_array_equal(a.eta.numpy(), b.eta.numpy())
    kept = a.eta.numpy() == 1.0
    assert 0.4 < kept.mean() < 0.6  # dropout skips about p of the updates
    np.testing.assert_allclose(a.eta.numpy()[~kept], 0.8 * 1.0 + 0.2 * 3.0)
    np.testing.assert_array_equal(kept, a.lam.numpy() == 2.0)  # η and Λ share the mask
