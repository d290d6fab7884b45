import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data next to the repo; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    """A fresh SQLite MLflow store per test (never the repo's mlruns/)."""
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
