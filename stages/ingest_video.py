"""Ingest: a video file or a folder of frames → float frames (H, W, C) in [0, 1].

Any file OpenCV or imageio can read (mp4, avi, mov, mkv, gif, …) or a folder of images (in
natural name order: frame_2 before frame_10).  Frames keep their colour channels (RGB order;
grayscale stays 1 channel).  Optional resize uses antialiased bilinear interpolation
(``tf.image.resize(..., antialias=True)``, the triangle filter PIL's BILINEAR uses when
downscaling), because plain ``cv2.INTER_LINEAR`` aliases and moves PSNR by several dB.  Optional
synthetic corruption: impulse noise on a fraction of pixel *locations*, all channels of each
replaced by U(0, 1), seeded per frame.

``probe_video`` checks and counts a clip in one pass that keeps nothing, ``iter_video`` then
streams its frames one at a time (memory does not grow with the clip), ``read_video`` lists them
(short clips, tests).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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


def _channels_last(frame: np.ndarray) -> np.ndarray:
    """A decoded image as (H, W, C): grayscale gets a channel axis, alpha is dropped (a view)."""
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3:
        raise PipelineError(f"unexpected frame shape {frame.shape}")
    return frame[:, :, :3] if frame.shape[2] == 4 else frame


def _to_unit_float(frame: np.ndarray) -> np.ndarray:
    """(H, W, C) image of any integer or float type → float32 in [0, 1]."""
    if np.issubdtype(frame.dtype, np.integer):
        return frame.astype(np.float32) / float(np.iinfo(frame.dtype).max)
    return np.clip(frame.astype(np.float32), 0.0, 1.0)


Images = Iterator[np.ndarray]  # decoded frames, as the reader gives them (uint8 or float)


def _natural_order(path: Path) -> list:
    """Sort key that puts frame_2.png before frame_10.png (numbers compared as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", path.name)]


def _folder_images(folder: Path, start: int, count: int | None) -> Images:
    import cv2

    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_order)
    if not files:
        raise PipelineError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {folder}")
    for path in files[start:] if count is None else files[start:start + count]:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise PipelineError(f"cannot read image {path}")
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        yield image


def _opencv_images(path: Path, start: int, count: int | None) -> tuple[float, Images] | None:
    """(fps, frames) if OpenCV decodes at least one frame of ``path``, else None."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        return None  # not a video OpenCV can decode: let imageio try

    def images() -> Images:
        try:
            image, index, given = first, 0, 0
            while image is not None and (count is None or given < count):
                if index >= start:
                    yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image
                    given += 1
                ok, image = capture.read()
                image, index = (image if ok else None), index + 1
        finally:
            capture.release()

    return float(capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS), images()


def _imageio_images(path: Path, start: int, count: int | None) -> tuple[float, Images]:
    import imageio.v3 as iio

    def unreadable(exc: Exception) -> PipelineError:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return PipelineError(f"cannot read {path} as a video or image: {first_line}")

    try:
        meta = iio.immeta(path)
        fps = float(meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") else DEFAULT_FPS))
    except Exception as exc:  # imageio raises many types for unreadable input
        raise unreadable(exc) from None

    def images() -> Images:
        try:
            for index, image in enumerate(iio.imiter(path)):
                if count is not None and index >= start + count:
                    break
                if index >= start:
                    yield np.asarray(image)
        except Exception as exc:
            raise unreadable(exc) from None

    return fps, images()


@dataclass(frozen=True)
class VideoInfo:
    """What a pass over a video found: the number of frames (from ``start``), the shape (H, W, C)
    they are read at and the frame rate in frames per second."""

    count: int
    shape: tuple[int, int, int]
    fps: float
    source: str


def _decoded(path: Path, start: int, count: int | None) -> tuple[float, Images]:
    """(fps, decoded images ``start … start+count−1``) of a video file or an image folder."""
    if start < 0:
        raise PipelineError(f"--start must be ≥ 0, got {start}")
    if count is not None and count < 1:
        raise PipelineError(f"--frames must be ≥ 1, got {count}")
    if not path.exists():
        raise PipelineError(f"input not found: {path}")
    if path.is_dir():
        return DEFAULT_FPS, _folder_images(path, start, count)
    if not os.access(path, os.R_OK):
        raise PipelineError(f"input is not readable (permissions): {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _imageio_images(path, start, count)
    return _opencv_images(path, start, count) or _imageio_images(path, start, count)


def _checked(path: Path, images: Images, start: int, height: int | None, width: int | None,
             resize: bool) -> Iterator[np.ndarray]:
    """Decoded images → float frames (H, W, C) in [0, 1] resized to the size ``target_size``
    gives the first (``resize`` false: the images as decoded, only checked, which is cheap).
    Refuses a clip mixing colour and grayscale, or frames of differing sizes unless both
    ``height`` and ``width`` are given."""
    first_shape, size, index = None, None, start
    for image in images:
        frame = _channels_last(image)
        if first_shape is None:
            first_shape, size = frame.shape, target_size(frame.shape[:2], height, width)
        elif frame.shape[2] != first_shape[2]:
            raise PipelineError(f"frames of {path} mix colour and grayscale (frame {index} "
                                f"has {frame.shape[2]} channel(s), the first {first_shape[2]}); "
                                f"convert them to one kind")
        elif frame.shape != first_shape and (height is None or width is None):
            raise PipelineError(f"frames of {path} differ in size ({first_shape} and {frame.shape}); "
                                f"give both --height and --width")
        yield resize_frame(_to_unit_float(frame), size) if resize else frame
        index += 1
    if first_shape is None:
        raise PipelineError(f"no frames to process in {path} (start {start})")


def probe_video(path: str | os.PathLike, start: int = 0, count: int | None = None,
                height: int | None = None, width: int | None = None) -> VideoInfo:
    """Decode frames ``start … start+count−1`` once without keeping them: their number, the shape
    ``iter_video`` gives them (see ``target_size``) and the frame rate, with every check
    ``iter_video`` makes, so that a bad clip is refused before any work starts."""
    path = Path(path)
    fps, images = _decoded(path, start, count)
    n, shape = 0, None
    for frame in _checked(path, images, start, height, width, resize=False):
        if shape is None:
            shape = (*target_size(frame.shape[:2], height, width), frame.shape[2])
        n += 1
    return VideoInfo(n, shape, fps, str(path))


def iter_video(path: str | os.PathLike, start: int = 0, count: int | None = None,
               height: int | None = None, width: int | None = None) -> Iterator[np.ndarray]:
    """Frames ``start … start+count−1`` of a video file or an image folder, one at a time,
    resized to ``height`` × ``width`` (see ``target_size``) as each is decoded: memory holds one
    frame, however long the video (a minute of 30 fps full-HD video is 45 GB as float frames)."""
    path = Path(path)
    _, images = _decoded(path, start, count)
    return _checked(path, images, start, height, width, resize=True)


def read_video(path: str | os.PathLike, start: int = 0, count: int | None = None,
               height: int | None = None, width: int | None = None) -> Video:
    """All frames of ``iter_video`` in a list, with the frame rate (for short clips and tests)."""
    path = Path(path)
    fps, images = _decoded(path, start, count)
    return Video(list(_checked(path, images, start, height, width, resize=True)), fps, str(path))


def target_size(shape: tuple[int, int], height: int | None, width: int | None) -> tuple[int, int]:
    """(height, width) to resize a ``shape`` frame to; a missing side keeps the aspect ratio.
    Frames smaller than 3×3 (resized or not) are refused: no denoiser has a neighbourhood there."""
    h0, w0 = shape
    if height is None and width is None:
        height, width = h0, w0
    elif height is None:
        height = max(1, round(h0 * width / w0))
    elif width is None:
        width = max(1, round(w0 * height / h0))
    if height < 3 or width < 3:
        raise PipelineError(f"frames must be at least 3×3 pixels, these would be {height}×{width}")
    return height, width


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of one (H, W, C) frame to ``size`` = (height, width)."""
    if tuple(size) == frame.shape[:2]:
        return frame
    import tensorflow as tf

    resized = tf.image.resize(frame[None], size, method="bilinear", antialias=True)[0]
    return np.clip(resized.numpy(), 0.0, 1.0).astype(np.float32)


def corrupt(frame: np.ndarray, noise: NoiseSpec, seed: int, frame_index: int) -> np.ndarray:
    """Impulse noise: each pixel location is hit with probability ``fraction``; all its channels
    are replaced by independent U(0, 1) draws.  Deterministic in (seed, frame_index)."""
    if noise.kind == "none":
        return frame
    rng = np.random.default_rng([seed, frame_index])
    hit = rng.random(frame.shape[:2]) < noise.fraction
    values = rng.random(frame.shape, dtype=np.float32)
    return np.where(hit[:, :, None], values, frame).astype(np.float32)
