"""Evaluate: image quality of an estimate against the clean frame (tf.image PSNR and SSIM).

PSNR = 10·log10(1 / MSE) in dB over the whole frame (all pixels and channels), with the estimate
clipped to [0, 1]; SSIM is tf.image's (11×11 Gaussian window, σ 1.5), averaged over channels; a
frame narrower than 11 pixels uses a window as wide as the frame.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def image_quality(estimate: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """``{"psnr": dB, "ssim": [−1, 1]}`` of ``estimate`` (H,W,C, clipped to [0,1]) vs ``clean``."""
    est = tf.clip_by_value(tf.convert_to_tensor(estimate, tf.float32), 0.0, 1.0)
    ref = tf.convert_to_tensor(clean, tf.float32)
    window = min(11, *ref.shape[:2])
    return {
        "psnr": float(tf.image.psnr(est, ref, max_val=1.0)),
        "ssim": float(tf.image.ssim(est, ref, max_val=1.0, filter_size=window)),
    }
