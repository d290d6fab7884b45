"""Video ingest: formats, frame rate, antialiased resize, seeded impulse noise."""
import numpy as np
import pytest

from pipeline.errors import PipelineError
from stages.ingest_video import NoiseSpec, corrupt, iter_video, probe_video, read_video, resize_frame


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv", ".mov", ".gif"])
def test_reads_common_video_containers(tmp_path, suffix):
    import imageio.v2 as imageio

    frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(5)]
    path = tmp_path / f"clip{suffix}"
    if suffix == ".gif":
        imageio.mimsave(path, frames, duration=100, loop=0)
    else:
        with imageio.get_writer(path, fps=12, macro_block_size=1, **({"codec": "mjpeg"} if suffix == ".avi" else {})) as w:
            for f in frames:
                w.append_data(f)
    video = read_video(path)
    assert len(video.frames) == 5
    assert video.frames[0].shape == (32, 48, 3) and video.frames[0].dtype == np.float32
    assert abs(float(video.frames[3].mean()) - 120 / 255) < 0.03
    if suffix != ".gif":
        assert abs(video.fps - 12) < 0.5
    assert len(read_video(path, start=2, count=2).frames) == 2


def test_resize_is_antialiased():
    """A 1-pixel checkerboard downscaled 4× must average to grey, not alias into stripes."""
    board = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)[:, :, None]
    small = resize_frame(board, (16, 16))
    assert small.shape == (16, 16, 1)
    assert np.abs(small - 0.5).max() < 0.05


def test_impulse_noise_hits_the_fraction_of_locations_with_all_channels():
    frame = np.full((200, 300, 3), 0.5, np.float32)
    noisy = corrupt(frame, NoiseSpec.parse("impulse:0.1"), seed=1, frame_index=0)
    hit = np.any(noisy != 0.5, axis=2)
    assert 0.09 < hit.mean() < 0.11
    assert np.all(noisy[hit] != 0.5)  # all channels of a hit location replaced
    np.testing.assert_array_equal(noisy, corrupt(frame, NoiseSpec.parse("impulse:0.1"), 1, 0))
    assert not np.array_equal(noisy, corrupt(frame, NoiseSpec.parse("impulse:0.1"), 1, 1))


@pytest.mark.parametrize("text", ["impulse", "impulse:0", "impulse:1.5", "salt:0.1"])
def test_bad_noise_specs_are_rejected(text):
    with pytest.raises(PipelineError):
        NoiseSpec.parse(text)


def test_frames_of_different_sizes_need_an_explicit_size(tmp_path):
    import cv2

    for i, (h, w) in enumerate([(40, 60), (44, 66), (40, 60)]):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((h, w, 3), 60 * i, np.uint8))
    with pytest.raises(PipelineError, match="give both --height and --width"):
        read_video(tmp_path, height=20)
    video = read_video(tmp_path, height=20, width=30)  # each frame resized as it is read
    assert [f.shape for f in video.frames] == [(20, 30, 3)] * 3
    assert abs(float(video.frames[1].mean()) - 60 / 255) < 1e-3
    assert read_video(tmp_path, start=1, count=1, height=22).frames[0].shape == (22, 33, 3)


def test_a_folder_is_read_in_natural_name_order(tmp_path):
    import cv2

    for number in (1, 2, 10, 11):  # as ffmpeg's %d writes them: 1, 10, 11, 2 in plain string order
        cv2.imwrite(str(tmp_path / f"frame_{number}.png"), np.full((8, 8, 3), 10 * number, np.uint8))
    levels = [round(float(f.mean()) * 255) for f in read_video(tmp_path).frames]
    assert levels == [10, 20, 100, 110]


def test_a_folder_mixing_colour_and_grayscale_is_refused(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "0.png"), np.full((8, 8, 3), 50, np.uint8))
    cv2.imwrite(str(tmp_path / "1.png"), np.full((8, 8), 50, np.uint8))
    with pytest.raises(PipelineError, match="mix colour and grayscale .frame 1"):
        read_video(tmp_path, height=8, width=8)  # a size does not reconcile channels


def test_frames_under_3x3_are_refused_also_without_a_resize(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "0.png"), np.full((2, 40, 3), 50, np.uint8))
    with pytest.raises(PipelineError, match="at least 3×3 pixels, these would be 2×40"):
        read_video(tmp_path)
    assert read_video(tmp_path, height=3, width=40).frames[0].shape == (3, 40, 3)


def test_probe_counts_and_checks_the_frames_that_iter_video_then_streams(tmp_path):
    import cv2

    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((40, 60, 3), 40 * i, np.uint8))
    info = probe_video(tmp_path, start=1, height=20)
    assert (info.count, info.shape, info.fps) == (4, (20, 30, 3), 24.0)
    streamed = iter_video(tmp_path, 1, info.count, *info.shape[:2])
    assert not isinstance(streamed, list)  # a generator: one frame in memory at a time
    np.testing.assert_array_equal(np.stack(list(streamed)), np.stack(read_video(tmp_path, 1, None, 20).frames))
    cv2.imwrite(str(tmp_path / "5.png"), np.full((40, 60), 50, np.uint8))
    with pytest.raises(PipelineError, match="mix colour and grayscale .frame 5"):
        probe_video(tmp_path, start=1, height=20)
