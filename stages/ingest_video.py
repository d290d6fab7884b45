"""Ingest: a video file or a folder of frames → float frames (H, W, C) in [0, 1].

Any file OpenCV or imageio can read (mp4, avi, mov, mkv, gif, …) or a folder of images (sorted
by name).  Frames keep their colour channels (RGB order; grayscale stays 1 channel).  Optional
resize uses antialiased bilinear interpolation (``tf.image.resize(..., antialias=True)``, the
triangle filter PIL's BILINEAR uses when downscaling), because plain ``cv2.INTER_LINEAR``
aliases and moves PSNR by several dB.  Optional synthetic corruption: impulse noise on a
fraction of pixel *locations*, all channels of each replaced by U(0, 1), seeded per frame.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
DEFAULT_FPS = 24.0


@dataclass(frozen=True)
class Video:
    """Frames as float32 arrays (H, W, C) in [0, 1], and the frame rate in frames per second."""

    frames: list[np.ndarray]
    fps: float
    source: str


@dataclass(frozen=True)
class NoiseSpec:
    """Synthetic corruption: ``kind`` is "none" or "impulse"; ``fraction`` of pixel locations."""

    kind: str = "none"
    fraction: float = 0.0

    @staticmethod
    def parse(text: str) -> "NoiseSpec":
        """Parse ``none`` or ``impulse:<fraction in (0, 1]>``."""
        text = text.strip().lower()
        if text == "none":
            return NoiseSpec()
        match = re.fullmatch(r"impulse:([0-9]*\.?[0-9]+)", text)
        if not match or not 0.0 < float(match.group(1)) <= 1.0:
            raise PipelineError(
                f"--noise must be 'none' or 'impulse:<fraction in (0, 1]>' (e.g. impulse:0.1), "
                f"got {text!r}")
        return NoiseSpec("impulse", float(match.group(1)))

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.fraction:g}"


def _to_unit_float(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3:
        raise PipelineError(f"unexpected frame shape {frame.shape}")
    if frame.shape[2] == 4:  # drop alpha
        frame = frame[:, :, :3]
    if np.issubdtype(frame.dtype, np.integer):
        return frame.astype(np.float32) / float(np.iinfo(frame.dtype).max)
    return np.clip(frame.astype(np.float32), 0.0, 1.0)


def _read_folder(folder: Path, start: int, count: int | None) -> Video:
    import cv2

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PipelineError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {folder}")
    files = files[start:] if count is None else files[start:start + count]
    frames = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise PipelineError(f"cannot read image {path}")
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        frames.append(_to_unit_float(image))
    return Video(frames, DEFAULT_FPS, str(folder))


def _read_with_opencv(path: Path, start: int, count: int | None) -> Video | None:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        frames, index = [], 0
        while count is None or len(frames) < count:
            ok, image = capture.read()
            if not ok:
                break
            if index >= start:
                if image.ndim == 3:
                    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                frames.append(_to_unit_float(image))
            index += 1
        if not frames and index == 0:
            return None  # opened but decoded nothing: let imageio try
        return Video(frames, float(fps), str(path))
    finally:
        capture.release()


def _read_with_imageio(path: Path, start: int, count: int | None) -> Video:
    import imageio.v3 as iio

    try:
        meta = iio.immeta(path)
        fps = float(meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") else DEFAULT_FPS))
        frames = []
        for index, image in enumerate(iio.imiter(path)):
            if index < start:
                continue
            if count is not None and len(frames) >= count:
                break
            frames.append(_to_unit_float(np.asarray(image)))
    except Exception as exc:  # imageio raises many types for unreadable input
        raise PipelineError(f"cannot read {path} as a video or image: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return Video(frames, fps, str(path))


def read_video(path: str | os.PathLike, start: int = 0, count: int | None = None) -> Video:
    """Read frames ``start … start+count−1`` of a video file or an image folder."""
    path = Path(path)
    if start < 0:
        raise PipelineError(f"--start must be ≥ 0, got {start}")
    if count is not None and count < 1:
        raise PipelineError(f"--frames must be ≥ 1, got {count}")
    if not path.exists():
        raise PipelineError(f"input not found: {path}")
    if path.is_dir():
        video = _read_folder(path, start, count)
    elif not os.access(path, os.R_OK):
        raise PipelineError(f"input is not readable (permissions): {path}")
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        video = _read_with_imageio(path, start, count)
    else:
        video = _read_with_opencv(path, start, count) or _read_with_imageio(path, start, count)
    if not video.frames:
        raise PipelineError(f"no frames to process in {path} (start {start})")
    shapes = {f.shape for f in video.frames}
    if len(shapes) > 1:
        raise PipelineError(f"frames of {path} differ in size ({sorted(shapes)[:2]}…); use --height/--width")
    return video


def resize_frames(frames: list[np.ndarray], height: int | None, width: int | None) -> list[np.ndarray]:
    """Antialiased bilinear resize to (height, width); a missing side keeps the aspect ratio."""
    if height is None and width is None:
        return frames
    h0, w0 = frames[0].shape[:2]
    if height is None:
        height = max(1, round(h0 * width / w0))
    if width is None:
        width = max(1, round(w0 * height / h0))
    if height < 3 or width < 3:
        raise PipelineError(f"frames must be at least 3×3 pixels, asked for {height}×{width}")
    if (height, width) == (h0, w0):
        return frames
    import tensorflow as tf

    batch = tf.image.resize(np.stack(frames), (height, width), method="bilinear", antialias=True)
    return list(np.clip(batch.numpy(), 0.0, 1.0).astype(np.float32))


def corrupt(frame: np.ndarray, noise: NoiseSpec, seed: int, frame_index: int) -> np.ndarray:
    """Impulse noise: each pixel location is hit with probability ``fraction``; all its channels
    are replaced by independent U(0, 1) draws.  Deterministic in (seed, frame_index)."""
    if noise.kind == "none":
        return frame
    rng = np.random.default_rng([seed, frame_index])
    hit = rng.random(frame.shape[:2]) < noise.fraction
    values = rng.random(frame.shape, dtype=np.float32)
    return np.where(hit[:, :, None], values, frame).astype(np.float32)
