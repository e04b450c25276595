"""The Bluetooth commands: scan, record, run a live session, and serve the simulated footpod."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import firmware_sim.bluez
from device.drivers import Driver, PolarPmdDriver, RawImuDriver, RscDriver, WitMotionDriver
from device.errors import DeviceError
from device.link import RawNotification
from device.scan import Found, scan
from device.source import BleSource
from dsp.events import Placement
from dsp.plan import SessionPlan
from firmware_sim.bluez.bus import PrivateBus
from firmware_sim.footpod import SimulatedFootpod
from firmware_sim.runner import SimulatedAthlete
from recordings.logfile import LogHeader, LogWriter, Notification, utc_now

PROFILES = ("raw-imu", "polar-pmd", "rsc", "witmotion")
AUTO = "auto"


def make_driver(profile: str) -> Driver:
    """The driver of a profile by name."""
    drivers: dict[str, Callable[[], Driver]] = {
        "raw-imu": RawImuDriver,
        "polar-pmd": PolarPmdDriver,
        "rsc": RscDriver,
        "witmotion": WitMotionDriver,
    }
    try:
        return drivers[profile]()
    except KeyError:
        raise DeviceError(
            f"unknown profile {profile!r}: use {', '.join(PROFILES)} or {AUTO}"
        ) from None


async def resolve_profile(target: str, profile: str, timeout_s: float) -> str:
    """``profile``, or the one ``target`` advertises when ``profile`` is ``auto``."""
    if profile != AUTO:
        return profile
    wanted = target.lower()
    for found in await scan(timeout_s, discover=True):
        if wanted in (found.address.lower(), (found.name or "").lower()):
            if found.profile is None:
                raise DeviceError(
                    f"{target}: no supported profile found; name one with --profile "
                    f"({', '.join(PROFILES)})"
                )
            return found.profile
    raise DeviceError(f"{target}: not found in a {timeout_s:.0f} s scan: is it on and nearby?")


async def scan_devices(timeout_s: float) -> list[Found]:
    return await scan(timeout_s, discover=True)


@asynccontextmanager
async def open_device(
    target: str,
    profile: str,
    placement: Placement,
    *,
    output: Path | None = None,
    duration_s: float | None = None,
    scan_timeout_s: float = 5.0,
) -> AsyncIterator[BleSource]:
    """A connected source for ``target``; with ``output``, every notification is recorded raw.

    The recording's header names the profile and its configuration, so ``replay`` decodes the
    bytes through the same parsers, byte for byte. With ``duration_s`` the stream ends after
    that long.
    """
    driver = make_driver(await resolve_profile(target, profile, scan_timeout_s))
    writer: LogWriter | None = None

    def record(n: RawNotification) -> None:
        if writer is not None:
            writer.write(Notification(n.host_t_s, n.characteristic, n.data))

    async with BleSource(target, driver, placement=placement, recorder=record) as source:
        if output is not None:
            header = LogHeader(
                device=target,
                placement=placement.value,
                sample_rate_hz=source.fs_hz or 0.0,
                start_time=utc_now(),
                extra=driver.log_extra(),
            )
            writer = LogWriter(output, header)
        if duration_s is not None:
            asyncio.get_running_loop().call_later(duration_s, source.close)
        try:
            yield source
        finally:
            if writer is not None:
                writer.close()


async def serve_footpod(
    profile: str,
    plan: SessionPlan,
    placement: Placement,
    *,
    seed: int,
    speed: float,
    name: str,
    announce: Callable[[str], None],
) -> None:
    """Serve a simulated athlete as a BLE footpod on a private bus until cancelled."""
    if profile not in PROFILES:
        raise DeviceError(f"unknown profile {profile!r}: use {', '.join(PROFILES)}")
    shim = Path(firmware_sim.bluez.__file__).parent / "shim"  # a current `bluetoothctl` for bleak
    with PrivateBus() as bus:
        address = bus.address
        athlete = SimulatedAthlete(plan, placement, seed=seed)
        footpod = SimulatedFootpod(athlete, profile, name=name, speed=speed)
        await footpod.peripheral.start(address)
        announce(
            f"simulated {profile} footpod {name!r} ({footpod.peripheral.address}) is advertising "
            "on a private bus. In another shell:\n"
            f"  export DBUS_SYSTEM_BUS_ADDRESS='{address}'\n"
            f"  export PATH='{shim}':\"$PATH\"\n"
            f"  stridecue run --device '{name}' --profile {profile} --placement {placement.value}"
        )
        try:
            await footpod.serve()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(footpod.peripheral.stop())
