"""Fixtures for tests that run bleak against the emulated BlueZ (``@pytest.mark.ble``).

Every ``ble`` test starts with ``DBUS_SYSTEM_BUS_ADDRESS`` pointing at a socket that does not
exist, so a bleak call made outside ``emulated_bluez()`` fails instead of reaching the machine's
real system bus; ``emulated_bluez()`` points it at its private daemon and restores it on exit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.bluez.testing import BUS_ENV


@pytest.fixture(autouse=True)
def no_system_bus(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("ble") is not None:
        monkeypatch.setenv(BUS_ENV, f"unix:path={tmp_path / 'no-system-bus'}")
