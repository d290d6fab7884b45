"""The structured image smoother against the exact solve of the same (non-robust) graph."""
import numpy as np
import tensorflow as tf

from pipeline.gbp.model import Denoiser
from pipeline.gbp.models.pairwise_smoother import PairwiseSmoother, PairwiseSmootherConfig
from pipeline.gbp.factors.pairwise_smoothness import NEIGHBOUR_OFFSETS


def exact_pairwise(y, pixel_sigma, smooth_sigma):
    """Dense solve with the paper's counting: 4 factors per VALID 3×3 window centre."""
    h, w, c = y.shape
    idx = np.arange(h * w * c).reshape(h, w, c)
    lam = np.eye(h * w * c) / pixel_sigma**2
    eta = y.reshape(-1) / pixel_sigma**2
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            for dy, dx in NEIGHBOUR_OFFSETS:
                for ch in range(c):
                    a, b = idx[i, j, ch], idx[i + dy, j + dx, ch]
                    lam[a, a] += 1 / smooth_sigma**2
                    lam[b, b] += 1 / smooth_sigma**2
                    lam[a, b] -= 1 / smooth_sigma**2
                    lam[b, a] -= 1 / smooth_sigma**2
    return np.linalg.solve(lam, eta).reshape(h, w, c)


def test_non_robust_smoother_converges_to_exact_means():
    rng = np.random.default_rng(0)
    y = rng.uniform(size=(7, 9, 2)).astype(np.float32)
    config = PairwiseSmootherConfig(pixel_sigma=0.3, pixel_n_rob=None, smoothness_sigma=0.4,
                                    smoothness_n_rob=None, damping=0.3)
    result = Denoiser(PairwiseSmoother(config)).denoise(tf.constant(y[None]), 400)
    np.testing.assert_allclose(result.mean.numpy()[0], exact_pairwise(y, 0.3, 0.4), atol=2e-5)


def test_xla_and_plain_loops_agree():
    """Same messages and dropout masks with and without XLA (non-robust: no threshold flips)."""
    rng = np.random.default_rng(1)
    y = rng.uniform(size=(1, 12, 10, 3)).astype(np.float32)
    config = PairwiseSmootherConfig(dropout=0.3, seed=5, pixel_n_rob=None, smoothness_n_rob=None)
    plain = Denoiser(PairwiseSmoother(config), jit=False).denoise(tf.constant(y), 50)
    xla = Denoiser(PairwiseSmoother(config), jit=True).denoise(tf.constant(y), 50)
    np.testing.assert_allclose(plain.mean.numpy(), xla.mean.numpy(), atol=1e-4)


def test_robust_observation_rejects_an_impulse():
    """A flat image with one corrupted pixel: the robust model restores it, the plain one cannot."""
    y = np.full((1, 9, 9, 1), 0.5, np.float32)
    y[0, 4, 4, 0] = 1.0
    robust = Denoiser(PairwiseSmoother(PairwiseSmootherConfig())).denoise(tf.constant(y), 200)
    plain = Denoiser(PairwiseSmoother(PairwiseSmootherConfig(pixel_n_rob=None, smoothness_n_rob=None))
                     ).denoise(tf.constant(y), 200)
    assert abs(robust.mean.numpy()[0, 4, 4, 0] - 0.5) < 0.02
    assert plain.mean.numpy()[0, 4, 4, 0] > 0.9
