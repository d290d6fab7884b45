"""Benchmarks: seconds per GBP iteration and peak resident memory, per method and frame size.

Each configuration runs in a fresh Python process (``python -m pipeline.bench <json>``) so its
peak RSS (``getrusage(...).ru_maxrss``) is its own.  Timing is steady state: one untimed frame
compiles the loop, then a timed frame of ``iterations`` iterations.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from pipeline.errors import PipelineError


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        try:
            h, w = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise PipelineError(f"--sizes takes HEIGHTxWIDTH items, got {item!r}") from None
        if h < 3 or w < 3:
            raise PipelineError(f"frame sizes must be at least 3x3, got {item!r}")
        sizes.append((h, w))
    return sizes


def measure(method: str, height: int, width: int, iterations: int, xla: bool | None) -> dict:
    """Run in this process: time ``iterations`` GBP iterations on a random 3-channel frame,
    after a 2-iteration frame that compiles the loop (steady state, as in the denoise runs)."""
    import numpy as np
    import tensorflow as tf

    from pipeline.config import with_overrides
    from pipeline.gbp.model import Denoiser
    from pipeline.methods import load_method
    from stages.build_graph import build_model

    config = with_overrides(load_method(method), xla=xla)
    frame = tf.constant(np.random.default_rng(0).uniform(size=(1, height, width, 3)).astype(np.float32))
    model = build_model(config, seed=0)
    denoiser = Denoiser(model, jit=config.xla)
    denoiser.denoise(frame, 2)  # compile + warm up
    cpu = time.process_time()
    result = denoiser.denoise(frame, iterations)
    cpu = time.process_time() - cpu
    moved = model.bytes_moved_per_iteration(height, width, 3)
    return {
        "method": method, "frame": f"{height}x{width}x3", "compiler": "XLA" if config.xla else "tf.function",
        "seconds_per_iteration": result.loop_seconds / iterations,
        "cpu_seconds_per_iteration": cpu / iterations,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "mb_per_iteration": moved / 1e6,
        "tensorflow": tf.__version__,
    }


def run_benchmarks(methods: str, sizes: str, iterations: int, compilers=("xla", "plain")) -> list[dict]:
    """Every (method, size, compiler) in a fresh subprocess; rows of ``measure`` results.
    The arguments are checked here, before any subprocess starts."""
    from pipeline.methods import load_method, parse_method_list

    if iterations < 1:
        raise PipelineError(f"--iterations must be ≥ 1, got {iterations}")
    names = parse_method_list(methods)
    for method in names:
        if not load_method(method).is_gbp:
            raise PipelineError(f"{method} is not a GBP method; bench times GBP iterations")
    frame_sizes = _parse_sizes(sizes)
    rows = []
    for method in names:
        for h, w in frame_sizes:
            for compiler in compilers:
                spec = json.dumps({"method": method, "height": h, "width": w,
                                   "iterations": iterations, "xla": compiler == "xla"})
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
                done = subprocess.run([sys.executable, "-m", "pipeline.bench", spec], capture_output=True,
                                      text=True, env=env)
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    raise PipelineError(f"benchmark {method} {h}x{w} ({compiler}) failed: {last}")
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(measure(**spec)))
