"""`pipeline denoise` end to end on small inputs: outputs, MLflow records, failure behaviour."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from cli_helpers import assert_one_line_error, run_cli, runs_by_method
from stages.infer import FrameOutcome
from stages.ingest_video import read_video


def test_embedded_demo_logs_parent_and_child_runs(tmp_path, tracking_uri, capsys):
    out = tmp_path / "out.mp4"
    code, stdout, stderr = run_cli(["denoise", "--model", "pairwise,median3", "--frames", 2,
                                    "--tracking-uri", tracking_uri, "--experiment", "demo",
                                    "--output", out], capsys)
    assert code == 0, stderr
    client, runs = runs_by_method(tracking_uri, "demo")
    assert set(runs) == {"pairwise,median3", "pairwise", "median3"}
    parent = runs["pairwise,median3"]
    for name in ("pairwise", "median3"):
        run = runs[name]
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "psnr")]
        assert steps == [0, 1]
        for key in ("psnr_mean", "ssim_mean", "psnr_noisy_mean", "seconds_total"):
            assert key in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"video", "previews", "config"} <= artifacts
        video = read_video(tmp_path / f"out.{name}.mp4")
        assert len(video.frames) == 2 and video.frames[0].shape == (258, 454, 3)
    pairwise, median = runs["pairwise"].data, runs["median3"].data
    assert pairwise.params["graph.smoothness_sigma"] == "1.3"
    assert "seconds_per_iteration" in pairwise.metrics
    # 10% impulse noise is ~18.7 dB; both must clean it up, the GBP smoother clearly better
    assert pairwise.metrics["psnr_mean"] > pairwise.metrics["psnr_noisy_mean"] + 9
    assert pairwise.metrics["psnr_mean"] > median.metrics["psnr_mean"] + 1.5
    assert "pairwise PSNR per frame" in stdout


def test_single_method_run_has_no_parent_and_default_output_next_to_input(tmp_path, tracking_uri, capsys):
    clip = tmp_path / "clip"
    clip.mkdir()
    sample = Path(__file__).resolve().parents[1] / "pipeline" / "data" / "bear_sample"
    for f in sorted(sample.glob("*.png"))[:2]:
        (clip / f.name).write_bytes(f.read_bytes())
    code, _, stderr = run_cli(["denoise", clip, "--model", "median5", "--tracking-uri", tracking_uri,
                               "--width", 100], capsys)
    assert code == 0, stderr
    _, runs = runs_by_method(tracking_uri, "denoise")
    assert list(runs) == ["median5"] and "mlflow.parentRunId" not in runs["median5"].data.tags
    assert "psnr" not in runs["median5"].data.metrics  # --noise none and no --reference
    out = read_video(tmp_path / "clip.denoised.mp4")
    assert out.frames[0].shape == (round(258 * 100 / 454), 100, 3)
    folder = tmp_path / "outputs"
    folder.mkdir()  # an existing folder as --output gets the default name inside it
    code, _, stderr = run_cli(["denoise", clip, "--model", "median5,median3", "--tracking-uri", tracking_uri,
                               "--width", 100, "--output", folder], capsys)
    assert code == 0, stderr
    assert sorted(p.name for p in folder.iterdir()) == ["clip.median3.denoised.mp4", "clip.median5.denoised.mp4"]


def test_reference_gives_psnr_for_an_already_noisy_input(tmp_path, tracking_uri, capsys):
    clean = Path(__file__).resolve().parents[1] / "pipeline" / "data" / "bear_sample"
    noisy_dir = tmp_path / "noisy"
    code, _, _ = run_cli(["denoise", "--model", "median3", "--frames", 2, "--tracking-uri", tracking_uri,
                          "--output", tmp_path / "n.mp4"], capsys)
    assert code == 0
    from stages.ingest_video import NoiseSpec, corrupt
    from stages.log import save_png, to_uint8
    for i, frame in enumerate(read_video(clean, 0, 2).frames):
        save_png(to_uint8(corrupt(frame, NoiseSpec.parse("impulse:0.1"), 3, i)), noisy_dir / f"{i:03d}.png")
    code, _, stderr = run_cli(["denoise", noisy_dir, "--model", "median3", "--reference", clean,
                               "--tracking-uri", tracking_uri, "--experiment", "ref"], capsys)
    assert code == 0, stderr
    _, runs = runs_by_method(tracking_uri, "ref")
    metrics = runs["median3"].data.metrics
    assert metrics["psnr_noisy_mean"] < 20 < 26 < metrics["psnr_mean"]


@pytest.mark.parametrize("args,message", [
    (["denoise", "/no/such/video.mp4"], "input not found"),
    (["denoise", "{text}"], "cannot read"),
    (["denoise", "--start", "50"], "no frames"),
    (["denoise", "--noise", "gaussian:0.1"], "--noise"),
    (["denoise", "--height", "2"], "at least 3"),
    (["denoise", "--model", "median3,five_layer", "--height", "10"], "five_layer needs frames of at least 15×15"),
    (["denoise", "--model", "nosuchmodel"], "unknown denoise config"),
    (["denoise", "--model", ""], "--model needs at least one"),
    (["denoise", "--iterations", "0"], "--iterations"),
    (["denoise", "--model", "median3", "--iterations", "5"], "--iterations needs a GBP model"),
    (["denoise", "--model", "pairwise", "--no-carry"], "--no-carry needs a learned model"),
    (["denoise", "--device", "tpu"], "--device"),
    (["denoise", "--model", "{badyaml}"], "damping"),
    (["denoise", "--frames", "0"], "--frames"),
    (["denoise", "--tracking-uri", "sqlite:///{file}/sub/mlflow.db"], "tracking store"),
    (["denoise", "--tracking-uri", "sqlite:///{folder}"], "tracking store"),  # MLflow alone retries ~2 min
    (["denoise", "--tracking-uri", "sqlite:///{text}"], "tracking store"),
    (["denoise", "--bogus"], "No such option"),
    (["denoise", "--output", "{file}/sub/out.mp4", "--model", "median3"], "--output"),
    (["denoise", "--output", "{text}.txt", "--model", "median3"], "--output"),
    (["denoise", "--model", "single_layer", "--prior-from", "{text}"], "not a saved posterior"),
])
def test_bad_input_is_one_line_error_and_exit_2(args, message, tmp_path, tracking_uri, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: pairwise\ngraph:\n  damping: 1.5\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is expected")
    args = [a.format(text=text, badyaml=bad, file=blocker, folder=tmp_path) for a in args]
    if not any(a.startswith("sqlite") for a in args):
        args += ["--tracking-uri", tracking_uri]
    assert_one_line_error(*run_cli(args, capsys), message)


def test_every_pass_over_the_frames_yields_the_same_noisy_and_clean_frames():
    """Each method reads the frames afresh (memory holds one frame): all must see the same ones."""
    from pipeline.denoise import DenoiseRequest, prepare_frames

    source = prepare_frames(DenoiseRequest(frames=2, seed=3))  # the embedded sample, impulse:0.1
    assert (source.count, source.shape) == (2, (258, 454, 3))
    first, second = list(source.frames()), list(source.frames())
    for (noisy, clean), (noisy_again, clean_again) in zip(first, second):
        np.testing.assert_array_equal(noisy, noisy_again)
        np.testing.assert_array_equal(clean, clean_again)
        assert 0.08 < np.mean(np.any(noisy != clean, axis=2)) < 0.12
    assert not np.array_equal(first[0][0], first[1][0])


@pytest.mark.parametrize("count", [1, 2, 11, 25, 190, 191, 1000, 54_000])
def test_previews_are_every_tenth_frame_and_at_most_twenty(count):
    from pipeline.denoise import MAX_PREVIEWS, preview_frames

    frames = sorted(preview_frames(count))
    assert frames[0] == 0 and frames[-1] == count - 1 and len(frames) <= MAX_PREVIEWS
    gaps = np.diff(frames[:-1])
    assert np.all(gaps >= 10) and (count > 200 or np.all(gaps == 10))


def test_a_long_clip_prints_the_psnr_range_not_every_frame(tmp_path, tracking_uri, capsys):
    import cv2

    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(31):
        cv2.imwrite(str(clip / f"{i}.png"), np.full((12, 16, 3), 100 + i, np.uint8))
    code, stdout, stderr = run_cli(["denoise", clip, "--model", "median3", "--noise", "impulse:0.1",
                                    "--tracking-uri", tracking_uri], capsys)
    assert code == 0, stderr
    assert "median3 PSNR over 31 frames (dB): min" in stdout and "PSNR per frame" not in stdout
    client, runs = runs_by_method(tracking_uri, "denoise")
    assert len(client.get_metric_history(runs["median3"].info.run_id, "psnr")) == 31


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path, tracking_uri, capsys):
    clip = tmp_path / "clip.mp4"
    code, _, stderr = run_cli(["denoise", "--model", "median3", "--frames", 2, "--tracking-uri", tracking_uri,
                               "--output", clip], capsys)
    assert code == 0, stderr
    before = clip.read_bytes()
    for output in (clip, tmp_path / "sub" / ".." / "clip.mp4"):
        assert_one_line_error(*run_cli(["denoise", clip, "--model", "median3", "--tracking-uri", tracking_uri,
                                        "--output", output], capsys), "is an input of this run")
    assert_one_line_error(*run_cli(["denoise", "--model", "median3", "--frames", 2, "--reference", clip,
                                    "--tracking-uri", tracking_uri, "--output", clip], capsys),
                          "is an input of this run")
    assert clip.read_bytes() == before


def test_ctrl_c_marks_run_killed_and_keeps_finished_frames(tmp_path, tracking_uri):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "denoise", "--model", "pairwise", "--iterations", "600",
                             "--tracking-uri", tracking_uri, "--output", str(tmp_path / "o.mp4"),
                             "--experiment", "interrupt"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(tracking_uri=tracking_uri)
    deadline = time.time() + 400
    done = []
    while time.time() < deadline and proc.poll() is None:
        exp = client.get_experiment_by_name("interrupt") if Path(tracking_uri[10:]).exists() else None
        runs = client.search_runs([exp.experiment_id]) if exp else []
        if runs:
            done = client.get_metric_history(runs[0].info.run_id, "psnr")
            if done:
                break
        time.sleep(0.5)
    assert done, "no frame finished in time"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)  # stops within one chunk of iterations
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    run = client.search_runs([client.get_experiment_by_name("interrupt").experiment_id])[0]
    assert run.info.status == "KILLED"
    assert len(client.get_metric_history(run.info.run_id, "psnr")) >= 1
    assert "video" in {a.path for a in client.list_artifacts(run.info.run_id)}


def ctrl_c_while_saving_a_preview(*args, **kwargs):
    """Stands in for save_png: Ctrl-C after a frame's metrics (and posterior) are logged."""
    raise KeyboardInterrupt


def test_ctrl_c_while_a_frame_is_being_logged_keeps_that_frame(tmp_path, tracking_uri, capsys, monkeypatch):
    """Ctrl-C can land after a frame's metrics are logged but before its previews are: that
    frame is already in the video, so the video is still logged and the frame counted."""
    monkeypatch.setattr("pipeline.denoise.save_png", ctrl_c_while_saving_a_preview)
    code, _, _ = run_cli(["denoise", "--model", "median3", "--frames", 2, "--tracking-uri", tracking_uri,
                          "--output", tmp_path / "o.mp4", "--experiment", "late-interrupt"], capsys)
    assert code == 130
    client, runs = runs_by_method(tracking_uri, "late-interrupt")
    run = runs["median3"]
    assert run.info.status == "KILLED"
    assert len(client.get_metric_history(run.info.run_id, "psnr")) == 1
    assert [m.value for m in client.get_metric_history(run.info.run_id, "frames_done")] == [1]
    assert "video" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert len(read_video(tmp_path / "o.mp4").frames) == 1


def test_an_interrupted_learned_run_says_how_to_continue_it(tmp_path, tracking_uri, capsys, monkeypatch):
    monkeypatch.setattr("pipeline.denoise.save_png", ctrl_c_while_saving_a_preview)
    code, _, stderr = run_cli(["denoise", "--model", "single_layer", "--frames", 3, "--height", 20, "--iterations", 2,
                               "--tracking-uri", tracking_uri, "--output", tmp_path / "o.mp4"], capsys)
    assert code == 130
    _, runs = runs_by_method(tracking_uri, "denoise")
    run_id = runs["single_layer"].info.run_id
    assert len(stderr.strip().splitlines()) == 1
    assert f"to continue single_layer, run the same command with --start 1 --frames 2 --prior-from {run_id}" in stderr


def test_paper_protocol_on_bear(shared_data, tmp_path, tracking_uri, capsys):
    """Pairwise ≥ 30.8 dB at frame index 5 (authors' code: 30.93) and ≥ 2 dB above median3."""
    code, _, stderr = run_cli(["denoise", shared_data / "bear", "--model", "pairwise,median3",
                               "--height", 258, "--width", 454, "--frames", 6, "--noise", "impulse:0.1",
                               "--seed", 1, "--tracking-uri", tracking_uri, "--output", tmp_path / "b.mp4"],
                              capsys)
    assert code == 0, stderr
    client, runs = runs_by_method(tracking_uri, "denoise")
    psnr = {m: {x.step: x.value for x in client.get_metric_history(runs[m].info.run_id, "psnr")}
            for m in ("pairwise", "median3")}
    assert psnr["pairwise"][5] >= 30.8
    assert psnr["pairwise"][5] >= psnr["median3"][5] + 2.0


def test_learned_model_saves_posteriors_and_a_new_video_can_start_from_them(tmp_path, tracking_uri, capsys,
                                                                            monkeypatch):
    common = ["--model", "single_layer", "--frames", 2, "--iterations", 8, "--height", 40,
              "--tracking-uri", tracking_uri]
    code, _, stderr = run_cli(["denoise", *common, "--experiment", "first", "--output", tmp_path / "a.mp4"], capsys)
    assert code == 0, stderr
    client, runs = runs_by_method(tracking_uri, "first")
    run = runs["single_layer"]
    saved = [a.path for a in client.list_artifacts(run.info.run_id, "posterior")]
    assert saved == ["posterior/frame_00000.npz", "posterior/frame_00001.npz"]
    assert {"filters", "uncertainty"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert run.data.params["carry.alpha"] == "0.5"

    # start a new video from that run's last posterior: by run id and by file; a run id stays one
    # when the working directory holds a folder of that name (MLflow's artifact layout next to its store)
    monkeypatch.chdir(tmp_path)
    (tmp_path / run.info.run_id).mkdir()
    code, _, stderr = run_cli(["denoise", *common, "--experiment", "second", "--prior-from", run.info.run_id,
                               "--output", tmp_path / "b.mp4"], capsys)
    assert code == 0, stderr
    npz = client.download_artifacts(run.info.run_id, "posterior/frame_00001.npz", str(tmp_path))
    code, _, stderr = run_cli(["denoise", *common, "--experiment", "third", "--prior-from", npz, "--no-carry",
                               "--output", tmp_path / "c.mp4"], capsys)
    assert code == 0, stderr
    _, third = runs_by_method(tracking_uri, "third")
    assert third["single_layer"].data.params["carry.enabled"] == "False"

    # a posterior of another model does not fit: refused before any run starts
    assert_one_line_error(*run_cli(["denoise", *common, "--model", "median3,five_layer", "--experiment", "bad",
                                    "--prior-from", npz, "--output", tmp_path / "d.mp4"], capsys),
                          "error: the posterior in")
    assert client.search_runs([client.get_experiment_by_name("bad").experiment_id]) == []
    assert_one_line_error(*run_cli(["denoise", *common, "--model", "median3", "--prior-from", npz,
                                    "--output", tmp_path / "e.mp4"], capsys), "--prior-from needs a learned model")


def test_a_store_failing_mid_run_is_one_line_and_the_run_keeps_its_finished_frames(tmp_path, tracking_uri, capsys,
                                                                                     monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient as Client

    log_batch = Client.log_batch

    def locked_from_second_frame(self, run_id, metrics=(), **kwargs):
        if any(m.key == "psnr" and m.step == 1 for m in metrics):
            raise MlflowException("(sqlite3.OperationalError) database is locked\n[SQL: INSERT ...]")
        return log_batch(self, run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(Client, "log_batch", locked_from_second_frame)
    code, stdout, stderr = run_cli(["denoise", "--model", "median3", "--frames", 3, "--tracking-uri", tracking_uri,
                                    "--output", tmp_path / "o.mp4", "--experiment", "locked"], capsys)
    assert_one_line_error(code, stdout, stderr, "cannot write metrics to the tracking store")
    assert "database is locked" in stderr
    client, runs = runs_by_method(tracking_uri, "locked")
    assert runs["median3"].info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(runs["median3"].info.run_id, "psnr")] == [0]


def test_a_diverging_model_fails_in_one_line_and_keeps_finished_frames(tmp_path, tracking_uri, capsys, monkeypatch):
    class NanFromSecondFrame:
        def __init__(self, name, config, seed):
            self.config, self.frames = config, 0

        def check_frame(self, shape):
            pass

        def __call__(self, noisy):
            self.frames += 1
            return FrameOutcome(noisy if self.frames == 1 else np.full_like(noisy, np.nan), None, 0.01, 1)

    monkeypatch.setattr("pipeline.denoise.frame_denoiser", NanFromSecondFrame)
    code, _, stderr = run_cli(["denoise", "--model", "median3", "--frames", 3, "--tracking-uri", tracking_uri,
                               "--output", tmp_path / "o.mp4", "--experiment", "diverge"], capsys)
    assert code == 2 and stderr.strip().splitlines() == [stderr.strip()], stderr
    assert "median3 diverged on frame 1" in stderr
    client, runs = runs_by_method(tracking_uri, "diverge")
    assert runs["median3"].info.status == "FAILED"
    assert len(client.get_metric_history(runs["median3"].info.run_id, "psnr")) == 1
