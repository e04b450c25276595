"""Fixtures for every test.

Where the shared, read-only data lives: ``../shared`` beside the repository (absent in a clone).
Tests that read it take the ``shared_dir`` or ``running_truth`` fixture (and carry the ``shared``
marker); both skip the test cleanly when the folder is missing.

Every test runs with Stridecue's settings isolated from the machine's: no broker URL or config
file from the environment, and a data folder of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.brokers"]

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


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STRIDECUE_MQTT_URL", "STRIDECUE_MQTT_CA_FILE", "STRIDECUE_ATHLETE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRIDECUE_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("STRIDECUE_DATA_DIR", str(tmp_path / "data"))
