"""Log: the denoised video, preview images and posterior checkpoints written to disk, then
handed to the tracker as artifacts."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """(H,W,C) float in [0,1] (clipped) → (H,W,3) uint8; grayscale is repeated to RGB."""
    image = np.round(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")  # containers that take the H.264 stream written below


def _same_file(a: Path, b: Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file (after symlinks and ``..``; or hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_video_output(path: Path, inputs: tuple[Path | None, ...] = ()) -> None:
    """Fail before any frame is computed if ``path`` cannot become a video: one of the run's
    ``inputs`` (writing would destroy it), a container H.264 does not go into, or a place that
    cannot be written (an existing file is left untouched)."""
    for source in inputs:
        if source is not None and _same_file(path, source):
            raise PipelineError(f"--output {path} is an input of this run and would be overwritten; "
                                f"choose another name")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise PipelineError(f"--output {path}: cannot write H.264 video as {path.suffix!r}; "
                            f"use one of {', '.join(VIDEO_SUFFIXES)}")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise PipelineError(f"cannot write the output video {path} ({exc.strerror or exc}); "
                            f"choose another place with --output") from None
    if not existed:
        path.unlink()


class VideoWriter:
    """Writes frames as they are finished, so an interrupted run keeps what it did (H.264 mp4;
    4:2:0 chroma when both sides are even, 4:4:4 otherwise so no frame is rescaled)."""

    def __init__(self, path: Path, fps: float, height: int, width: int):
        import imageio.v2 as imageio

        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pixel_format = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
            self._writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                              quality=9, macro_block_size=1, pixelformat=pixel_format)
        except OSError as exc:
            raise PipelineError(f"cannot write the output video {path} ({exc.strerror or exc}); "
                                f"choose another place with --output") from None
        self.frames = 0

    def append(self, frame: np.ndarray) -> None:
        self._writer.append_data(to_uint8(frame))
        self.frames += 1

    def close(self) -> None:
        self._writer.close()


def side_by_side(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels (H,W,C) in [0,1] left to right with white gaps, as uint8 RGB."""
    images = [to_uint8(p) for p in panels]
    spacer = np.full((images[0].shape[0], gap, 3), 255, np.uint8)
    row = [images[0]]
    for image in images[1:]:
        row += [spacer, image]
    return np.concatenate(row, axis=1)


def save_png(image: np.ndarray, path: Path) -> Path:
    """Write an RGB uint8 image as PNG."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise PipelineError(f"cannot write image {path}")
    return path


def filters_image(filters: np.ndarray, scale: int = 16) -> np.ndarray:
    """Posterior mean filters (k, k, C, F) as one RGB tile per filter (each normalised to its own
    range, upscaled ``scale``× without smoothing), left to right."""
    k, _, c, f = filters.shape
    tiles = []
    for i in range(f):
        tile = filters[:, :, :3, i] if c >= 3 else np.repeat(filters[:, :, :1, i], 3, axis=2)
        span = tile.max() - tile.min()
        tile = (tile - tile.min()) / span if span > 0 else np.full_like(tile, 0.5)
        tiles.append(np.kron(tile, np.ones((scale, scale, 1))))
    return side_by_side(tiles, gap=scale // 4)


def uncertainty_image(std: np.ndarray) -> np.ndarray:
    """Per-pixel posterior standard deviation (H, W, C), averaged over channels, as a colour map
    (inferno; dark = certain), scaled to the frame's own maximum."""
    import cv2

    mean_std = std.mean(axis=2)
    scaled = np.round(255 * mean_std / max(float(mean_std.max()), 1e-12)).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
