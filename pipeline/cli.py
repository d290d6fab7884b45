"""The ``pipeline`` command line (typer + rich): denoise, ui, bench.

Every user-fixable problem ends as one line ``error: …`` on stderr and exit status 2; Ctrl-C
ends with status 130 after the open MLflow runs are marked KILLED.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported anywhere
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # OpenCV's ffmpeg: quiet on unreadable files

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from pipeline import interrupt
from pipeline.errors import PipelineError

app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Learn and denoise by Gaussian belief propagation in deep factor graphs.")
out = Console()
err = Console(stderr=True)

TrackingUri = typer.Option(None, "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db).")


PSNR_LINE_FRAMES = 30  # longer clips get min and max instead of a line of every frame's PSNR


@app.command()
def denoise(
    input: Optional[Path] = typer.Argument(None, help="Video file or folder of frames (default: the embedded bear sample, with impulse:0.1 noise added)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Comma list of methods: configs/denoise/<name>.yaml (single_layer, five_layer, pairwise, median3, median5) or YAML paths [default: five_layer]."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output video, or a folder for it (default: <input>.denoised.mp4 next to the input)."),
    height: Optional[int] = typer.Option(None, help="Resize frames to this height (antialiased bilinear)."),
    width: Optional[int] = typer.Option(None, help="Resize frames to this width (antialiased bilinear)."),
    start: int = typer.Option(0, help="First frame index."),
    frames: Optional[int] = typer.Option(None, help="Number of frames (default: all)."),
    noise: Optional[str] = typer.Option(None, help="'none' (input is already noisy) or impulse:<fraction>, e.g. impulse:0.1."),
    seed: int = typer.Option(0, help="Seed of the synthetic noise, of the learned models' random initialisation and of message dropout."),
    reference: Optional[Path] = typer.Option(None, help="Clean version of the same video, for PSNR/SSIM."),
    iterations: Optional[int] = typer.Option(None, help="GBP iterations per frame (overrides the config)."),
    device: str = typer.Option("auto", help="auto (a GPU when TensorFlow sees one), cpu or gpu."),
    no_carry: bool = typer.Option(False, "--no-carry", help="Learn every frame afresh from the original prior, or from --prior-from's (no posterior carried)."),
    prior_from: Optional[str] = typer.Option(None, help="Start from a saved parameter posterior: a .npz file or an MLflow run id (its last frame); "
                                                             "--start N --prior-from RUN_ID continues an interrupted run."),
    tracking_uri: Optional[str] = TrackingUri,
    experiment: str = typer.Option("denoise", help="MLflow experiment name."),
) -> None:
    """Denoise a video; log PSNR/SSIM per frame, timings and the output video to MLflow."""
    from pipeline.denoise import DenoiseRequest, run_denoise
    from pipeline.device import select_device

    request = DenoiseRequest(input, model, output, height, width, start, frames, noise, seed,
                             reference, iterations, device, tracking_uri, experiment,
                             carry=not no_carry, prior_from=prior_from)
    device_name = select_device(device)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as progress:
        tasks: dict[str, int] = {}

        def on_frame(method: str, done: int, total: int) -> None:
            if method not in tasks:
                tasks[method] = progress.add_task(f"{method:>12}", total=total)
            progress.update(tasks[method], completed=done)

        summaries = run_denoise(request, device_name, on_frame)
    table = Table(title=f"denoise on {device_name}")
    for column in ("method", "frames", "PSNR mean (dB)", "SSIM mean", "s / iteration", "seconds"):
        table.add_column(column)
    for s in summaries:
        psnr = f"{sum(s.psnr) / len(s.psnr):.2f}" if s.psnr else "–"
        ssim = f"{sum(s.ssim) / len(s.ssim):.4f}" if s.ssim else "–"
        spi = f"{s.seconds_per_iteration:.4f}" if s.seconds_per_iteration else "–"
        table.add_row(s.method, str(s.frames), psnr, ssim, spi, f"{s.seconds_total:.1f}")
    out.print(table)
    for s in summaries:
        if len(s.psnr) > PSNR_LINE_FRAMES:
            out.print(f"{s.method} PSNR over {len(s.psnr)} frames (dB): min {min(s.psnr):.2f}, "
                      f"max {max(s.psnr):.2f} (per frame in MLflow)")
        elif s.psnr:
            out.print(f"{s.method} PSNR per frame (dB): " + " ".join(f"{p:.2f}" for p in s.psnr))
        out.print(f"{s.method} video: {s.output}  (MLflow run {s.run_id})", soft_wrap=True)


from pipeline.cli_continual import continual  # noqa: E402

app.command("continual")(continual)


@app.command()
def ui(
    tracking_uri: Optional[str] = TrackingUri,
    port: int = typer.Option(5000, help="Port of the MLflow UI."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
) -> None:
    """Open the MLflow UI on the same store the runs are logged to."""
    import socket
    import subprocess

    from pipeline.tracking import check_store_to_browse, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    check_store_to_browse(uri)
    with socket.socket() as probe:  # MLflow's server would only log the clash and keep running
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PipelineError(f"cannot serve the UI on {host}:{port}: {exc.strerror or exc}; choose another --port or --host") from None
    err.print(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)")
    raise typer.Exit(subprocess.call([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                                      "--host", host, "--port", str(port)]))


@app.command()
def bench(
    sizes: str = typer.Option("258x454,129x227", help="Comma list of HEIGHTxWIDTH frame sizes (3 channels)."),
    model: str = typer.Option("pairwise,single_layer,five_layer", "--model", "-m", help="Comma list of GBP methods."),
    iterations: int = typer.Option(20, help="Timed iterations per configuration (after a warm-up frame)."),
    compilers: str = typer.Option("xla,plain", help="xla, plain (tf.function) or both."),
) -> None:
    """Seconds per GBP iteration and peak resident memory, one fresh process per configuration."""
    from pipeline.bench import run_benchmarks

    chosen = tuple(c.strip() for c in compilers.split(","))
    if not chosen or not set(chosen) <= {"xla", "plain"}:
        raise PipelineError(f"--compilers takes xla and/or plain, got {compilers!r}")
    rows = run_benchmarks(model, sizes, iterations, chosen)
    table = Table(title="GBP per iteration, steady state (peak GB = resident set; MB/iter = float32 traffic)")
    for column in ("method", "frame", "compiler", "s/iter", "CPU s/iter", "peak GB", "MB/iter"):
        table.add_column(column, no_wrap=True)
    for r in rows:
        table.add_row(r["method"], r["frame"], r["compiler"].replace("tf.function", "plain"), f"{r['seconds_per_iteration']:.4f}",
                      f"{r['cpu_seconds_per_iteration']:.4f}", f"{r['peak_rss_gb']:.2f}", f"{r['mb_per_iteration']:.0f}")
    out.print(table)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with fd 2 silenced: its C++ runtime prints INFO lines (oneDNN, CUDA
    stubs) before its logging is initialised, which TF_CPP_MIN_LOG_LEVEL cannot suppress."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


INTERRUPTED = 130


def _fail(message: str, code: int) -> None:
    """One plain line on stderr (never wrapped or boxed), then exit."""
    print(message, file=sys.stderr)
    sys.exit(code)


def main() -> None:
    """Entry point: run the typer app, turning every expected failure into one line."""
    interrupt.install()
    if not {"-h", "--help"} & set(sys.argv[1:]) and len(sys.argv) > 1 and sys.argv[1] != "ui":
        _import_tensorflow_quietly()
    try:
        code = app(standalone_mode=False)
    except PipelineError as exc:
        _fail(f"error: {exc}", 2)
    except typer.TyperException as exc:  # usage errors: bad option, missing value …
        ctx = getattr(exc, "ctx", None)
        _fail(f"error: {exc.format_message()} (see '{ctx.command_path if ctx else 'pipeline'} --help')", 2)
    except (KeyboardInterrupt, typer.Abort):
        code = INTERRUPTED
    except MemoryError:
        _fail("error: out of memory; use --height/--width for smaller frames", 2)
    except Exception as exc:  # an unexpected failure: still one line, unless debugging
        if os.environ.get("PIPELINE_DEBUG"):
            raise
        if type(exc).__name__ == "ResourceExhaustedError":
            _fail("error: out of memory; use --height/--width for smaller frames", 2)
        first = (str(exc).strip().splitlines() or [""])[0]
        _fail(f"error: internal error {type(exc).__name__}: {first} (PIPELINE_DEBUG=1 shows the traceback)", 1)
    if code == INTERRUPTED:  # typer turns Ctrl-C into exit code 130
        hints = "".join(f"; {hint}" for hint in interrupt.resume_hints())
        _fail(f"interrupted: open runs were marked KILLED; what they finished (frames, batches) was kept{hints}",
              INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
