"""Infer: denoise one frame with a method (a compiled GBP loop, or a classical filter)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from pipeline.baselines.classical_filters import median_filter
from pipeline.gbp.filtering import carry_posterior
from pipeline.gbp.model import Denoiser
from pipeline.methods import MedianMethod, MethodConfig
from stages.build_graph import build_model, check_frame_fits


@dataclass
class FrameOutcome:
    """One denoised frame (H, W, C), not clipped, and how long its inference took."""

    estimate: np.ndarray
    std: np.ndarray | None  # posterior standard deviation per pixel (GBP only)
    seconds: float  # wall time of inference (GBP: the compiled loop only)
    iterations: int  # GBP iterations run (0 for filters)
    posterior: dict = field(default_factory=dict)  # learned parameters' marginals after the frame


class GBPFrameDenoiser:
    """Runs a GBP model frame by frame, reusing its compiled loop for equal frame shapes, and
    carries learned parameter posteriors from each frame to the next as priors."""

    def __init__(self, name: str, config, seed: int):
        self.name, self.config = name, config
        self.model = build_model(config, seed)
        self.denoiser = Denoiser(self.model, jit=config.xla)
        self.prior = None  # the next frame's parameter prior; None: the model's original prior
        self.fresh_prior = None  # the prior of a frame nothing is carried into; None: the original
        self.previous = None  # the last frame's final GBP state, when carrying warm-starts
        self._checked_shapes: set[tuple[int, ...]] = set()

    def start_from(self, posterior: dict, channels: int) -> None:
        """Start from a saved parameter posterior as though it had been carried here from the
        frame it was saved after: through the config's carry rule (for single_layer, mean and std
        halfway back to the original prior).  With carrying off, every frame starts from it."""
        original = self.model.original_prior(channels)
        self.prior = self.fresh_prior = carry_posterior(posterior, original, self.config.carry.alpha)

    def check_frame(self, shape: tuple[int, int, int]) -> None:
        """Refuse (PipelineError) frames of ``shape`` (H, W, C) the model cannot denoise."""
        if shape not in self._checked_shapes:
            check_frame_fits(self.model, *shape, method=self.name)
            self._checked_shapes.add(shape)

    def __call__(self, noisy: np.ndarray) -> FrameOutcome:
        self.check_frame(noisy.shape)
        result = self.denoiser.denoise(tf.constant(noisy[None]), self.config.iterations, self.prior,
                                       self.previous)
        carry = getattr(self.config, "carry", None)
        if carry is not None:
            original = self.model.original_prior(noisy.shape[-1])
            self.prior = carry_posterior(result.posterior, original, carry.alpha) if carry.enabled else self.fresh_prior
            self.previous = result.state if carry.enabled and carry.warm_start else None
        return FrameOutcome(result.mean.numpy()[0], result.std.numpy()[0],
                            result.loop_seconds, self.config.iterations, result.posterior)


class FilterFrameDenoiser:
    """A classical filter applied frame by frame."""

    def __init__(self, name: str, config: MedianMethod):
        self.name, self.config = name, config

    def check_frame(self, shape: tuple[int, int, int]) -> None:
        """Filters take any frame (the ingest stage already refuses frames under 3×3)."""

    def __call__(self, noisy: np.ndarray) -> FrameOutcome:
        start = time.perf_counter()
        estimate = median_filter(noisy, self.config.kernel)
        return FrameOutcome(estimate, None, time.perf_counter() - start, 0)


def frame_denoiser(name: str, config: MethodConfig, seed: int):
    """The per-frame runner of a method config."""
    if config.is_gbp:
        return GBPFrameDenoiser(name, config, seed)
    return FilterFrameDenoiser(name, config)
