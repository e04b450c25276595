"""What each profile does on a connected client: configure, start, stop, and decode its stream.

A driver is the profile's half of a ``device.link.Link``: ``start`` runs on every (re)connection,
before notifications are enabled, and first stops any stream a previous connection left running;
``stop`` runs on every exit path that still has a link. Control-point commands are written with
response and their indicated result is checked, so a refusal surfaces as a ``ControlPointError``
naming the device's status instead of a silent stream that never starts.

A driver also knows how to decode what it started: ``decoder()`` returns a fresh stream decoder
configured from what ``start`` learned, and ``log_extra()`` records that configuration in a
recording's header (``{"profile": ..., "config": {...}}``) so that ``decoder_from_log`` rebuilds
the very same decoder for replay. A reconnection must bring the stream back with the same
configuration (the engine was built for its rate): a device that comes back different is an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic

from device.errors import ControlPointError, DeviceError
from device.profiles.polar_pmd import (
    PMD_CONTROL_POINT,
    PMD_DATA,
    MeasurementType,
    PmdCommand,
    PmdOp,
    PmdResponse,
    PmdSettings,
    PmdStatus,
    PolarAccStream,
)
from device.profiles.raw_imu import (
    RAW_IMU_CONFIG,
    RAW_IMU_CONTROL_POINT,
    RAW_IMU_DATA,
    Axes,
    RawImuCommand,
    RawImuConfig,
    RawImuOp,
    RawImuResponse,
    RawImuResult,
    RawImuStream,
)
from device.profiles.rsc import (
    RSC_FEATURE,
    RSC_MEASUREMENT,
    SENSOR_LOCATION,
    CadenceUnit,
    RscFeature,
    RscSensorLocation,
    RscStream,
)
from device.profiles.witmotion import (
    WITMOTION_NOTIFY,
    WITMOTION_WRITE,
    WitMotionStream,
    set_rate,
    unlock,
)
from dsp.samples import CadenceReading, SampleBlock

log = logging.getLogger(__name__)

RESPONSE_TIMEOUT_S = 2.0
_H10_G_PER_COUNT = 1e-3  # an H10 counts milli-g; a Verity Sense's start reply carries its factor


class StreamDecoder(Protocol):
    """A profile's stream decoder (``device.profiles.*Stream``): bytes in, engine input out."""

    packets: int
    lost_packets: int
    lost_samples: int

    @property
    def malformed(self) -> int: ...

    def feed(self, host_t_s: float, data: bytes) -> Sequence[SampleBlock | CadenceReading]: ...


class _ControlPoint:
    """Commands written with response on one characteristic, answered by an indication."""

    def __init__(self, client: BleakClient, uuid: str, profile: str, timeout_s: float) -> None:
        self._client = client
        self._uuid = uuid
        self._profile = profile
        self._timeout_s = timeout_s
        self._responses: asyncio.Queue[bytes] = asyncio.Queue()

    async def open(self) -> None:
        await self._client.start_notify(self._uuid, self._on_indication)

    def _on_indication(self, _: BleakGATTCharacteristic, data: bytearray) -> None:
        self._responses.put_nowait(bytes(data))

    async def request(self, command: bytes, opcode: int) -> bytes:
        """Write ``command`` and return the device's indicated answer to it."""
        while not self._responses.empty():  # a late answer to an earlier command
            self._responses.get_nowait()
        await self._client.write_gatt_char(self._uuid, command, response=True)
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._responses.get()
        except TimeoutError:
            raise ControlPointError(
                self._profile, opcode, -1, f"no response within {self._timeout_s:g} s"
            ) from None


class RawImuDriver:
    """Stridecue's raw-IMU footpod: write the wanted configuration, then START / STOP.

    ``config=None`` keeps whatever configuration the device holds (read at each start).
    """

    name: str = "raw-imu"
    notify_uuids: tuple[str, ...] = (RAW_IMU_DATA,)

    def __init__(
        self, config: RawImuConfig | None = None, *, response_timeout_s: float = RESPONSE_TIMEOUT_S
    ) -> None:
        self.wanted = config
        self.config: RawImuConfig | None = None  # what the running stream was started with
        self.response_timeout_s = response_timeout_s
        self._cp: _ControlPoint | None = None

    @property
    def fs_hz(self) -> float | None:
        return None if self.config is None else float(self.config.sample_rate_hz)

    async def start(self, client: BleakClient) -> None:
        cp = _ControlPoint(client, RAW_IMU_CONTROL_POINT, self.name, self.response_timeout_s)
        await cp.open()
        self._cp = cp
        # A stream left running by a lost connection: stop it, so the configuration can change.
        stopped = await self._command(cp, RawImuOp.STOP)
        if stopped.result not in (RawImuResult.SUCCESS, RawImuResult.INVALID_STATE):
            self._refused(stopped)
        current = RawImuConfig.from_bytes(bytes(await client.read_gatt_char(RAW_IMU_CONFIG)))
        if self.wanted is not None and self.wanted != current:
            await client.write_gatt_char(RAW_IMU_CONFIG, bytes(self.wanted), response=True)
            current = RawImuConfig.from_bytes(bytes(await client.read_gatt_char(RAW_IMU_CONFIG)))
            if current != self.wanted:
                raise DeviceError(
                    f"raw-imu: the device kept {current} instead of {self.wanted}: choose a "
                    "configuration it supports (see docs/footpod-profile.md)"
                )
        _check_same(self.name, self.config, current)
        self.config = current
        started = await self._command(cp, RawImuOp.START)
        if not started.ok:
            self._refused(started)

    async def stop(self, client: BleakClient) -> None:
        if self._cp is None:
            return
        response = await self._command(self._cp, RawImuOp.STOP)
        if response.result not in (RawImuResult.SUCCESS, RawImuResult.INVALID_STATE):
            log.warning("raw-imu: STOP answered %s", response.result.name)

    async def _command(self, cp: _ControlPoint, op: RawImuOp) -> RawImuResponse:
        data = await cp.request(bytes(RawImuCommand(op)), op)
        response = RawImuResponse.from_bytes(data)
        if response.request is not op:
            raise ControlPointError(self.name, op, -1, f"answer to {response.request.name}")
        return response

    def _refused(self, response: RawImuResponse) -> None:
        meaning = response.result.name.lower().replace("_", " ")
        raise ControlPointError(self.name, response.request, response.result, meaning)

    def decoder(self) -> RawImuStream:
        config = self.config or self.wanted
        if config is None:
            raise DeviceError("raw-imu: the configuration is known once the stream has started")
        return RawImuStream(config)

    def log_extra(self) -> dict[str, Any]:
        config = self.config or self.wanted
        if config is None:
            raise DeviceError("raw-imu: the configuration is known once the stream has started")
        return {
            "profile": self.name,
            "config": {
                "sample_rate_hz": config.sample_rate_hz,
                "acc_range_g": config.acc_range_g,
                "gyro_range_dps": config.gyro_range_dps,
                "gyro": config.gyro,
            },
        }


class PolarPmdDriver:
    """Polar H10 / Verity Sense accelerometer over PMD: the highest rate and range offered.

    Start: enable control-point indications, stop any stream left running, get the settings,
    start with the highest sample rate, the largest range and the finest resolution offered, and
    check the reply's status. Stop: ``03 02``; the strap streams until its battery is flat if
    nobody sends it.
    """

    name: str = "polar-pmd"
    notify_uuids: tuple[str, ...] = (PMD_DATA,)
    measurement = MeasurementType.ACC

    def __init__(self, *, response_timeout_s: float = RESPONSE_TIMEOUT_S) -> None:
        self.response_timeout_s = response_timeout_s
        self.settings: PmdSettings | None = None  # what the running stream was started with
        self.g_per_count = _H10_G_PER_COUNT
        self._cp: _ControlPoint | None = None

    @property
    def fs_hz(self) -> float | None:
        return None if self.settings is None else float(self.settings.sample_rates_hz[0])

    async def start(self, client: BleakClient) -> None:
        cp = _ControlPoint(client, PMD_CONTROL_POINT, self.name, self.response_timeout_s)
        await cp.open()
        self._cp = cp
        # A stream left running (a lost link, a crashed app) refuses a new start: stop it first.
        await self._request(cp, PmdCommand(PmdOp.STOP, self.measurement))
        offered = self._checked(
            await self._request(cp, PmdCommand(PmdOp.GET_SETTINGS, self.measurement))
        ).settings()
        if not offered.sample_rates_hz or not offered.ranges_g:
            raise DeviceError(
                f"polar-pmd: the device offers no accelerometer rate or range: {offered}"
            )
        chosen = PmdSettings(
            sample_rates_hz=(max(offered.sample_rates_hz),),
            resolutions_bits=(max(offered.resolutions_bits or (16,)),),
            ranges_g=(max(offered.ranges_g),),
            channels=(max(offered.channels),) if offered.channels else (),
        )
        _check_same(self.name, self.settings, chosen)
        reply = self._checked(await self._request(cp, PmdCommand.start(self.measurement, chosen)))
        factors = reply.settings().factors if reply.params else ()
        self.g_per_count = factors[0] if factors else _H10_G_PER_COUNT
        self.settings = chosen
        log.info("polar-pmd: accelerometer at %s", chosen)

    async def stop(self, client: BleakClient) -> None:
        if self._cp is None:
            return
        reply = await self._request(self._cp, PmdCommand(PmdOp.STOP, self.measurement))
        if not reply.ok:
            log.warning("polar-pmd: stop answered status %d (%s)", reply.status, reply.meaning)

    async def _request(self, cp: _ControlPoint, command: PmdCommand) -> PmdResponse:
        reply = PmdResponse.from_bytes(await cp.request(bytes(command), command.op))
        if reply.op is not command.op or reply.measurement_type != command.measurement_type:
            raise ControlPointError(self.name, command.op, -1, f"a reply to {reply.op.name}")
        return reply

    def _checked(self, reply: PmdResponse) -> PmdResponse:
        if reply.status != PmdStatus.SUCCESS:
            raise ControlPointError(self.name, reply.op, reply.status, reply.meaning)
        return reply

    def _started(self) -> PmdSettings:
        if self.settings is None:
            raise DeviceError("polar-pmd: the settings are known once the stream has started")
        return self.settings

    def decoder(self) -> PolarAccStream:
        s = self._started()
        return PolarAccStream(
            s.sample_rates_hz[0],
            g_per_count=self.g_per_count,
            resolution_bits=s.resolutions_bits[0],
        )

    def log_extra(self) -> dict[str, Any]:
        s = self._started()
        return {
            "profile": self.name,
            "config": {
                "sample_rate_hz": s.sample_rates_hz[0],
                "range_g": s.ranges_g[0],
                "resolution_bits": s.resolutions_bits[0],
                "g_per_count": self.g_per_count,
            },
        }


class RscDriver:
    """A standard Running Speed and Cadence footpod: read feature and location; nothing to start."""

    name: str = "rsc"
    notify_uuids: tuple[str, ...] = (RSC_MEASUREMENT,)
    fs_hz: float | None = None  # cadence readings, not samples

    def __init__(self, unit: CadenceUnit = CadenceUnit.AUTO) -> None:
        self.unit = unit
        self.feature: RscFeature | None = None
        self.location: RscSensorLocation | None = None

    async def start(self, client: BleakClient) -> None:
        self.feature = RscFeature.from_bytes(bytes(await client.read_gatt_char(RSC_FEATURE)))
        if client.services.get_characteristic(SENSOR_LOCATION) is not None:
            raw = bytes(await client.read_gatt_char(SENSOR_LOCATION))
            self.location = RscSensorLocation.from_bytes(raw)
        log.info("rsc: features %s, location %s", self.feature, self.location)

    async def stop(self, client: BleakClient) -> None:
        """Nothing to stop: the measurement stops with its subscription."""

    def decoder(self) -> RscStream:
        return RscStream(self.unit)

    def log_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"profile": self.name, "config": {"cadence_unit": str(self.unit)}}
        if self.location is not None:
            extra["sensor_location"] = self.location.location.name.lower()
        return extra


class WitMotionDriver:
    """A WitMotion BLE IMU: unlock and set the output rate (not saved: the device keeps its own)."""

    name: str = "witmotion"
    notify_uuids: tuple[str, ...] = (WITMOTION_NOTIFY,)

    def __init__(self, rate_hz: int = 200) -> None:
        set_rate(rate_hz)  # raises CodecError for a rate the device cannot do
        self.rate_hz = rate_hz

    @property
    def fs_hz(self) -> float | None:
        return float(self.rate_hz)

    async def start(self, client: BleakClient) -> None:
        char = client.services.get_characteristic(WITMOTION_WRITE)
        response = char is None or "write-without-response" not in char.properties
        for command in (unlock(), set_rate(self.rate_hz)):
            await client.write_gatt_char(WITMOTION_WRITE, bytes(command), response=response)

    async def stop(self, client: BleakClient) -> None:
        """Nothing to stop: the device streams whenever it is subscribed."""

    def decoder(self) -> WitMotionStream:
        return WitMotionStream(float(self.rate_hz))

    def log_extra(self) -> dict[str, Any]:
        return {"profile": self.name, "config": {"sample_rate_hz": self.rate_hz}}


Driver = RawImuDriver | PolarPmdDriver | RscDriver | WitMotionDriver


def _check_same(profile: str, before: object | None, now: object) -> None:
    if before is not None and before != now:
        raise DeviceError(
            f"{profile}: the device came back with {now} instead of {before}; the session was "
            "started for the first configuration: start a new session"
        )


def notify_uuids_of(profile: str) -> tuple[str, ...]:
    """The characteristics whose notifications the profile's decoder reads."""
    for driver in (RawImuDriver, PolarPmdDriver, RscDriver, WitMotionDriver):
        if driver.name == profile:
            return driver.notify_uuids
    raise DeviceError(f"unknown profile {profile!r}: use raw-imu, polar-pmd, rsc or witmotion")


def decoder_from_log(extra: Mapping[str, Any]) -> StreamDecoder:
    """The stream decoder a recording's header ``extra`` describes (see ``log_extra``).

    Raises ``DeviceError`` when ``extra`` names no known profile or lacks its configuration.
    """
    profile, config = extra.get("profile"), extra.get("config")
    if not isinstance(config, Mapping):
        raise DeviceError(f"the recording's header has no profile configuration: {dict(extra)}")
    try:
        if profile == RawImuDriver.name:
            axes = Axes.ACC | Axes.GYRO if config["gyro"] else Axes.ACC
            return RawImuStream(
                RawImuConfig(
                    int(config["sample_rate_hz"]),
                    int(config["acc_range_g"]),
                    int(config["gyro_range_dps"]),
                    axes,
                )
            )
        if profile == PolarPmdDriver.name:
            return PolarAccStream(
                float(config["sample_rate_hz"]),
                g_per_count=float(config["g_per_count"]),
                resolution_bits=int(config["resolution_bits"]),
            )
        if profile == RscDriver.name:
            return RscStream(CadenceUnit(config["cadence_unit"]))
        if profile == WitMotionDriver.name:
            return WitMotionStream(float(config["sample_rate_hz"]))
    except (KeyError, TypeError, ValueError) as e:
        raise DeviceError(f"{profile}: the recorded configuration is incomplete: {e}") from None
    raise DeviceError(
        f"unknown profile {profile!r} in the recording's header: use raw-imu, polar-pmd, rsc or "
        "witmotion"
    )
