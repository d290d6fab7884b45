"""The paper's protocol for the message-passing baselines (Lucibello et al. 2022), as a benchmark.

Full protocol (hours on a 2-core CPU), MNIST, 784-501-501-10 and 784-501-501-1, batch 128::

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/binary_mp_protocol.py \\
        --data-dir ../shared/data/mnist

runs 10-class AMP and MF for 100 epochs, 10-class BP for 10 epochs and 2-class (odd vs even)
AMP for 100 epochs, printing after every epoch and finally per run: test error (%, pointwise
and Bayesian), train error and mean seconds per epoch. Published targets (issue 5): 10-class
AMP <= 2.7 %, MF <= 2.4 %, 2-class AMP <= 1.6 %.

Shorter variants, e.g. the one-epoch acceptance check of issue 5::

    .venv/bin/python benchmarks/binary_mp_protocol.py --data-dir ../shared/data/mnist \\
        --runs bp,amp,mf --epochs 1 --bp-epochs 1 --test-size 2000 --seed 1

``--runs`` picks among ``amp``, ``mf``, ``bp`` (10-class) and ``amp2`` (2-class AMP);
``--train-size``/``--test-size`` truncate the data (training subset via ``train_subset``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.baselines.binary_mp import load_config, train_binary_mp  # noqa: E402
from pipeline.datasets import load_dataset, train_subset  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402

RUNS = {  # name: (method, task)
    "amp": ("amp", "10class"),
    "mf": ("mf", "10class"),
    "bp": ("bp", "10class"),
    "amp2": ("amp", "2class"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="amp,mf,bp,amp2", help="comma list of amp,mf,bp,amp2")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of amp, mf and amp2")
    parser.add_argument("--bp-epochs", type=int, default=10, help="epochs of bp")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--hidden", default="501,501")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        runs = [r.strip() for r in args.runs.split(",") if r.strip()]
        bad = [r for r in runs if r not in RUNS]
        if bad:
            raise PipelineError(f"unknown run(s) {', '.join(bad)}; use amp, mf, bp, amp2")
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
        import pipeline

        print(f"pipeline imported from {Path(pipeline.__file__).parent}", flush=True)
        ds = train_subset(load_dataset(args.dataset, args.data_dir), args.train_size, args.seed)
        n_test = args.test_size if args.test_size is not None else len(ds.x_test)
        x_test, y_test = ds.x_test[:n_test], ds.y_test[:n_test]
        summary = []
        for run in runs:
            method, task = RUNS[run]
            epochs = args.bp_epochs if run == "bp" else args.epochs
            config = load_config(method, task=task, epochs=epochs, hidden=hidden, seed=args.seed)

            def report(epoch, seen, m, run=run):
                print(
                    f"{run:5s} epoch {epoch + 1:3d} seen {seen:8d}  "
                    f"test err {100 * (1 - m['test_accuracy']):6.2f}%  "
                    f"bayes {100 * (1 - m['test_accuracy_bayes']):6.2f}%  "
                    f"train err {100 * (1 - m['train_accuracy']):6.2f}%  "
                    f"{m['seconds_per_epoch']:7.1f} s/epoch  {m['cpu_seconds_per_epoch']:7.1f} cpu s",
                    flush=True,
                )

            start = time.perf_counter()
            result = train_binary_mp(config, ds.x_train, ds.y_train, x_test, y_test, report)
            wall = time.perf_counter() - start
            secs = sum(h["seconds_per_epoch"] for h in result.history) / len(result.history)
            cpu = sum(h["cpu_seconds_per_epoch"] for h in result.history) / len(result.history)
            summary.append((run, task, epochs, result.metrics, secs, cpu, wall))
        print("\nrun   task     epochs  test_acc  test_acc_bayes  train_acc  test_err%  s/epoch  cpu_s/epoch  wall_s")
        for run, task, epochs, m, secs, cpu, wall in summary:
            print(
                f"{run:5s} {task:8s} {epochs:6d}  {m['test_accuracy']:.4f}    {m['test_accuracy_bayes']:.4f}"
                f"          {m['train_accuracy']:.4f}     {100 * (1 - m['test_accuracy']):6.2f}  "
                f"{secs:7.1f}  {cpu:11.1f}  {wall:6.0f}"
            )
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
