"""A Ctrl-C swallowed by library code still stops the run at the next safe point."""
import numpy as np
import pytest
import tensorflow as tf

from pipeline import interrupt
from pipeline.gbp.model import Denoiser
from pipeline.gbp.models.pairwise_smoother import PairwiseSmoother, PairwiseSmootherConfig


def test_a_swallowed_ctrl_c_is_raised_again_at_the_next_safe_point(monkeypatch):
    monkeypatch.setattr(interrupt, "_requested", False)
    interrupt.raise_if_interrupted()  # nothing pending: no-op
    try:
        interrupt.handle_interrupt()
    except KeyboardInterrupt:
        pass  # what a library's broad except would do
    with pytest.raises(KeyboardInterrupt):
        interrupt.raise_if_interrupted()


def test_gbp_loop_stops_between_chunks_when_interrupted(monkeypatch):
    denoiser = Denoiser(PairwiseSmoother(PairwiseSmootherConfig()), chunk=5)
    frame = tf.constant(np.random.default_rng(0).uniform(size=(1, 8, 8, 1)).astype(np.float32))
    monkeypatch.setattr(interrupt, "_requested", False)
    denoiser.denoise(frame, 10)
    monkeypatch.setattr(interrupt, "_requested", True)
    with pytest.raises(KeyboardInterrupt):
        denoiser.denoise(frame, 10)
