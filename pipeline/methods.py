"""The denoising methods a user can ask for by name, and their validated configs.

A method name (``pairwise``, ``median3`` …) is a file ``configs/denoise/<name>.yaml``; its
``method`` key selects the config class below.  The name is what runs are tagged with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from pipeline.config import available, from_dict, read_yaml, require
from pipeline.errors import PipelineError
from pipeline.gbp.models.deep_denoiser import DeepDenoiserConfig
from pipeline.gbp.models.pairwise_smoother import PairwiseSmootherConfig

# The default of `pipeline denoise`: the best of the learned graphs. On the paper's bear protocol
# (seed 1) five_layer reaches 34.9 dB at frame 5 against 33.0 (single_layer) and 30.9
# (pairwise); it costs ~2.6× more per iteration than single_layer and 500 instead of 300
# iterations per frame, so `--model single_layer` is the fast choice.
DEFAULT_METHOD = "five_layer"


@dataclass(frozen=True)
class GBPMethod:
    """What every GBP method has: iterations per frame and the compiler of its loop."""

    iterations: int = 200
    xla: bool = True
    is_gbp = True

    def __post_init__(self):
        require(self.iterations >= 1, f"iterations must be ≥ 1, got {self.iterations}")


@dataclass(frozen=True)
class PairwiseMethod(GBPMethod):
    """GBP with the robust pairwise smoother (no learned parameters)."""

    method: Literal["pairwise"] = "pairwise"
    graph: PairwiseSmootherConfig = field(default_factory=PairwiseSmootherConfig)


@dataclass(frozen=True)
class CarryConfig:
    """Carrying parameter posteriors frame to frame (continual learning).

    ``alpha`` None: the next prior is the posterior; α ∈ (0, 1]: interpolate mean and std with
    the original prior (μ' = α μ_post + (1−α) μ₀, σ' = α σ_post + (1−α) σ₀).
    ``warm_start``: GBP on the next frame also starts from this frame's final messages and means
    (coefficients, pixels) instead of from zero: the same graph, reached in fewer iterations."""

    enabled: bool = True
    alpha: float | None = None
    warm_start: bool = True

    def __post_init__(self):
        require(self.alpha is None or 0.0 < self.alpha <= 1.0, f"carry.alpha must be in (0, 1], got {self.alpha}")


@dataclass(frozen=True)
class DeepMethod(GBPMethod):
    """GBP in a learned deep factor graph (transposed-conv reconstruction layers)."""

    method: Literal["deep"] = "deep"
    iterations: int = 300
    carry: CarryConfig = field(default_factory=CarryConfig)
    graph: DeepDenoiserConfig = field(default_factory=DeepDenoiserConfig)


@dataclass(frozen=True)
class MedianMethod:
    """OpenCV median filter with a square odd ``kernel``."""

    method: Literal["median"] = "median"
    kernel: int = 3

    is_gbp = False

    def __post_init__(self):
        require(self.kernel >= 3 and self.kernel % 2 == 1,
                f"median kernel must be odd and ≥ 3, got {self.kernel}")


MethodConfig = Union[PairwiseMethod, DeepMethod, MedianMethod]
_CLASSES = {"pairwise": PairwiseMethod, "deep": DeepMethod, "median": MedianMethod}


def load_method(name: str) -> MethodConfig:
    """Load and validate ``configs/denoise/<name>.yaml`` (or a YAML path)."""
    data, origin = read_yaml("denoise", name)
    kind = data.get("method")
    if kind not in _CLASSES:
        raise PipelineError(f"{origin}: 'method' must be one of {sorted(_CLASSES)}, got {kind!r}")
    return from_dict(_CLASSES[kind], data, origin)


def parse_method_list(text: str) -> list[str]:
    """``"pairwise,median3"`` → ["pairwise", "median3"] (checked, no duplicates)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise PipelineError(f"--model needs at least one of: {', '.join(available('denoise'))}")
    if len(set(names)) != len(names):
        raise PipelineError(f"--model lists a method twice: {text}")
    return names
