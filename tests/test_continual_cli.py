"""`pipeline continual` end to end on a small MNIST subset: accuracy, MLflow records, resume,
and the one-line failure behaviour."""
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from cli_helpers import assert_one_line_error, finished_child_runs, run_cli, runs_by_method

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST / "mnist.npz").is_file():
        pytest.skip("../shared/data/mnist/mnist.npz is not present")
    return MNIST


def test_gbp_and_baselines_learn_and_log(tmp_path, tracking_uri, mnist_dir, capsys):
    code, stdout, stderr = run_cli(["continual", "mnist", "--method", "gbp,linear,cnn", "--train-size", 200,
                                    "--test-size", 200, "--eval-every", 100, "--iterations", 30,
                                    "--test-iterations", 5, "--seed", 1, "--data-dir", mnist_dir,
                                    "--tracking-uri", tracking_uri, "--experiment", "cl"], capsys)
    assert code == 0, stderr
    client, runs = finished_child_runs(tracking_uri, "cl", ["gbp", "linear", "cnn"])
    for name in ("gbp", "linear", "cnn"):
        run = runs[name]
        assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0
        assert run.data.metrics["test_nll"] > 0
    gbp = runs["gbp"]
    # 200 examples, 30 iterations per batch: far above chance (0.1)
    assert gbp.data.metrics["test_accuracy"] > 0.55, gbp.data.metrics
    assert runs["linear"].data.metrics["test_accuracy"] > 0.5
    history = client.get_metric_history(gbp.info.run_id, "test_accuracy")
    assert [m.step for m in history] == [100, 200]
    batch_acc = client.get_metric_history(gbp.info.run_id, "train_batch_accuracy")
    assert [m.step for m in batch_acc] == [50, 100, 150, 200]
    assert all(0.0 <= m.value <= 1.0 for m in batch_acc)
    assert batch_acc[-1].value > batch_acc[0].value  # learning shows before each update
    for key in ("seconds_per_batch", "seconds_per_iteration", "seconds_per_test_iteration"):
        assert gbp.data.metrics[key] > 0, key
    assert gbp.data.params["graph.conv_sigma"] == "0.01" and gbp.data.params["train_iterations"] == "30"
    cnn_steps = [m.step for m in client.get_metric_history(runs["cnn"].info.run_id, "train_batch_accuracy")]
    assert cnn_steps == [50, 100, 150, 200]
    files = {a.path for a in client.list_artifacts(gbp.info.run_id, "posterior")}
    assert files == {"posterior/posterior.npz"}
    local = client.download_artifacts(gbp.info.run_id, "posterior/posterior.npz", str(tmp_path))
    with np.load(local) as post:
        assert post["conv_weights.lam"].shape == (25, 16) and post["dense_weights.eta"].shape == (2304, 10)
        assert np.all(post["conv_weights.lam"] > 100.0)  # more precise than the prior (σ = 0.1)
    assert "gbp test_accuracy=" in stdout

    # resume from the run's posterior: one more batch keeps what was learned
    code, _, stderr = run_cli(["continual", "mnist", "--method", "gbp", "--train-size", 50, "--test-size", 200,
                               "--iterations", 10, "--test-iterations", 5, "--seed", 2, "--data-dir", mnist_dir,
                               "--tracking-uri", tracking_uri, "--experiment", "resume",
                               "--prior-from", gbp.info.run_id], capsys)
    assert code == 0, stderr
    _, resumed = runs_by_method(tracking_uri, "resume")
    assert resumed["gbp"].data.metrics["test_accuracy"] > 0.5


@pytest.mark.parametrize("args, message", [
    (["--method", "gbp,svm"], "unknown method 'svm'"),
    (["--train-size", "0"], "--train-size must be ≥ 1"),
    (["--test-size", "20000"], "exceeds the 10000 test images"),
    (["--eval-every", "0"], "--eval-every must be ≥ 1"),
    (["--iterations", "0"], "--iterations must be ≥ 1"),
    (["--prior-from", "/nonexistent/posterior.npz"], "--prior-from: no file"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tracking_uri, mnist_dir, capsys):
    assert_one_line_error(*run_cli(["continual", "mnist", "--method", "gbp", "--train-size", 50, *args,
                                    "--data-dir", mnist_dir, "--tracking-uri", tracking_uri], capsys), message)


def test_a_bad_prior_is_refused_before_any_run_starts(tmp_path, tracking_uri, mnist_dir, capsys):
    not_a_posterior = tmp_path / "posterior.npz"
    not_a_posterior.write_text("not an archive")
    assert_one_line_error(*run_cli(["continual", "mnist", "--method", "gbp,linear", "--train-size", 50,
                                    "--prior-from", not_a_posterior, "--data-dir", mnist_dir,
                                    "--tracking-uri", tracking_uri, "--experiment", "bad-prior"], capsys),
                          "is not a saved posterior")
    client = MlflowClient(tracking_uri=tracking_uri)
    assert client.search_runs([client.get_experiment_by_name("bad-prior").experiment_id]) == []


def test_a_prior_of_another_shape_and_too_few_examples_are_refused_before_any_run(tmp_path, tracking_uri,
                                                                                  mnist_dir, capsys):
    from pipeline.gbp.gaussian import Gaussian
    from stages.carry_posterior import save_posterior

    wrong = save_posterior({"conv_weights": Gaussian.from_mean_std(np.zeros((3, 3, 1, 4), np.float32), 1.0)},
                           tmp_path / "wrong.npz")
    assert_one_line_error(*run_cli(["continual", "mnist", "--method", "linear,gbp", "--train-size", 50,
                                    "--prior-from", wrong, "--data-dir", mnist_dir, "--tracking-uri", tracking_uri,
                                    "--experiment", "early"], capsys), "the posterior in")
    assert_one_line_error(*run_cli(["continual", "mnist", "--method", "linear,mf", "--train-size", 100,
                                    "--data-dir", mnist_dir, "--tracking-uri", tracking_uri,
                                    "--experiment", "early"], capsys), "mf trains on minibatches of 128")
    client = MlflowClient(tracking_uri=tracking_uri)
    assert client.search_runs([client.get_experiment_by_name("early").experiment_id]) == []


def test_unknown_dataset_and_missing_data_dir(tmp_path, tracking_uri, capsys):
    assert_one_line_error(*run_cli(["continual", "cifar", "--tracking-uri", tracking_uri], capsys),
                          "unknown dataset 'cifar'")
    assert_one_line_error(*run_cli(["continual", "mnist", "--data-dir", tmp_path / "nope",
                                    "--tracking-uri", tracking_uri], capsys), "does not exist")


def test_message_passing_baselines_run_as_child_runs_with_epochs(tracking_uri, mnist_dir, capsys):
    code, stdout, stderr = run_cli(["continual", "mnist", "--method", "bp,amp,mf", "--train-size", 512,
                                    "--test-size", 300, "--hidden", "31", "--epochs", 2, "--seed", 1,
                                    "--data-dir", mnist_dir, "--tracking-uri", tracking_uri,
                                    "--experiment", "mp"], capsys)
    assert code == 0, stderr
    client, runs = finished_child_runs(tracking_uri, "mp", ["bp", "amp", "mf"])
    for name in ("bp", "amp", "mf"):
        run = runs[name]
        # one record per epoch (--epochs 2), step = training examples seen (4 batches of 128 per epoch)
        for key in ("test_accuracy", "test_accuracy_bayes", "train_accuracy", "seconds_per_epoch",
                    "cpu_seconds_per_epoch"):
            history = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in history] == [512, 1024], (name, key)
        for key in ("test_accuracy", "test_accuracy_bayes", "train_accuracy"):
            assert 0.3 < run.data.metrics[key] <= 1.0, (name, key, run.data.metrics)
        assert run.data.params["epochs"] == "2" and run.data.params["hidden"] in ("[31]", "(31,)")
        assert f"{name} test_accuracy=" in stdout


@pytest.mark.parametrize("args, message", [
    (["--method", "amp", "--epochs", "0"], "--epochs must be ≥ 1, got 0"),
    (["--method", "gbp,cnn", "--epochs", "3"], "--epochs applies only to bp, amp and mf"),
    (["--method", "linear", "--task", "2class"], "--task applies only to bp, amp and mf"),
    (["--method", "mf", "--task", "3class"], "unknown task '3class'"),
    (["--method", "mf", "--hidden", "5,x"], "--hidden takes a comma list"),
    (["--method", "linear", "--config", "mnist_gbp"], "--config applies only to gbp"),
    (["--method", "cnn,bp", "--iterations", "5"], "--iterations applies only to gbp"),
    (["--method", "linear", "--prior-from", "posterior.npz"], "--prior-from applies only to gbp"),
])
def test_options_of_methods_that_do_not_run_are_one_line_errors(args, message, tracking_uri, mnist_dir, capsys):
    assert_one_line_error(*run_cli(["continual", "mnist", "--train-size", 256, *args, "--data-dir", mnist_dir,
                                    "--tracking-uri", tracking_uri], capsys), message)
