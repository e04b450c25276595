"""An emulated BlueZ on a private D-Bus: the simulated footpod as a peripheral real bleak uses."""

from firmware_sim.bluez.bus import BusError, PrivateBus
from firmware_sim.bluez.peripheral import (
    AttError,
    Characteristic,
    EmulatedPeripheral,
    PeripheralError,
    Service,
    WriteHandler,
    normalize_uuid,
)

__all__ = [
    "AttError",
    "BusError",
    "Characteristic",
    "EmulatedPeripheral",
    "PeripheralError",
    "PrivateBus",
    "Service",
    "WriteHandler",
    "normalize_uuid",
]
