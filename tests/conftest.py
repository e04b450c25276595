"""Where the shared, read-only data lives: ``../shared`` beside the repository (absent in a clone).

Tests that read it take the ``shared_dir`` or ``running_truth`` fixture (and carry the ``shared``
marker); both skip the test cleanly when the folder is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` relative to the repository root; skips the test when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared is absent (a fresh clone has no shared data)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def running_truth(shared_dir: Path) -> Path:
    """``../shared/data/running-truth``: real recordings with force-plate contacts."""
    path = shared_dir / "data" / "running-truth"
    if not path.is_dir():
        pytest.skip("../shared is absent or lacks data/running-truth")
    return path
