"""Find nearby devices and tell which supported profile each one speaks.

The profile comes from the service UUIDs a device advertises. Many devices advertise few or none
of their services (advertisements are 31 bytes), so ``scan(discover=True)`` connects to those
that advertise nothing known and reads their GATT services instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError

from device.profiles.polar_pmd import PMD_SERVICE
from device.profiles.raw_imu import RAW_IMU_SERVICE
from device.profiles.rsc import RSC_SERVICE
from device.profiles.witmotion import WITMOTION_SERVICE

log = logging.getLogger(__name__)

# In order of preference: a device exposing several gives the richest stream.
PROFILE_SERVICES: tuple[tuple[str, str], ...] = (
    ("raw-imu", RAW_IMU_SERVICE),
    ("polar-pmd", PMD_SERVICE),
    ("witmotion", WITMOTION_SERVICE),
    ("rsc", RSC_SERVICE),
)


@dataclass(frozen=True, slots=True)
class Found:
    """One device heard during a scan. ``profile`` is ``None`` when none is recognised;
    ``discovered`` says it came from connecting and reading services, not the advertisement."""

    name: str | None
    address: str
    rssi_dbm: int
    profile: str | None
    discovered: bool = False


def detect_profile(service_uuids: Iterable[str]) -> str | None:
    """The best supported profile among ``service_uuids`` (any case), else ``None``."""
    present = {u.lower() for u in service_uuids}
    return next((name for name, uuid in PROFILE_SERVICES if uuid in present), None)


async def scan(
    timeout_s: float = 5.0, *, discover: bool = False, connect_timeout_s: float = 5.0
) -> list[Found]:
    """Devices heard within ``timeout_s``, strongest signal first.

    With ``discover``, a device whose advertisement names no known service is connected to and
    its services are read (one at a time; a device that refuses is listed without a profile).
    """
    heard = await BleakScanner.discover(timeout=timeout_s, return_adv=True)
    found: list[Found] = []
    for device, adv in heard.values():
        profile = detect_profile(adv.service_uuids)
        discovered = False
        if profile is None and discover:
            profile = await _discover_profile(device, connect_timeout_s)
            discovered = profile is not None
        name = adv.local_name or device.name
        found.append(Found(name, device.address, adv.rssi, profile, discovered))
    return sorted(found, key=lambda f: -f.rssi_dbm)


async def _discover_profile(device: BLEDevice, timeout_s: float) -> str | None:
    try:
        async with BleakClient(device, timeout=timeout_s) as client:
            return detect_profile(s.uuid for s in client.services)
    except (BleakError, TimeoutError, OSError) as e:
        log.info("%s: could not read its services: %s", device.address, e)
        return None
