"""One ``pipeline denoise`` run: ingest → (per method) build graph → infer frame by frame →
evaluate → log, under one MLflow parent run with a child run per method.

Every method sees the same noisy frames.  Frames are written and logged as they finish, so an
interrupted run (Ctrl-C) keeps its finished frames and is marked KILLED.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pipeline.config import flatten, to_yaml, with_overrides
from pipeline.errors import PipelineError
from pipeline.interrupt import add_resume_hint, raise_if_interrupted
from pipeline.methods import DEFAULT_METHOD, DeepMethod, load_method, parse_method_list
from pipeline.tracking import Tracker
from stages.carry_posterior import POSTERIOR_FOLDER, check_posterior_fits, load_posterior, save_posterior
from stages.evaluate import image_quality
from stages.infer import frame_denoiser
from stages.ingest_video import NoiseSpec, corrupt, iter_video, probe_video
from stages.log import (VideoWriter, check_video_output, filters_image, save_png, side_by_side,
                        uncertainty_image)

EMBEDDED_SAMPLE = Path(__file__).resolve().parent / "data" / "bear_sample"
MAX_PREVIEWS = 20  # preview images per run, see preview_frames


@dataclass
class DenoiseRequest:
    """Everything a user chose for one run (CLI flags, already parsed)."""

    input: Path | None = None  # None: the embedded sample, corrupted with impulse:0.1
    methods: str | None = None  # None: DEFAULT_METHOD
    output: Path | None = None
    height: int | None = None
    width: int | None = None
    start: int = 0
    frames: int | None = None
    noise: str | None = None  # default: none (impulse:0.1 for the embedded sample)
    seed: int = 0
    reference: Path | None = None
    iterations: int | None = None
    device: str = "auto"
    tracking_uri: str | None = None
    experiment: str = "denoise"
    carry: bool = True  # False (--no-carry): learn every frame from the original prior
    prior_from: str | None = None  # a saved posterior (.npz) or an MLflow run id that saved one


@dataclass
class MethodSummary:
    method: str
    run_id: str
    output: Path
    frames: int = 0
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    psnr_noisy: list[float] = field(default_factory=list)
    seconds_per_iteration: float | None = None
    seconds_total: float = 0.0


@dataclass(frozen=True)
class FrameSource:
    """The frames every method denoises and the clean frames to score them against.

    ``frames()`` reads them from disk afresh for every method, one at a time, so memory holds one
    frame however long the video; the noise is seeded per frame index, so every pass yields the
    same noisy frames.  Counts, shapes and readability were checked when it was made."""

    input: Path
    reference: Path | None
    noise: NoiseSpec
    seed: int
    start: int
    count: int  # frames from ``start``
    shape: tuple[int, int, int]  # (H, W, C) after resizing
    fps: float
    name: str  # stem for default output names
    folder: Path  # where default outputs go

    @property
    def scored(self) -> bool:
        """Whether clean frames exist: a --reference, or synthetic noise added to the input."""
        return self.reference is not None or self.noise.kind != "none"

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(noisy, clean or None) for each frame, in order."""
        h, w, _ = self.shape
        inputs = iter_video(self.input, self.start, self.count, h, w)
        references = iter_video(self.reference, self.start, self.count, h, w) if self.reference else None
        for i, frame in enumerate(inputs):
            clean = next(references) if references is not None else (frame if self.scored else None)
            yield corrupt(frame, self.noise, self.seed, self.start + i), clean


def prepare_frames(req: DenoiseRequest) -> FrameSource:
    """Ingest stage for a run: one pass over the input (and the reference) that counts and
    checks the frames; they are then read, resized and corrupted as each method needs them."""
    embedded = req.input is None
    noise = NoiseSpec.parse(req.noise or ("impulse:0.1" if embedded else "none"))
    path = EMBEDDED_SAMPLE if embedded else req.input
    video = probe_video(path, req.start, req.frames, req.height, req.width)
    if req.reference is not None:
        ref = probe_video(req.reference, req.start, video.count, *video.shape[:2])
        if ref.count != video.count:
            raise PipelineError(f"--reference has {ref.count} frames from --start {req.start}, "
                                f"the input has {video.count}")
        if ref.shape != video.shape:
            raise PipelineError(f"--reference frames are {ref.shape}, input frames {video.shape}")
    if embedded:
        name, folder = "bear_sample", Path.cwd()
    else:
        name, folder = (path.stem if path.is_file() else path.name), path.parent
    return FrameSource(path, req.reference, noise, req.seed, req.start, video.count, video.shape, video.fps,
                       name, folder)


def preview_frames(count: int) -> set[int]:
    """Frame indices that get preview images: every 10th of a short clip, at most MAX_PREVIEWS
    spread evenly over a long one, and always the first and the last."""
    every = max(10, -(-(count - 1) // (MAX_PREVIEWS - 1)))
    return set(range(0, count, every)) | {count - 1}


def output_path(req: DenoiseRequest, source: FrameSource, method: str, several: bool) -> Path:
    """``<name>.denoised.mp4`` next to the input, or in ``--output`` when it is a folder
    (``<name>.<method>.denoised.mp4`` per method when several are run); an ``--output`` file
    likewise gets the method before its suffix."""
    if req.output is not None and not req.output.is_dir():
        out = req.output if req.output.suffix else req.output.with_suffix(".mp4")
        return out.with_name(f"{out.stem}.{method}{out.suffix}") if several else out
    middle = f".{method}" if several else ""
    return (req.output or source.folder) / f"{source.name}{middle}.denoised.mp4"


def _resolved_methods(req: DenoiseRequest):
    configs = {}
    for name in parse_method_list(DEFAULT_METHOD if req.methods is None else req.methods):
        config = load_method(name)
        if config.is_gbp and req.iterations is not None:
            if req.iterations < 1:
                raise PipelineError(f"--iterations must be ≥ 1, got {req.iterations}")
            config = with_overrides(config, iterations=req.iterations)
        if isinstance(config, DeepMethod) and not req.carry:
            config = with_overrides(config, carry=with_overrides(config.carry, enabled=False))
        configs[name] = config
    learned = any(isinstance(c, DeepMethod) for c in configs.values())
    if req.prior_from and not learned:
        raise PipelineError("--prior-from needs a learned model (e.g. --model single_layer)")
    if not req.carry and not learned:
        raise PipelineError("--no-carry needs a learned model (e.g. --model single_layer)")
    if req.iterations is not None and not any(c.is_gbp for c in configs.values()):
        raise PipelineError("--iterations needs a GBP model (pairwise, single_layer, five_layer)")
    return configs


def run_denoise(req: DenoiseRequest, device_name: str,
                on_frame: Callable[[str, int, int], None] = lambda method, done, total: None
                ) -> list[MethodSummary]:
    """Run every requested method over the frames; return one summary per method."""
    configs = _resolved_methods(req)  # validate configs before touching data or the store
    source = prepare_frames(req)
    for name in configs:
        check_video_output(output_path(req, source, name, len(configs) > 1), (req.input, req.reference))
    h, w, c = source.shape
    denoisers = {name: frame_denoiser(name, config, req.seed) for name, config in configs.items()}
    for denoise in denoisers.values():
        denoise.check_frame((h, w, c))
    tracker = Tracker(req.tracking_uri, req.experiment)
    if req.prior_from:  # read and checked before any run starts
        _start_from_posterior(load_posterior(req.prior_from, tracker), req.prior_from, denoisers, c)
    settings = {"input": str(req.input or "embedded:bear_sample"), "noise": req.noise or "",
                "seed": req.seed, "start": req.start, "frames": source.count, "height": h,
                "width": w, "channels": c, "device": device_name, "fps": source.fps,
                "reference": str(req.reference or ""), "prior_from": str(req.prior_from or "")}
    names = list(configs)
    several = len(names) > 1
    summaries = []  # each denoiser is popped, so a finished method's last GBP state is freed before the next runs
    if several:
        with tracker.run(f"denoise {','.join(names)}", {"method": ",".join(names)}) as parent_id:
            tracker.log_params(parent_id, settings)
            for name in names:
                summaries.append(_run_method(tracker, name, configs[name], denoisers.pop(name), source, req,
                                             settings, output_path(req, source, name, True), parent_id,
                                             on_frame))
    else:
        name = names[0]
        summaries.append(_run_method(tracker, name, configs[name], denoisers.pop(name), source, req, settings,
                                     output_path(req, source, name, False), None, on_frame))
    return summaries


def _start_from_posterior(posterior, source: str, denoisers, channels: int) -> None:
    """Every learned model starts from ``posterior`` (``--prior-from``), once it is known to fit."""
    for denoise in denoisers.values():
        if isinstance(denoise.config, DeepMethod):
            check_posterior_fits(posterior, denoise.model.original_prior(channels), source)
            denoise.start_from(posterior, channels)


def _run_method(tracker, name, config, denoise, source: FrameSource, req, settings, out: Path,
                parent_id, on_frame) -> MethodSummary:
    with tracker.run(name, {"method": name}, parent_id) as run_id:
        tracker.log_params(run_id, {**settings, **flatten(config)})
        tracker.log_text(run_id, to_yaml(config) + "\n# run settings\n" +
                         "".join(f"# {k}: {v}\n" for k, v in settings.items()), "config/resolved.yaml")
        summary = MethodSummary(name, run_id, out)
        h, w, _ = source.shape
        writer = VideoWriter(out, source.fps, h, w)
        scratch_dir = tempfile.TemporaryDirectory(prefix="pipeline-")
        previews = preview_frames(source.count)
        steady_seconds, steady_iterations = 0.0, 0
        started = time.perf_counter()
        scratch = Path(scratch_dir.name)
        try:
            on_frame(name, 0, source.count)  # the progress bar shows while the first frame runs
            for i, (noisy, clean) in enumerate(source.frames()):
                raise_if_interrupted()
                outcome = denoise(noisy)
                if not np.isfinite(outcome.estimate).all():
                    raise PipelineError(f"{name} diverged on frame {i}: its GBP messages became non-finite "
                                        f"(the frames before it are kept); more damping in its config usually helps")
                writer.append(outcome.estimate)
                summary.frames = i + 1  # in the video now: kept even if Ctrl-C lands while it is logged
                if i > 0 or source.count == 1:
                    steady_seconds += outcome.seconds
                    steady_iterations += outcome.iterations
                metrics = {}
                if clean is not None:
                    quality = image_quality(outcome.estimate, clean)
                    metrics = {**quality, "psnr_noisy": image_quality(noisy, clean)["psnr"]}
                    summary.psnr.append(quality["psnr"])
                    summary.ssim.append(quality["ssim"])
                    summary.psnr_noisy.append(metrics["psnr_noisy"])
                metrics["seconds_frame"] = outcome.seconds
                tracker.log_metrics(run_id, metrics, step=i)
                if outcome.posterior:
                    npz = save_posterior(outcome.posterior, scratch / f"frame_{i:05d}.npz")
                    tracker.log_artifact(run_id, npz, POSTERIOR_FOLDER)
                if i in previews:
                    panels = [noisy, outcome.estimate] + ([clean] if clean is not None else [])
                    png = save_png(side_by_side(panels), scratch / f"frame_{i:05d}.png")
                    tracker.log_artifact(run_id, png, "previews")
                    if outcome.std is not None:
                        png = save_png(uncertainty_image(outcome.std), scratch / f"std_{i:05d}.png")
                        tracker.log_artifact(run_id, png, "uncertainty")
                    if "filters_0" in outcome.posterior:
                        image = filters_image(outcome.posterior["filters_0"].mean.numpy())
                        tracker.log_artifact(run_id, save_png(image, scratch / f"filters_{i:05d}.png"), "filters")
                on_frame(name, i + 1, source.count)
        except KeyboardInterrupt:
            if summary.frames and isinstance(config, DeepMethod):
                left = f" --frames {req.frames - summary.frames}" if req.frames else ""
                add_resume_hint(f"to continue {name}, run the same command with --start {req.start + summary.frames}"
                                f"{left} --prior-from {run_id}")
            raise
        finally:
            writer.close()
            scratch_dir.cleanup()
            summary.seconds_total = time.perf_counter() - started
            if summary.frames:
                tracker.log_artifact(run_id, out, "video")
            final = {"seconds_total": summary.seconds_total, "frames_done": summary.frames}
            if steady_iterations:
                summary.seconds_per_iteration = steady_seconds / steady_iterations
                final["seconds_per_iteration"] = summary.seconds_per_iteration
            if summary.psnr:
                final.update(psnr_mean=float(np.mean(summary.psnr)), ssim_mean=float(np.mean(summary.ssim)),
                             psnr_noisy_mean=float(np.mean(summary.psnr_noisy)))
            tracker.log_metrics(run_id, final)
        return summary
