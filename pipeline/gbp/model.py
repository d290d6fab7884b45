"""What a denoising factor graph offers the application, and the runner that compiles it.

A model owns its layers and schedule and exposes a functional interface over a nested state of
tensors, so one compiled loop per frame shape runs every frame:

* ``initial_state(noisy, prior)`` — fresh variables and messages for one frame (B,H,W,C) in
  [0, 1], parameter priors taken from ``prior`` (a carried posterior) or the model's own;
* ``step(state, iteration)`` — one GBP iteration (forward then backward sweep over layers);
* ``pixel_marginal(state)`` — the posterior over clean pixels;
* ``parameter_posterior(state)`` — marginals of learned parameters (empty for models without).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import tensorflow as tf

from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.loop import compile_loop
from pipeline.interrupt import raise_if_interrupted

ParameterPosterior = dict[str, Gaussian]


class DenoisingModel(Protocol):
    def initial_state(self, noisy: tf.Tensor, prior: ParameterPosterior | None) -> Any: ...

    def step(self, state: Any, iteration: tf.Tensor) -> Any: ...

    def pixel_marginal(self, state: Any) -> Gaussian: ...

    def parameter_posterior(self, state: Any) -> ParameterPosterior: ...


@dataclass
class FrameResult:
    """The outcome of GBP on one frame."""

    mean: tf.Tensor  # (B,H,W,C) posterior mean of the clean pixels (not clipped)
    std: tf.Tensor  # (B,H,W,C) posterior standard deviation
    posterior: ParameterPosterior
    loop_seconds: float  # wall time of the compiled loop only (includes tracing on first call)
    state: Any = None  # the final GBP state (to warm-start the next frame from)


class Denoiser:
    """Runs a model's compiled GBP loop frame by frame (one trace per frame shape).

    A frame's iterations run as calls of the same compiled loop, ``chunk`` iterations each (same
    result as one call), so Ctrl-C, which Python only sees between calls, stops a run within one
    chunk rather than one whole frame."""

    def __init__(self, model: DenoisingModel, jit: bool = False, chunk: int = 50):
        self.model, self.chunk = model, chunk
        self._run = compile_loop(model.step, jit=jit)

    def denoise(self, noisy: tf.Tensor, iterations: int, prior: ParameterPosterior | None = None,
                previous: Any = None) -> FrameResult:
        """GBP on one frame; ``previous``: a final state to warm-start from (models that can)."""
        if previous is None:
            state = self.model.initial_state(noisy, prior)  # once per frame: eager is fine
        else:
            state = self.model.initial_state(noisy, prior, previous)
        start = time.perf_counter()
        for first in range(0, iterations, self.chunk):
            raise_if_interrupted()
            state = self._run(state, tf.constant(first), tf.constant(min(self.chunk, iterations - first)))
        marginal = self.model.pixel_marginal(state)
        mean = marginal.mean.numpy()  # forces completion before the clock stops
        seconds = time.perf_counter() - start
        return FrameResult(tf.constant(mean), marginal.std,
                           self.model.parameter_posterior(state), seconds, state)
