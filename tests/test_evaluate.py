"""Evaluate: PSNR and SSIM of an estimate against the clean frame."""
import numpy as np
import pytest

from stages.evaluate import image_quality


def test_psnr_is_ten_log_of_inverse_mse_after_clipping():
    rng = np.random.default_rng(0)
    clean = rng.random((30, 40, 3)).astype(np.float32)
    estimate = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    estimate[0, 0] = [1.7, -0.4, 0.5]  # clipped to [0, 1] before scoring
    mse = np.mean((np.clip(estimate, 0, 1) - clean) ** 2)
    assert image_quality(estimate, clean)["psnr"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)


@pytest.mark.parametrize("shape", [(3, 3, 3), (5, 40, 1), (40, 60, 3)])
def test_ssim_scores_frames_of_any_size_down_to_3x3(shape):
    rng = np.random.default_rng(1)
    clean = rng.random(shape).astype(np.float32)
    assert image_quality(clean, clean)["ssim"] == pytest.approx(1.0, abs=1e-5)
    noisy = np.clip(clean + rng.normal(0, 0.2, shape), 0, 1).astype(np.float32)
    assert image_quality(noisy, clean)["ssim"] < 0.9
