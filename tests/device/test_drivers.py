"""Profile drivers against hand-built emulated peripherals, through unmodified bleak: the exact
bytes each driver writes to start and stop, the Polar status errors and the Polar stop on every
exit path; plus scanning with profile detection and rebuilding a decoder from a log header."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from bleak import BleakClient, BleakScanner

from device.drivers import (
    PolarPmdDriver,
    RawImuDriver,
    RscDriver,
    WitMotionDriver,
    decoder_from_log,
    notify_uuids_of,
)
from device.errors import ControlPointError, DeviceError
from device.link import Link, LinkConfig
from device.profiles.polar_pmd import (
    PMD_CONTROL_POINT,
    PMD_DATA,
    PMD_SERVICE,
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
    RAW_IMU_SERVICE,
    Axes,
    RawImuConfig,
    RawImuOp,
    RawImuResponse,
    RawImuResult,
    RawImuStream,
)
from device.profiles.rsc import (
    RSC_FEATURE,
    RSC_MEASUREMENT,
    RSC_SERVICE,
    SENSOR_LOCATION,
    CadenceUnit,
    RscFeatureFlags,
    RscStream,
    SensorLocation,
)
from device.profiles.witmotion import (
    WITMOTION_NOTIFY,
    WITMOTION_SERVICE,
    WITMOTION_WRITE,
    WitMotionStream,
)
from device.scan import detect_profile, scan
from firmware_sim.bluez import Characteristic, EmulatedPeripheral, Service
from firmware_sim.bluez.testing import emulated_bluez

ADDRESS = "C0:FF:EE:00:00:01"
TIMEOUT_S = 5.0
H10_STOP = bytes.fromhex("03 02")
H10_GET_SETTINGS = bytes.fromhex("01 02")
# protocols.md's H10 start (200 Hz, 16 bit, 8 g), with the records in the codec's order
H10_START = bytes.fromhex("02 02 00 01 C8 00 01 01 10 00 02 01 08 00")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


async def until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    """Poll ``condition`` with a deadline (for state that has no event to await)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def client_of(peripheral: EmulatedPeripheral) -> AsyncIterator[BleakClient]:
    async with emulated_bluez(peripheral):
        device = await BleakScanner.find_device_by_address(peripheral.address, timeout=TIMEOUT_S)
        assert device is not None
        async with BleakClient(device, timeout=TIMEOUT_S) as client:
            yield client


# --- hand-built peripherals --------------------------------------------------------------------


class RawImuPod:
    """A raw-IMU device: configuration, control point, data; answers every op with ``result``."""

    def __init__(
        self, result: RawImuResult = RawImuResult.SUCCESS, *, advertised: bool = True
    ) -> None:
        self.commands: list[bytes] = []
        self.result = result
        self.peripheral = EmulatedPeripheral(
            "Raw Pod",
            ADDRESS,
            [
                Service(
                    RAW_IMU_SERVICE,
                    [
                        Characteristic(
                            RAW_IMU_CONFIG, ["read", "write"], bytes(RawImuConfig(100, 4, 500))
                        ),
                        Characteristic(
                            RAW_IMU_CONTROL_POINT, ["write", "indicate"], on_write=self.on_command
                        ),
                        Characteristic(RAW_IMU_DATA, ["notify"]),
                    ],
                )
            ],
            advertised_uuids=None if advertised else [],
            rssi=-50 if advertised else -71,
        )

    def on_command(self, data: bytes) -> bytes:
        self.commands.append(data)
        op = RawImuOp(data[0])
        result = self.result if op is RawImuOp.START else RawImuResult.SUCCESS
        return bytes(RawImuResponse(op, result))


class PolarPod:
    """A PMD device whose stream, like an H10's, outlives the link: a second start while it
    streams is refused with ALREADY_IN_STATE, as is a stop while it does not."""

    OFFERED = PmdSettings(
        sample_rates_hz=(25, 50, 100, 200), resolutions_bits=(16,), ranges_g=(2, 4, 8)
    )

    def __init__(self, start_status: int = PmdStatus.SUCCESS) -> None:
        self.commands: list[bytes] = []
        self.streaming = False
        self.start_status = start_status
        self.peripheral = EmulatedPeripheral(
            "Polar H10 C0FFEE",
            ADDRESS,
            [
                Service(
                    PMD_SERVICE,
                    [
                        Characteristic(
                            PMD_CONTROL_POINT, ["read", "write", "indicate"], on_write=self.on_cp
                        ),
                        Characteristic(PMD_DATA, ["notify"]),
                    ],
                )
            ],
        )

    def on_cp(self, data: bytes) -> bytes:
        self.commands.append(data)
        command = PmdCommand.from_bytes(data)
        status: int = PmdStatus.SUCCESS
        params = b""
        if command.op is PmdOp.GET_SETTINGS:
            params = bytes(self.OFFERED)
        elif command.op is PmdOp.START:
            status = PmdStatus.ALREADY_IN_STATE if self.streaming else self.start_status
            self.streaming = status == PmdStatus.SUCCESS
        else:
            status = PmdStatus.SUCCESS if self.streaming else PmdStatus.ALREADY_IN_STATE
            self.streaming = False
        return bytes(PmdResponse(command.op, command.measurement_type, status, False, params))


# --- raw-IMU -------------------------------------------------------------------------------------


@pytest.mark.ble
def test_raw_imu_writes_the_wanted_configuration_then_starts_and_stops() -> None:
    pod = RawImuPod()
    wanted = RawImuConfig(200, 16, 2000, Axes.ACC | Axes.GYRO)
    driver = RawImuDriver(wanted)

    async def scenario() -> None:
        async with client_of(pod.peripheral) as client:
            await driver.start(client)
            assert pod.commands == [b"\x02", b"\x01"]  # stop what a lost link left, then start
            assert await client.read_gatt_char(RAW_IMU_CONFIG) == bytes(wanted)
            await driver.stop(client)
            assert pod.commands == [b"\x02", b"\x01", b"\x02"]

    run(scenario)
    assert driver.config == wanted
    assert driver.fs_hz == 200.0
    decoder = driver.decoder()
    assert isinstance(decoder, RawImuStream) and decoder.config == wanted
    replayed = decoder_from_log(driver.log_extra())
    assert isinstance(replayed, RawImuStream) and replayed.config == wanted


@pytest.mark.ble
def test_raw_imu_without_a_wanted_configuration_keeps_the_devices() -> None:
    pod = RawImuPod()
    driver = RawImuDriver()

    async def scenario() -> None:
        async with client_of(pod.peripheral) as client:
            await driver.start(client)

    run(scenario)
    assert driver.config == RawImuConfig(100, 4, 500)


@pytest.mark.ble
def test_raw_imu_refused_start_names_the_result() -> None:
    pod = RawImuPod(result=RawImuResult.INVALID_STATE)
    driver = RawImuDriver()

    async def scenario() -> None:
        async with client_of(pod.peripheral) as client:
            with pytest.raises(ControlPointError, match="invalid state") as info:
                await driver.start(client)
            assert info.value.status == RawImuResult.INVALID_STATE
            assert info.value.opcode == RawImuOp.START

    run(scenario)


# --- Polar PMD -----------------------------------------------------------------------------------


@pytest.mark.ble
def test_polar_starts_at_the_highest_rate_and_range_offered() -> None:
    pod = PolarPod()
    driver = PolarPmdDriver()

    async def scenario() -> None:
        async with client_of(pod.peripheral) as client:
            await driver.start(client)
            assert pod.streaming
            await driver.stop(client)
            assert not pod.streaming

    run(scenario)
    assert pod.commands == [H10_STOP, H10_GET_SETTINGS, H10_START, H10_STOP]
    assert driver.fs_hz == 200.0
    decoder = driver.decoder()
    assert isinstance(decoder, PolarAccStream)
    assert (decoder.fs_hz, decoder.g_per_count, decoder.resolution_bits) == (200, 1e-3, 16)
    replayed = decoder_from_log(driver.log_extra())
    assert isinstance(replayed, PolarAccStream)
    assert (replayed.fs_hz, replayed.g_per_count) == (200, 1e-3)


@pytest.mark.ble
@pytest.mark.parametrize(
    ("status", "meaning"),
    [(PmdStatus.INVALID_RANGE, "invalid range"), (PmdStatus.DEVICE_IN_CHARGER, "in charger")],
)
def test_polar_refused_start_raises_naming_the_status(status: int, meaning: str) -> None:
    pod = PolarPod(start_status=status)
    driver = PolarPmdDriver()

    async def scenario() -> None:
        async with client_of(pod.peripheral) as client:
            with pytest.raises(ControlPointError, match=meaning) as info:
                await driver.start(client)
            assert info.value.status == status
            assert info.value.opcode == PmdOp.START

    run(scenario)


def _polar_link(pod: PolarPod) -> Link:
    # Silence is not under test: the hand-built strap sends no data.
    return Link(pod.peripheral.name, PolarPmdDriver(), LinkConfig(silent_s=30.0))


@pytest.mark.ble
def test_polar_is_stopped_when_the_task_is_cancelled() -> None:
    pod = PolarPod()

    async def scenario() -> None:
        async with emulated_bluez(pod.peripheral):
            link = _polar_link(pod)

            async def session() -> None:
                async with link:
                    await link.wait_connected()
                    await asyncio.Event().wait()  # streams until cancelled (Ctrl-C)

            task = asyncio.create_task(session())
            await until(lambda: pod.streaming)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await pod.peripheral.wait_disconnected()

    run(scenario)
    assert pod.commands[-1] == H10_STOP
    assert not pod.streaming


@pytest.mark.ble
def test_polar_is_stopped_when_the_consumer_raises() -> None:
    pod = PolarPod()

    async def scenario() -> None:
        async with emulated_bluez(pod.peripheral):
            with pytest.raises(RuntimeError, match="engine failed"):
                async with _polar_link(pod) as link:
                    await link.wait_connected()
                    raise RuntimeError("engine failed")
            await pod.peripheral.wait_disconnected()

    run(scenario)
    assert pod.commands[-1] == H10_STOP
    assert not pod.streaming


@pytest.mark.ble
def test_polar_reconnect_stops_the_stream_left_running_before_starting() -> None:
    pod = PolarPod()

    async def scenario() -> None:
        async with emulated_bluez(pod.peripheral):
            async with _polar_link(pod) as link:
                await link.wait_connected()
                await pod.peripheral.drop_link()  # the strap keeps streaming (no stop got through)
                assert pod.streaming
                await until(lambda: link.connects == 2)
            await pod.peripheral.wait_disconnected()

    run(scenario)
    first = [H10_STOP, H10_GET_SETTINGS, H10_START]
    # Without the leading stop the second start would be refused (already in state).
    assert pod.commands == [*first, *first, H10_STOP]


@pytest.mark.ble
def test_a_refused_start_ends_the_link_with_the_error() -> None:
    pod = PolarPod(start_status=PmdStatus.INVALID_SAMPLE_RATE)

    async def scenario() -> None:
        async with emulated_bluez(pod.peripheral), _polar_link(pod) as link:
            with pytest.raises(ControlPointError, match="invalid sample rate"):
                await link.wait_connected()

    run(scenario)


# --- RSC and WitMotion ---------------------------------------------------------------------------


@pytest.mark.ble
def test_rsc_reads_feature_and_location() -> None:
    features = RscFeatureFlags.STRIDE_LENGTH | RscFeatureFlags.RUNNING_STATUS
    peripheral = EmulatedPeripheral(
        "Stryd",
        ADDRESS,
        [
            Service(
                RSC_SERVICE,
                [
                    Characteristic(RSC_MEASUREMENT, ["notify"]),
                    Characteristic(RSC_FEATURE, ["read"], int(features).to_bytes(2, "little")),
                    Characteristic(SENSOR_LOCATION, ["read"], bytes([SensorLocation.IN_SHOE])),
                ],
            )
        ],
    )
    driver = RscDriver(CadenceUnit.STRIDES)

    async def scenario() -> None:
        async with client_of(peripheral) as client:
            await driver.start(client)

    run(scenario)
    assert driver.feature is not None and driver.feature.features == features
    assert driver.location is not None and driver.location.location is SensorLocation.IN_SHOE
    assert driver.fs_hz is None
    replayed = decoder_from_log(driver.log_extra())
    assert isinstance(replayed, RscStream) and replayed.unit is CadenceUnit.STRIDES
    assert driver.log_extra()["sensor_location"] == "in_shoe"


@pytest.mark.ble
def test_witmotion_unlocks_and_sets_the_rate_without_saving() -> None:
    writes: list[bytes] = []
    peripheral = EmulatedPeripheral(
        "WT901BLE68",
        ADDRESS,
        [
            Service(
                WITMOTION_SERVICE,
                [
                    Characteristic(WITMOTION_NOTIFY, ["notify"]),
                    Characteristic(
                        WITMOTION_WRITE, ["write-without-response", "write"], on_write=writes.append
                    ),
                ],
            )
        ],
    )
    driver = WitMotionDriver(200)

    async def scenario() -> None:
        async with client_of(peripheral) as client:
            await driver.start(client)
            await driver.stop(client)
            await until(lambda: len(writes) == 2)

    run(scenario)
    assert writes == [bytes.fromhex("FF AA 69 88 B5"), bytes.fromhex("FF AA 03 0A 00")]
    decoder = driver.decoder()
    assert isinstance(decoder, WitMotionStream) and decoder.fs_hz == 200
    assert isinstance(decoder_from_log(driver.log_extra()), WitMotionStream)


def test_witmotion_refuses_a_rate_it_cannot_do() -> None:
    with pytest.raises(DeviceError, match="rate 150 Hz"):
        WitMotionDriver(150)


# --- replay from a header, scan ------------------------------------------------------------------


def test_decoder_from_log_refuses_unknown_or_incomplete_headers() -> None:
    with pytest.raises(DeviceError, match="unknown profile 'ant'"):
        decoder_from_log({"profile": "ant", "config": {}})
    with pytest.raises(DeviceError, match="incomplete"):
        decoder_from_log({"profile": "raw-imu", "config": {"sample_rate_hz": 200}})
    with pytest.raises(DeviceError, match="no profile configuration"):
        decoder_from_log({"profile": "rsc"})
    assert notify_uuids_of("polar-pmd") == (PMD_DATA,)


def test_detect_profile_prefers_the_richest_stream() -> None:
    assert detect_profile([RSC_SERVICE.upper(), RAW_IMU_SERVICE]) == "raw-imu"
    assert detect_profile([RSC_SERVICE, "0000180f-0000-1000-8000-00805f9b34fb"]) == "rsc"
    assert detect_profile([WITMOTION_SERVICE]) == "witmotion"
    assert detect_profile(["0000180d-0000-1000-8000-00805f9b34fb"]) is None


@pytest.mark.ble
def test_scan_lists_name_address_rssi_and_profile() -> None:
    advertised = PolarPod().peripheral  # advertises PMD
    silent = RawImuPod(advertised=False).peripheral  # many devices advertise no service

    async def scenario() -> None:
        async with emulated_bluez(advertised):
            (found,) = await scan(0.5)
            assert (found.name, found.address, found.profile) == (
                "Polar H10 C0FFEE",
                ADDRESS,
                "polar-pmd",
            )
            assert found.rssi_dbm == -50 and not found.discovered
        async with emulated_bluez(silent):
            (bare,) = await scan(0.5)
            assert bare.profile is None
            (found,) = await scan(0.5, discover=True)
            assert (found.profile, found.discovered, found.rssi_dbm) == ("raw-imu", True, -71)

    run(scenario)
