"""Shared test helpers. Real benchmark tables are found through ``shared_data`` only."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """``$NAR_DATA_DIR``, defaulting to ``../shared/data`` beside the repository."""
    return Path(os.environ.get("NAR_DATA_DIR", REPO.parent / "shared" / "data"))


def shared_data(relpath: str) -> Path:
    """Path of a shared table; skips when absent locally, fails when CI=true."""
    p = shared_data_dir() / relpath
    if not p.exists():
        msg = f"shared table missing: {p} (set NAR_DATA_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return p
