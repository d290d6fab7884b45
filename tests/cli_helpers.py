"""Run the real CLI entry point in-process and read back what it logged."""
import sys

import pytest
from mlflow.tracking import MlflowClient

from pipeline.cli import main


def run_cli(args, capsys):
    """``pipeline <args>`` → (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["pipeline", *map(str, args)]
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def assert_one_line_error(code, stdout, stderr, message):
    """A refused command: exit 2 and one ``error: …`` line naming ``message``, no traceback."""
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert "Traceback" not in stderr + stdout


def runs_by_method(uri, experiment):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    return client, {r.data.tags["method"]: r for r in runs}


def finished_child_runs(uri, experiment, methods):
    """Runs of a multi-method invocation by method: one parent (tagged with the comma list) and a
    FINISHED child run per method under it."""
    client, runs = runs_by_method(uri, experiment)
    parent_name = ",".join(methods)
    assert set(runs) == {parent_name, *methods}
    parent = runs[parent_name].info.run_id
    for name in methods:
        assert runs[name].info.status == "FINISHED", name
        assert runs[name].data.tags["mlflow.parentRunId"] == parent, name
    return client, runs
