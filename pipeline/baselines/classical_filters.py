"""Classical (non-learned) denoisers used as baselines."""
from __future__ import annotations

import cv2
import numpy as np


def median_filter(frame: np.ndarray, kernel: int) -> np.ndarray:
    """OpenCV median filter per channel over a ``kernel``×``kernel`` window (borders replicated).

    ``frame`` is (H, W, C) float in [0, 1].  OpenCV filters float32 images for kernels 3 and 5;
    larger kernels run on the 8-bit quantised image.
    """
    if kernel in (3, 5):
        out = cv2.medianBlur(np.ascontiguousarray(frame, dtype=np.float32), kernel)
    else:
        quantised = np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)
        out = cv2.medianBlur(quantised, kernel).astype(np.float32) / 255.0
    return out.reshape(frame.shape)


def median_filter_batch(frames: np.ndarray, kernel: int) -> np.ndarray:
    """``median_filter`` of each frame of a (B, H, W, C) batch (video batches hold one frame)."""
    return np.stack([median_filter(frame, kernel) for frame in np.asarray(frames)])
