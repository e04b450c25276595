"""Run an emulated BlueZ peripheral for tests and benchmarks: private bus, env, teardown.

``emulated_bluez(peripheral)`` starts a private ``dbus-daemon``, starts the peripheral on it,
points bleak at it (``DBUS_SYSTEM_BUS_ADDRESS``, and the ``bluetoothctl`` version shim first on
``PATH``) and undoes all of it on exit, whatever happens inside. One peripheral per bus: the
peripheral owns ``org.bluez`` there.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from firmware_sim.bluez.bus import PrivateBus
from firmware_sim.bluez.peripheral import EmulatedPeripheral

BUS_ENV = "DBUS_SYSTEM_BUS_ADDRESS"
SHIM_DIR = Path(__file__).resolve().parent / "shim"


@dataclass(frozen=True, slots=True)
class EmulatedBlueZ:
    """What a test needs to know about the running emulation."""

    bus_address: str
    daemon_pid: int
    peripheral: EmulatedPeripheral


@contextmanager
def _environment(bus_address: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in (BUS_ENV, "PATH")}
    os.environ[BUS_ENV] = bus_address
    if os.access(SHIM_DIR / "bluetoothctl", os.X_OK):
        os.environ["PATH"] = os.pathsep.join([str(SHIM_DIR), saved["PATH"] or os.defpath])
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@asynccontextmanager
async def emulated_bluez(peripheral: EmulatedPeripheral) -> AsyncIterator[EmulatedBlueZ]:
    """Serve ``peripheral`` through an emulated BlueZ that bleak in this process will use.

    Disconnect bleak clients inside the block: the peripheral drops any remaining link on exit
    (so callbacks fire), then the daemon is stopped and the environment restored.
    """
    with PrivateBus() as bus, _environment(bus.address):
        assert bus.pid is not None
        await peripheral.start(bus.address)
        try:
            yield EmulatedBlueZ(bus.address, bus.pid, peripheral)
        finally:
            await peripheral.stop()
