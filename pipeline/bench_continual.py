"""Benchmark of the GBP classifier: seconds per training iteration (batch 50), per test iteration
(batch 200), peak resident memory, and the projected time of a full 60,000-example run.

Each (phase, compiler) runs in a fresh Python process (``python -m pipeline.bench_continual
--child …``) so its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) is its own.  Timing is steady
state: one untimed warm-up call traces and compiles the loop, then ``iterations`` timed
iterations on real MNIST images (random images when no data directory is given).

Projection for one pass over N training examples with one evaluation on the 10,000 test images:
    ⌈N/B⌉ · (I_train · t_train + t_batch_overhead) + ⌈10000/B_test⌉ · I_test · t_test
with the iteration counts of configs/continual/mnist_gbp.yaml (or the flags).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

COMPILERS = ("layers", "none", "loop")


def _images(n: int, data_dir: str | None, seed: int = 0):
    import numpy as np

    if data_dir:
        from pipeline.datasets import load_dataset

        ds = load_dataset("mnist", data_dir)
        x, y = ds.x_train[:n], ds.y_train[:n].astype(np.int64)
    else:
        rng = np.random.default_rng(seed)
        x, y = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)
    return (x.astype(np.float32) / 255.0)[..., None], np.eye(10, dtype=np.float32)[y]


def measure(phase: str, jit: str, iterations: int, batch: int, data_dir: str | None) -> dict:
    """In this process: time ``iterations`` steady-state GBP iterations of one phase."""
    import tensorflow as tf

    from pipeline.continual import load_gbp_config
    from pipeline.gbp.models.classifier import GBPClassifier

    config = load_gbp_config("mnist")
    graph = config.graph.__class__(**{**config.graph.__dict__, "jit": jit})
    model = GBPClassifier(graph, (28, 28, 1))
    images, onehot = _images(3 * batch, data_dir)
    prior = model.initial_prior()
    overhead = 0.0
    if phase == "train":
        model.train_batch(images[:batch], onehot[:batch], prior, 2, 0)  # trace + compile
        prior, _ = model.train_batch(images[batch:2 * batch], onehot[batch:2 * batch], prior, 20, 1)
        start = time.perf_counter()
        _, seconds = model.train_batch(images[2 * batch:], onehot[2 * batch:], prior, iterations, 2)
        overhead = time.perf_counter() - start - seconds
    else:
        model.predict(images[:batch], prior, 2, 0)
        start = time.perf_counter()
        _, _, seconds = model.predict(images[batch:2 * batch], prior, iterations, 1)
        overhead = time.perf_counter() - start - seconds
    return {"phase": phase, "jit": jit, "batch": batch, "iterations": iterations,
            "seconds_per_iteration": seconds / iterations, "batch_overhead_seconds": overhead,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
            "tensorflow": tf.__version__}


def run_continual_benchmarks(iterations: int = 30, compilers=COMPILERS, data_dir: str | None = None) -> list[dict]:
    rows = []
    for jit in compilers:
        for phase, batch in (("train", 50), ("test", 200)):
            cmd = [sys.executable, "-m", "pipeline.bench_continual", "--child", phase, "--jit", jit,
                   "--iterations", str(iterations), "--batch", str(batch)]
            if data_dir:
                cmd += ["--data-dir", data_dir]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"benchmark {phase} ({jit}) failed: {last}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def projected_seconds(train_row: dict, test_row: dict, train_examples: int, train_iterations: int,
                      test_iterations: int, test_examples: int = 10_000) -> float:
    batches = -(-train_examples // train_row["batch"])
    test_batches = -(-test_examples // test_row["batch"])
    return (batches * (train_iterations * train_row["seconds_per_iteration"] + train_row["batch_overhead_seconds"])
            + test_batches * (test_iterations * test_row["seconds_per_iteration"] + test_row["batch_overhead_seconds"]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=("train", "test"))
    ap.add_argument("--jit", default=None, help="comma list of: " + ", ".join(COMPILERS))
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--train-iterations", type=int, default=None)
    ap.add_argument("--test-iterations", type=int, default=None)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.jit or "layers", args.iterations, args.batch, args.data_dir)))
        return
    from pipeline.continual import load_gbp_config

    config = load_gbp_config("mnist")
    train_its = args.train_iterations or config.train_iterations
    test_its = args.test_iterations or config.test_iterations
    compilers = tuple(args.jit.split(",")) if args.jit else COMPILERS
    rows = run_continual_benchmarks(args.iterations, compilers, args.data_dir)
    print(f"{'jit':>7} {'phase':>6} {'batch':>5} {'s/iteration':>12} {'overhead s':>11} {'peak RSS GB':>12}")
    for r in rows:
        print(f"{r['jit']:>7} {r['phase']:>6} {r['batch']:>5} {r['seconds_per_iteration']:>12.4f} "
              f"{r['batch_overhead_seconds']:>11.3f} {r['peak_rss_gb']:>12.2f}")
    for jit in compilers:
        train = next(r for r in rows if r["jit"] == jit and r["phase"] == "train")
        test = next(r for r in rows if r["jit"] == jit and r["phase"] == "test")
        hours = projected_seconds(train, test, 60_000, train_its, test_its) / 3600
        print(f"projected full run ({jit}): 60,000 examples × {train_its} iterations per batch of 50, "
              f"10,000 test images × {test_its} iterations per batch of 200: {hours:.2f} h")


if __name__ == "__main__":
    main()
