"""Which device TensorFlow computes on: ``auto`` (a GPU when TensorFlow sees one), ``cpu``, ``gpu``."""
from __future__ import annotations

from pipeline.errors import PipelineError

DEVICES = ("auto", "cpu", "gpu")


def select_device(choice: str) -> str:
    """Make ``choice`` effective for this process (before any tensor is placed); return its name."""
    import tensorflow as tf

    if choice not in DEVICES:
        raise PipelineError(f"--device must be one of {', '.join(DEVICES)}, got {choice!r}")
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise PipelineError("--device gpu: TensorFlow sees no GPU (install tensorflow[and-cuda]); use --device cpu")
    if choice == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
        return "CPU"
    if gpus and choice in ("auto", "gpu"):
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        return "GPU"
    return "CPU"
