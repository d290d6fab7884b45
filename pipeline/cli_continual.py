"""``pipeline continual``: continual image classification (registered in pipeline.cli)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

out = Console()
err = Console(stderr=True)


def continual(
    dataset: str = typer.Argument(..., help="mnist or fashion_mnist."),
    method: str = typer.Option("gbp,linear,cnn", "--method", "-m", help="Comma list of gbp, linear, cnn, bp, amp, mf."),
    train_size: Optional[int] = typer.Option(None, help="Train on the first N examples of a permutation seeded by --seed (default: all)."),
    test_size: Optional[int] = typer.Option(None, help="Evaluate on the first N test images (default: all 10,000)."),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every K training examples (default: once, at the end)."),
    seed: int = typer.Option(0, help="Seed of the training order, the initial weights and message dropout."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with mnist.npz / fashion_mnist.npz or the four IDX files (default: the Keras cache, then a download)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)."),
    experiment: str = typer.Option("continual", help="MLflow experiment name."),
    device: str = typer.Option("auto", help="auto (a GPU when TensorFlow sees one), cpu or gpu."),
    iterations: Optional[int] = typer.Option(None, help="GBP iterations per training batch (overrides the config)."),
    test_iterations: Optional[int] = typer.Option(None, help="GBP iterations per test batch (overrides the config)."),
    config: Optional[str] = typer.Option(None, help="GBP config: a name under configs/continual/ or a YAML path (default: <dataset>_gbp or mnist_gbp)."),
    prior_from: Optional[str] = typer.Option(None, help="Start GBP from a saved parameter posterior: a posterior.npz path or an MLflow run id."),
    hidden: Optional[str] = typer.Option(None, help="bp/amp/mf: hidden widths, e.g. 501,501."),
    task: Optional[str] = typer.Option(None, help="bp/amp/mf: 10class or 2class (odd vs even)."),
    epochs: Optional[int] = typer.Option(None, help="bp/amp/mf: passes over the training set (default 1 = the continual single pass, "
                                         "from configs/baselines/binary_mp.yaml; the paper's protocol is 100). gbp and cnn always "
                                         "learn in one pass and linear keeps its config's epochs, so --epochs needs bp, amp or mf."),
) -> None:
    """Learn a classifier in one pass, minibatch by minibatch; log test accuracy, NLL and timings to MLflow."""
    from pipeline.continual import ContinualRequest, run_continual
    from pipeline.device import select_device

    request = ContinualRequest(dataset, method, train_size, test_size, eval_every, seed, data_dir, tracking_uri,
                               experiment, iterations, test_iterations, config, prior_from, hidden, task, epochs)
    device_name = select_device(device)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=err,
                        transient=False)
    tasks: dict[str, int] = {}

    def on_progress(name: str, done: int, total: int | None) -> None:
        if not tasks:  # started lazily: input errors stay one line on stderr
            progress.start()
        if name not in tasks:
            tasks[name] = progress.add_task(f"{name:>8}", total=total)
        progress.update(tasks[name], completed=done, total=total)

    try:
        outcomes = run_continual(request, device_name, on_progress)
    finally:
        if tasks:
            progress.stop()
    table = Table(title=f"continual {dataset} on {device_name}")
    for column in ("method", "examples", "test accuracy", "test NLL", "s / iteration", "s / test iteration", "seconds"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(o.method, str(o.examples),
                      f"{o.test_accuracy:.4f}" if o.test_accuracy is not None else "–",
                      f"{o.test_nll:.4f}" if o.test_nll is not None else "–",
                      f"{o.seconds_per_iteration:.4f}" if o.seconds_per_iteration else "–",
                      f"{o.seconds_per_test_iteration:.4f}" if o.seconds_per_test_iteration else "–",
                      f"{o.seconds_total:.1f}")
    out.print(table)
    for o in outcomes:
        out.print(f"{o.method} test_accuracy={o.test_accuracy if o.test_accuracy is not None else float('nan'):.4f} "
                  f"(MLflow run {o.run_id})", soft_wrap=True)
