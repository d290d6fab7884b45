"""Layer updates of BP, BPI, AMP (TAP) and MF for a binary-weight layer with sign activation.

Pure tensor functions (no state); ``learner.py`` schedules them (section 4.0 of
../shared/docs/bp-amp-mf.md). Shapes, batch first: a weight layer maps ``N`` inputs to ``K``
outputs on a minibatch of ``M`` examples,

* ``xh``, ``dx`` (M, N): mean and variance of the layer's +-1 inputs (``dx is None`` at the
  bottom layer, whose inputs are the data with zero variance);
* ``m`` (K, N): weight magnetisations, ``sigma = 1 - m^2`` their variances;
* ``omega``, ``var`` (M, K): mean and **variance** of the pre-activations (see
  ``scalar_functions`` for the single variance convention);
* ``b`` (M, N): downward field on the inputs, ``btop`` (M, K): field from above on the outputs;
* ``hin`` (K, N): field on the weights from this minibatch;
* BP cavities are (M, K, N) tensors ``[a, k, i]``.

Weights are dense (no dilution mask), so ``m^2 + sigma = 1`` and the ``m^2 dx + sigma dx`` part
of the variance reduces to a row sum of ``dx``. Everything is matmul/broadcast over the batch.
"""

from __future__ import annotations

import tensorflow as tf

from pipeline.baselines.binary_mp.scalar_functions import (
    EPS_VAR,
    sign_field_terms,
    sign_g_from_terms,
    sign_mean,
)


def _mm(a, b):
    """``a @ b^T`` for a (M, N) and b (K, N)."""
    return tf.matmul(a, b, transpose_b=True)


def input_moments(bup_below, b):
    """Mean and variance of a hidden +-1 unit with upward field ``bup_below`` and downward ``b``."""
    xh = tf.tanh(bup_below + b)
    return xh, 1.0 - tf.square(xh)


def mean_field_moments(m, xh, dx):
    """``omega = xh m^T``, ``V = xh^2 sigma^T + m^2 dx + sigma dx + eps`` (no cavities, no Onsager)."""
    sigma = 1.0 - tf.square(m)
    omega = _mm(xh, m)
    var = _mm(tf.square(xh), sigma) + EPS_VAR
    if dx is not None:
        var = var + tf.reduce_sum(dx, axis=1, keepdims=True)
    return omega, var


# --- MF (section 4.4) and the argmax layer (4.5), which is MF-like for every method ------------


def mf_backward(m, xh, g, need_b):
    """``B = g m`` (skipped at the bottom) and ``Hin = g^T xh``."""
    b = tf.matmul(g, m) if need_b else None
    hin = tf.matmul(g, xh, transpose_a=True)
    return b, hin


# --- AMP / TAP (section 4.3) -------------------------------------------------------------------


def tap_forward(m, xh, dx, m_old, x_old, g_old, onsager):
    """Pre-activation mean with the Onsager corrections, and variance.

    ``onsager=False`` is the first iteration after the per-batch reset (``g' = 0``), where every
    correction vanishes; it skips their matmuls.
    """
    omega, var = mean_field_moments(m, xh, dx)
    if onsager:
        sigma = 1.0 - tf.square(m)
        omega = omega - g_old * _mm(xh * x_old, sigma)
        if dx is not None:
            omega = omega - g_old * _mm(dx, m * m_old)
            omega = omega + tf.square(g_old) * _mm(x_old * dx, sigma * m_old)
    return omega, var


def tap_backward(m, xh, dx, g, gamma, m_old, x_old, g_old, need_b, onsager):
    """Downward field ``B`` and weight field ``Hin`` with the Onsager / self-reaction terms."""
    m2 = tf.square(m)
    hin = tf.matmul(g, xh, transpose_a=True) + m * tf.matmul(
        gamma, tf.square(xh), transpose_a=True
    )
    if onsager and dx is not None:
        hin = hin - m_old * tf.matmul(g * g_old, dx, transpose_a=True)
        hin = hin - (m * m_old) * tf.matmul(g_old * gamma, dx * xh, transpose_a=True)
    b = None
    if need_b:
        b = tf.matmul(g, m) + xh * tf.matmul(gamma, m2)
        if onsager:
            sigma = 1.0 - m2
            b = b - x_old * tf.matmul(g * g_old, sigma)
            b = b - (xh * x_old) * tf.matmul(g_old * gamma, sigma * m)
    return b, hin


def _cavity_g(btop, omega_cav, var):
    """g of the sign channel on (M, K, N) cavity pre-activations; b-terms computed on (M, K)."""
    sgn, t, c = sign_field_terms(btop)
    return sign_g_from_terms(
        sgn[:, :, None], t[:, :, None], c[:, :, None], omega_cav, var[:, :, None]
    )


# --- BPI (section 4.2): cavity only in g ------------------------------------------------------


#: Examples per step of BPI's cavity loop: a (chunk, K, N) block of ``gcav`` stays in cache
#: between its two reductions instead of a (M, K, N) tensor going through memory. Measured on
#: this CPU (501->501 layer, batch 128, XLA, CPU time): 123 ms unchunked; 110, 95, 95, 92, 96,
#: 100 ms for blocks of 1, 2, 4, 8, 16, 32 examples.
BPI_CHUNK = 8


def _bpi_block(m, xh, omega, var, sgn, t, c, need_b):
    """``(b, hin)`` of one block of examples; the (m, K, N) cavity tensor lives only here."""
    omega_cav = omega[:, :, None] - m[None, :, :] * xh[:, None, :]
    gcav = sign_g_from_terms(
        sgn[:, :, None], t[:, :, None], c[:, :, None], omega_cav, var[:, :, None]
    )
    hin = tf.reduce_sum(gcav * xh[:, None, :], axis=0)
    b = tf.reduce_sum(gcav * m[None, :, :], axis=1) if need_b else None
    return b, hin


def bpi_backward(m, xh, omega, var, btop, need_b, chunk=BPI_CHUNK):
    """``gcav[a,k,i] = g(btop[a,k], omega[a,k] - m[k,i] xh[a,i], V[a,k])`` reduced to B and Hin.

    The field-only factors of ``g`` are formed once on (M, K). With both reductions (``need_b``)
    the (M, K, N) cavity tensor is produced and reduced in blocks of ``chunk`` examples (a
    ``tf.while_loop``; the largest divisor of a static batch size not above ``chunk``), so it is
    never materialised whole. The bottom layer needs only ``Hin``, which XLA already computes in
    one fused pass (blocks made it slower there).
    """
    sgn, t, c = sign_field_terms(btop)
    batch = xh.shape[0]
    if not need_b or batch is None or chunk is None or chunk >= batch:
        return _bpi_block(m, xh, omega, var, sgn, t, c, need_b)
    size = max(d for d in range(1, chunk + 1) if batch % d == 0)
    n_blocks = batch // size

    def body(j, hin, bs):
        def rows(z):
            return tf.slice(z, [j * size, 0], [size, z.shape[1]])

        b, h = _bpi_block(
            m, rows(xh), rows(omega), rows(var), rows(sgn), rows(t), rows(c), need_b
        )
        if need_b:
            bs = bs.write(j, b)
        return j + 1, hin + h, bs

    bs = tf.TensorArray(xh.dtype, size=n_blocks, element_shape=[size, xh.shape[1]])
    _, hin, bs = tf.while_loop(
        lambda j, *_: j < n_blocks, body, (tf.constant(0), tf.zeros_like(m), bs)
    )
    b = tf.reshape(bs.stack(), [batch, xh.shape[1]]) if need_b else None
    return b, hin


# --- BP (section 4.1): full cavity messages ----------------------------------------------------


def bp_forward(m, m_cav, xh, dx, x_cav):
    """Cavity pre-activations ``omega_cav[a,k,i]``, ``omega``, the variance and the products.

    ``x_cav`` is (M, K, N), or (M, 1, N) at the bottom where the inputs are the data.
    """
    prod = m_cav * x_cav
    omega = tf.reduce_sum(prod, axis=2)
    omega_cav = omega[:, :, None] - prod
    _, var = mean_field_moments(m, xh, dx)  # non-cavity variances, as in the reference
    return omega, omega_cav, var


def bp_backward(m, h_old, hext, m_cav, x_cav, omega_cav, var, btop, need_b, psi, r):
    """Cavity fields and magnetisations; returns ``(b, b_cav, h, m, m_cav)``."""
    gcav = _cavity_g(btop, omega_cav, var)
    gx = gcav * x_cav
    b = b_cav = None
    if need_b:
        mg = m_cav * gcav
        b = tf.reduce_sum(mg, axis=1)
        b_cav = b[:, None, :] - mg
    h = tf.reduce_sum(gx, axis=0) + r * h_old + hext
    h_cav = h[None, :, :] - gx
    m_cav = psi * m_cav + (1.0 - psi) * tf.tanh(h_cav)
    m = psi * m + (1.0 - psi) * tf.tanh(h)
    return b, b_cav, h, m, m_cav


# --- weight updates ----------------------------------------------------------------------------


def damped_weight_update(h_old, m_old, hin, hext, psi, r):
    """``H = Hin + r H_old + Hext``; damping on the magnetisation ``m <- psi m + (1-psi) tanh H``."""
    h = hin + r * h_old + hext
    return h, psi * m_old + (1.0 - psi) * tf.tanh(h)


def argmax_weight_update(h_old, hin, hext, psi, r):
    """Argmax layer: damping on the field, ``H <- psi H + (1-psi)(Hin + r H + Hext)``, ``m = tanh H``."""
    h = psi * h_old + (1.0 - psi) * (hin + r * h_old + hext)
    return h, tf.tanh(h)


# --- prediction (section 6) --------------------------------------------------------------------


def pointwise_scores(ms, x):
    """Forward pass of the pointwise network ``W = sign(m)``; returns the last pre-activations."""
    h = x
    z = x
    for layer, m in enumerate(ms):
        z = _mm(h, tf.sign(m))
        if layer < len(ms) - 1:
            h = tf.where(z + 1e-10 >= 0.0, tf.ones_like(z), -tf.ones_like(z))
    return z


def bayes_scores(ms, x):
    """Propagate means and variances through the weight marginals; returns ``omega/sqrt V`` of the top.

    Hidden units get ``xh = 2H(-omega/sqrt V) - 1``. The top scores are ``omega/sqrt V``, which
    orders the classes like the reference's ``2H(-omega/sqrt V) - 1`` without its float
    saturation, and has the same sign for the binary output.
    """
    xh, dx = x, None
    omega, var = None, None
    for m in ms:
        omega, var = mean_field_moments(m, xh, dx)
        xh = sign_mean(omega, var)
        dx = 1.0 - tf.square(xh)
    return omega * tf.math.rsqrt(var)
