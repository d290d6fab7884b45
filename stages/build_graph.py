"""Build graph: a method config → the factor graph model that denoises one frame.

GBP models are sized lazily by the frame they are given (one compiled loop per frame shape);
this stage also refuses frames too small for a model's layers or whose graph would not fit in
memory, before any allocation.
"""
from __future__ import annotations

import psutil

from pipeline.errors import PipelineError
from pipeline.gbp.models.deep_denoiser import DeepDenoiser
from pipeline.gbp.models.pairwise_smoother import PairwiseSmoother
from pipeline.methods import DeepMethod, MethodConfig, PairwiseMethod


def build_model(config: MethodConfig, seed: int):
    """The GBP model of a GBP method config (dropout masks seeded by ``seed``)."""
    from dataclasses import replace

    if isinstance(config, PairwiseMethod):
        return PairwiseSmoother(replace(config.graph, seed=seed))
    if isinstance(config, DeepMethod):
        return DeepDenoiser(replace(config.graph, seed=seed))
    raise PipelineError(f"method {config.method!r} is not a GBP model")


def check_frame_fits(model, height: int, width: int, channels: int, method: str) -> None:
    """Refuse, with advice (``--height/--width``), a frame smaller than the model's layers need or
    whose graph would exceed the available memory, before any allocation."""
    smallest = model.minimum_size()
    if min(height, width) < smallest:
        raise PipelineError(f"{method} needs frames of at least {smallest}×{smallest} pixels, these are "
                            f"{height}×{width}; use --height/--width to enlarge them or choose another --model")
    needed = model.estimated_bytes(height, width, channels)
    available = psutil.virtual_memory().available
    if needed > 0.8 * available:
        raise PipelineError(
            f"a {height}×{width}×{channels} frame needs about {needed / 2**30:.1f} GiB for the "
            f"{method} graph but only {available / 2**30:.1f} GiB is free; use --height/--width to "
            f"denoise a smaller frame")
