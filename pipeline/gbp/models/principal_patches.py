"""A data-driven first linearisation point for the transposed-convolution layer over the pixels.

That layer reconstructs the frame as x ≈ b + Σ_f W_f ⊛ z_f, a rank-F model of its k×k×C
patches.  For an image whose statistics do not depend on position, the least-squares best such
model is spanned by the top F principal components of the patches, so GBP can start there
instead of at random filters (which leave each frame's PSNR to the luck of the draw: ±0.15 dB
between initialisations on the paper's protocol).  From the noisy frame y (B, H, W, C):

    ỹ = median₃ₓ₃(y)                       (the median3 baseline's filter) so impulses stay out
    P_q = vec ỹ[q + (0…k−1, 0…k−1)] − m     the centred k×k×C patch with top-left pixel q (m: mean patch)
    Σ = mean_q P_q P_qᵀ,   u_1 … u_F its eigenvectors of largest eigenvalue (unit norm)
    W_f = s · flip(u_f)                     flipped in both spatial axes, because coefficient q
                                            adds W[dy, dx] to pixel q + (k−1−dy, k−1−dx)
    z_f[q] = u_f · P_q / (s k²)             each pixel lies in k² patches, each reconstructing it

so Σ_f W_f ⊛ z_f ≈ ỹ − m̄ (the frame minus its mean colour), and ‖W_f‖ = s, the filter norm
the caller chooses (the deep denoiser's ``init_filter_norm``, 0.15 in both video configs).
"""
from __future__ import annotations

import tensorflow as tf

from pipeline.baselines.classical_filters import median_filter_batch


def principal_patch_init(noisy: tf.Tensor, kernel: int, filters: int,
                         filter_norm: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Filters (k, k, C, F′) and coefficients (B, H−k+1, W−k+1, F′) from the principal components
    of the median-filtered frames' k×k patches (module docstring); ``filter_norm`` is s.  The
    patches have k²C dimensions, so F′ = min(F, k²C) components exist."""
    noisy = tf.convert_to_tensor(noisy, tf.float32)
    channels = noisy.shape[-1]
    smoothed = median_filter_batch(noisy.numpy(), 3)  # OpenCV
    patches = tf.image.extract_patches(smoothed, [1, kernel, kernel, 1], [1, 1, 1, 1],
                                       [1, 1, 1, 1], "VALID")  # (B, H', W', k·k·C), (dy, dx, c)-major
    flat = tf.reshape(patches, [-1, patches.shape[-1]])
    centred = flat - tf.reduce_mean(flat, axis=0)
    covariance = tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(centred)[0], tf.float32)
    _, vectors = tf.linalg.eigh(tf.cast(covariance, tf.float64))  # eigenvalues ascending
    top = tf.cast(vectors[:, ::-1][:, :filters], tf.float32)  # (k·k·C, F′), largest first
    components = top.shape[-1]
    weights = tf.reverse(tf.reshape(top, [kernel, kernel, channels, components]), axis=[0, 1]) * filter_norm
    coeffs = tf.reshape(tf.matmul(centred, top) / (filter_norm * kernel**2), [*patches.shape[:3], components])
    return weights, coeffs
