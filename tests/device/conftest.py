"""Fixtures for the device tests: the same guard as the simulator's BLE tests.

``no_system_bus`` points ``DBUS_SYSTEM_BUS_ADDRESS`` at a socket that does not exist for every
``@pytest.mark.ble`` test, so bleak never reaches the machine's real system bus.
"""

from __future__ import annotations

from tests.firmware_sim.conftest import no_system_bus

__all__ = ["no_system_bus"]
