"""Reference variant of the GBP classifier that stores every factor's message to the shared
parameters, as the authors' implementation does (doc §2.1, §8.1) — for measuring what the fast
scheme of classifier.py costs in accuracy, not for production runs (≈ 10× the memory and time).

Differences from :class:`~pipeline.gbp.models.classifier.GBPClassifier`, in the conv and dense
layers during training only:
  * per-factor messages to W, β₁ (B, H′/2, W′/2, 4, F, ·) and to the dense inputs, V, β₂
    (B, O, ·) are stored;
  * each factor's incoming message from a shared variable is its exact cavity
    (marginal − that factor's own message), not the marginal;
  * every such message is damped and dropped out per element (``damped_update``), instead of the
    deterministic β_eff damping of the sums;
  * messages are computed by the generic rank-1 closed form (messages.rank1_factor_to_variable)
    on the full per-factor Jacobian, in float64 (the reference's precision for these layers), so
    the leave-one-out is exact with no series.
Test-time inference (parameters fixed) is the same as the fast model's.
"""
from __future__ import annotations

import tensorflow as tf

from pipeline.gbp.factors.activations import leaky_relu, leaky_relu_derivative
from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.messages import rank1_factor_to_variable
from pipeline.gbp.models.classifier import GBPClassifier, _with_prior

F64 = tf.float64


def _cast(g: Gaussian, dtype) -> Gaussian:
    return Gaussian(tf.cast(g.eta, dtype), tf.cast(g.lam, dtype))


class PerFactorMessagesClassifier(GBPClassifier):
    """GBPClassifier with per-factor parameter messages and exact cavities (see module doc)."""

    def train_state(self, images, onehot, prior, batch_seed):
        s = super().train_state(images, onehot, prior, batch_seed)
        c = self.config
        bsz = tf.shape(s["patches"])[0]
        h2, w2, _ = self.pool_shape
        shape_w = tf.stack([bsz, h2, w2, 4, c.filters, self.patch_size])
        shape_b = tf.stack([bsz, h2, w2, 4, c.filters])
        shape_d = tf.stack([bsz, c.classes, self.features])
        shape_db = tf.stack([bsz, c.classes])
        for key, shape in (("pf_conv_w", shape_w), ("pf_conv_b", shape_b), ("pf_dense_x", shape_d),
                           ("pf_dense_w", shape_d), ("pf_dense_b", shape_db)):
            s[key] = Gaussian(tf.zeros(shape, self.dtype), tf.zeros(shape, self.dtype))
        return s

    def _damp_pf(self, s, key, new, edge, it, first):
        return self._damp(s, key, _cast(new, self.dtype), edge, it, first, dropout=True)

    def _visit_conv(self, s, it):
        c, first = self.config, tf.equal(it, 0)
        prior = s["prior"]
        w_marg = _cast(prior["conv_weights"] + s["conv_w"], F64)
        b_marg = _cast(prior["conv_bias"] + s["conv_b"], F64)
        own_w, own_b = _cast(s["pf_conv_w"], F64), _cast(s["pf_conv_b"], F64)
        w_cav = Gaussian(tf.transpose(w_marg.eta)[None, None, None, None] - own_w.eta,
                         tf.transpose(w_marg.lam)[None, None, None, None] - own_w.lam)
        b_cav = Gaussian(b_marg.eta - own_b.eta, b_marg.lam - own_b.lam)
        z_cav = _cast(_with_prior(s["pool_z"], c.conv_coeff_prior_sigma), F64)
        patches = tf.cast(s["patches"], F64)
        a0 = tf.einsum("...d,df->...f", patches, tf.cast(s["lin_w"], F64)) + tf.cast(s["lin_b"], F64)
        gp = leaky_relu_derivative(a0, c.slope)
        r = (gp * a0 - leaky_relu(a0, c.slope)) / c.conv_sigma
        j = tf.concat([gp[..., None] * patches[..., None, :] / c.conv_sigma, (gp / c.conv_sigma)[..., None],
                       -tf.ones_like(gp)[..., None] / c.conv_sigma], axis=-1)
        incoming = Gaussian(tf.concat([w_cav.eta, b_cav.eta[..., None], z_cav.eta[..., None]], -1),
                            tf.concat([w_cav.lam, b_cav.lam[..., None], z_cav.lam[..., None]], -1))
        msg = rank1_factor_to_variable(j, r, incoming)
        d = self.patch_size
        s = dict(s)
        s["pf_conv_w"] = self._damp_pf(s, "pf_conv_w", Gaussian(msg.eta[..., :d], msg.lam[..., :d]), 20, it, first)
        s["pf_conv_b"] = self._damp_pf(s, "pf_conv_b", Gaussian(msg.eta[..., d], msg.lam[..., d]), 21, it, first)
        s["conv_z"] = self._damp_pf(s, "conv_z", Gaussian(msg.eta[..., d + 1], msg.lam[..., d + 1]), 0, it, first)
        axes = [0, 1, 2, 3]
        s["conv_w"] = Gaussian(tf.transpose(tf.reduce_sum(s["pf_conv_w"].eta, axes)),
                               tf.transpose(tf.reduce_sum(s["pf_conv_w"].lam, axes)))
        s["conv_b"] = Gaussian(tf.reduce_sum(s["pf_conv_b"].eta, axes), tf.reduce_sum(s["pf_conv_b"].lam, axes))
        s["lin_w"] = (prior["conv_weights"] + s["conv_w"]).mean
        s["lin_b"] = (prior["conv_bias"] + s["conv_b"]).mean
        return s

    def _visit_dense(self, s, it, first, edge, train: bool):
        if not train:
            return super()._visit_dense(s, it, first, edge, train)
        c = self.config
        prior = s["prior"]
        sigma = c.dense_sigma
        x_marg = _cast(self._p(s), F64)  # (B, K)
        v_marg = _cast(prior["dense_weights"] + s["dense_w"], F64)  # (K, O)
        b_marg = _cast(prior["dense_bias"] + s["dense_b"], F64)
        y_cav = _cast(_with_prior(s["soft_y"], c.logit_prior_sigma), F64)
        own_x, own_w, own_b = (_cast(s[k], F64) for k in ("pf_dense_x", "pf_dense_w", "pf_dense_b"))
        x_cav = Gaussian(x_marg.eta[:, None] - own_x.eta, x_marg.lam[:, None] - own_x.lam)
        w_cav = Gaussian(tf.transpose(v_marg.eta)[None] - own_w.eta, tf.transpose(v_marg.lam)[None] - own_w.lam)
        b_cav = Gaussian(b_marg.eta[None] - own_b.eta, b_marg.lam[None] - own_b.lam)
        x_lin, w_lin = tf.cast(s["lin_x"], F64), tf.cast(s["lin_v"], F64)
        bsz = tf.shape(x_lin)[0]
        full = tf.stack([bsz, c.classes, self.features])
        j = tf.concat([tf.broadcast_to(-tf.transpose(w_lin)[None] / sigma, full),
                       tf.broadcast_to(-x_lin[:, None] / sigma, full),
                       -tf.ones_like(y_cav.eta)[..., None] / sigma, tf.ones_like(y_cav.eta)[..., None] / sigma], -1)
        r = -tf.matmul(x_lin, w_lin) / sigma
        incoming = Gaussian(tf.concat([x_cav.eta, w_cav.eta, b_cav.eta[..., None], y_cav.eta[..., None]], -1),
                            tf.concat([x_cav.lam, w_cav.lam, b_cav.lam[..., None], y_cav.lam[..., None]], -1))
        msg = rank1_factor_to_variable(j, r, incoming)
        k = self.features
        s = dict(s)
        s["pf_dense_x"] = self._damp_pf(s, "pf_dense_x", Gaussian(msg.eta[..., :k], msg.lam[..., :k]), edge + 20, it, first)
        s["pf_dense_w"] = self._damp_pf(s, "pf_dense_w", Gaussian(msg.eta[..., k:2 * k], msg.lam[..., k:2 * k]),
                                        edge + 21, it, first)
        s["pf_dense_b"] = self._damp_pf(s, "pf_dense_b", Gaussian(msg.eta[..., 2 * k], msg.lam[..., 2 * k]),
                                        edge + 22, it, first)
        s["dense_y"] = self._damp_pf(s, "dense_y", Gaussian(msg.eta[..., 2 * k + 1], msg.lam[..., 2 * k + 1]),
                                     edge + 1, it, first)
        s["dense_x"] = Gaussian(tf.reduce_sum(s["pf_dense_x"].eta, 1), tf.reduce_sum(s["pf_dense_x"].lam, 1))
        s["dense_w"] = Gaussian(tf.transpose(tf.reduce_sum(s["pf_dense_w"].eta, 0)),
                                tf.transpose(tf.reduce_sum(s["pf_dense_w"].lam, 0)))
        s["dense_b"] = Gaussian(tf.reduce_sum(s["pf_dense_b"].eta, 0), tf.reduce_sum(s["pf_dense_b"].lam, 0))
        s["lin_v"] = (prior["dense_weights"] + s["dense_w"]).mean
        s["lin_x"] = self._p(s).mean
        return s
