"""MLflow tracking: where the store is, one parent run per invocation, a child run per method.

The default store is ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/``, relative
to the working directory (MLflow 3 no longer accepts the plain file store).  ``--tracking-uri``
or ``MLFLOW_TRACKING_URI`` choose another.  Metrics are written in batches (``log_batch``), one
call per frame or evaluation point, because per-metric calls are slow.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

from pipeline.errors import PipelineError

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
MAX_PARAM_LENGTH = 6000


def resolve_tracking_uri(cli_uri: str | None) -> str:
    """``--tracking-uri`` beats ``MLFLOW_TRACKING_URI`` beats the local SQLite default."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


@contextlib.contextmanager
def _one_process_at_a_time(db: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` (POSIX): MLflow creates and migrates a SQLite
    schema without a lock of its own, so processes opening a new store together corrupt it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None
    if db is None or fcntl is None:
        yield
        return
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_reachable(uri: str) -> None:
    """Fail at once on a tracking server that does not answer (MLflow retries a refused
    connection for about four minutes before giving up)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10).close()
    except urllib.error.HTTPError:
        pass  # it answered; MLflow's own calls will tell whether it is an MLflow server
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PipelineError(f"cannot reach the tracking server {uri}: {reason}") from None


def _check_store(uri: str) -> None:
    """Refuse at once, in one line, a store MLflow would refuse slowly or at length: a folder
    (MLflow 3 writes databases only), a server that does not answer, a SQLite file that cannot
    be created, opened or written."""
    folder_store = "://" not in uri or uri.startswith("file:")
    if folder_store and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":  # MLflow's opt-out
        raise PipelineError(f"MLflow 3 keeps runs in a database, not in the folder {uri}; "
                            f"use e.g. --tracking-uri sqlite:///{uri.removeprefix('file://')}/mlflow.db")
    if uri.startswith(("http://", "https://")):
        _check_reachable(uri)
    db = _sqlite_path(uri)
    if db is None:
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(f"cannot create the tracking store folder {db.parent}: {exc.strerror}") from None
    if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        raise PipelineError(f"the tracking store {db} is not writable; choose another with --tracking-uri")
    try:  # MLflow retries an unopenable database for ~2 minutes
        sqlite3.connect(db).close()
    except sqlite3.Error as exc:
        raise PipelineError(f"cannot open the tracking store {db} ({exc}); choose another with --tracking-uri") from None


def check_store_to_browse(uri: str) -> None:
    """``pipeline ui`` serves an existing store: a server is already its own UI, and a SQLite
    file that does not exist holds no runs (a wrong path or working directory, most likely)."""
    if uri.startswith(("http://", "https://")):
        raise PipelineError(f"{uri} is an MLflow server, which is its own UI: open it in a browser")
    db = _sqlite_path(uri)
    if db is not None and not db.is_file():
        raise PipelineError(f"no tracking store at {db.resolve()}: no run has been logged there; start the UI "
                            f"from the folder that holds mlruns/ or pass --tracking-uri")
    _check_store(uri)


class Tracker:
    """A connection to one MLflow store and experiment."""

    def __init__(self, tracking_uri: str | None, experiment: str):
        self.uri = resolve_tracking_uri(tracking_uri)
        _check_store(self.uri)
        db = _sqlite_path(self.uri)
        artifact_root = db.parent.resolve().as_uri() if db is not None else None  # mlruns/ next to mlflow.db
        import mlflow
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic", "sqlalchemy"):  # after import: mlflow sets its own levels
            logging.getLogger(name).setLevel(logging.WARNING)
        # its retries and tracebacks on a failing database: the failure itself reaches the user as one line
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

        try:
            with _one_process_at_a_time(db):  # schema creation and find-or-create of the experiment
                self.client = MlflowClient(tracking_uri=self.uri)
                found = self.client.get_experiment_by_name(experiment)
                if found is None:
                    self.experiment_id = self.client.create_experiment(experiment, artifact_location=artifact_root)
                else:
                    self.experiment_id = found.experiment_id
        except Exception as exc:  # sqlalchemy / mlflow errors of an unusable store
            raise PipelineError(f"cannot use the tracking store {self.uri}: {_first_line(exc)}") from None
        mlflow.set_tracking_uri(self.uri)
        self.experiment = experiment

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Any failure of the store while writing (locked, disk full, removed) as one PipelineError."""
        try:
            yield
        except PipelineError:
            raise
        except Exception as exc:
            raise PipelineError(f"cannot write {what} to the tracking store {self.uri}: {_first_line(exc)}") from None

    def start_run(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> str:
        """Create a run (a child of ``parent_id`` if given); return its id."""
        tags = dict(tags)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        with self._writing("a new run"):
            return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        with self._writing("params"):
            for i in range(0, len(items), 100):  # MLflow's batch limit for params
                self.client.log_batch(run_id, params=items[i:i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with self._writing("metrics"):
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        with self._writing(f"artifact {Path(path).name}"):
            self.client.log_artifact(run_id, str(path), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        with self._writing(f"artifact {artifact_file}"):
            self.client.log_text(run_id, text, artifact_file)

    def latest_artifact(self, run_id: str, folder: str) -> Path:
        """Download the last file (by name) of a run's artifact folder; return its local path."""
        try:
            files = sorted(a.path for a in self.client.list_artifacts(run_id, folder) if not a.is_dir)
        except Exception as exc:
            raise PipelineError(f"no run {run_id!r} in {self.uri} ({_first_line(exc)}); "
                                f"give a path to a .npz or a run id") from None
        if not files:
            raise PipelineError(f"run {run_id} has no {folder}/ artifacts")
        return Path(self.client.download_artifacts(run_id, files[-1]))

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        with self._writing(f"run status {status}"):
            self.client.set_terminated(run_id, status=status)

    def _end_after_failure(self, run_id: str, status: str) -> None:
        """Mark a run KILLED/FAILED if the store still takes writes; the error being raised
        (perhaps that very store failing) matters more than this one."""
        with contextlib.suppress(PipelineError):
            self.end_run(run_id, status)

    @contextlib.contextmanager
    def run(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> Iterator[str]:
        """A run that ends FINISHED, KILLED on Ctrl-C, FAILED on any other error."""
        run_id = self.start_run(name, tags, parent_id)
        try:
            yield run_id
        except KeyboardInterrupt:
            self._end_after_failure(run_id, "KILLED")
            raise
        except BaseException:
            self._end_after_failure(run_id, "FAILED")
            raise
        self.end_run(run_id, "FINISHED")
