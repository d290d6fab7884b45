"""The MLflow store: shared safely by several processes."""
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.errors import PipelineError
from pipeline.tracking import Tracker

REPO = Path(__file__).resolve().parents[1]
OPEN_AND_LOG_ONE_RUN = ("import sys; from pipeline.tracking import Tracker; "
                        "t = Tracker(sys.argv[1], 'shared'); t.end_run(t.start_run('run', {}))")


def test_processes_opening_a_new_store_together_all_succeed(tracking_uri):
    """MLflow creates a SQLite schema without locking; four processes doing it at once left
    'table … already exists' / 'online migration' errors and a store no later run could open."""
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LOG_ONE_RUN, tracking_uri], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e.strip().splitlines()[-1:] for e in errors]
    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("shared").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"] * 4


def test_a_folder_store_is_refused_with_the_sqlite_uri_to_use_instead(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    for uri in (str(tmp_path / "runs"), f"file://{tmp_path / 'runs'}"):
        with pytest.raises(PipelineError, match=f"use e.g. --tracking-uri sqlite:///{tmp_path / 'runs'}/mlflow.db"):
            Tracker(uri, "x")


def test_a_tracking_server_that_does_not_answer_fails_at_once():
    """MLflow itself retries a refused connection for about four minutes."""
    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PipelineError, match="cannot reach the tracking server"):
        Tracker(f"http://127.0.0.1:{port}", "x")
