"""`pipeline ui` refuses, in one line, what MLflow's server would accept and serve badly; the
server itself is never started here (its launch is replaced by a failing stub)."""
import socket

import pytest

from cli_helpers import assert_one_line_error, run_cli


@pytest.fixture(autouse=True)
def no_server(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the MLflow UI must not start in a test")

    monkeypatch.setattr("subprocess.call", refuse)


def test_a_store_without_runs_or_a_server_uri_is_refused(tmp_path, capsys):
    missing = tmp_path / "elsewhere" / "mlflow.db"
    assert_one_line_error(*run_cli(["ui", "--tracking-uri", f"sqlite:///{missing}"], capsys), "no tracking store at")
    assert not missing.parent.exists()  # looking did not create it
    assert_one_line_error(*run_cli(["ui", "--tracking-uri", "http://127.0.0.1:9"], capsys), "is its own UI")
    assert_one_line_error(*run_cli(["ui", "--tracking-uri", str(tmp_path)], capsys), "not in the folder")


def test_a_port_in_use_is_refused(tracking_uri, capsys):
    from pipeline.tracking import Tracker

    Tracker(tracking_uri, "ui")  # a store that exists
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(*run_cli(["ui", "--tracking-uri", tracking_uri, "--port", port], capsys),
                              f"cannot serve the UI on 127.0.0.1:{port}")
