"""The simulated footpod of every profile, through unmodified bleak and the emulated BlueZ.

Every test decodes what bleak received with the profile's own stream decoder and compares it
with the ground truth: a second ``SimulatedAthlete`` built with the same seed gives the same
samples, so the decoded values must equal its samples to the codec's quantisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakGATTProtocolError

from device.profiles import gatt, raw_imu, rsc
from device.profiles import polar_pmd as pmd
from device.profiles import witmotion as wit
from device.profiles.polar_pmd import (
    MeasurementType,
    PmdCommand,
    PmdDataFrame,
    PmdOp,
    PmdResponse,
    PmdSettings,
    PmdStatus,
    PolarAccStream,
)
from device.profiles.raw_imu import (
    Axes,
    RawImuCommand,
    RawImuConfig,
    RawImuOp,
    RawImuPacket,
    RawImuResponse,
    RawImuStream,
)
from device.profiles.rsc import CadenceUnit, RscFeature, RscSensorLocation, RscStream
from device.profiles.witmotion import WitMotionStream
from dsp.events import Cue, CueKind, Placement
from dsp.plan import SessionPlan
from dsp.samples import SampleBlock
from firmware_sim.bluez.testing import emulated_bluez
from firmware_sim.footpod import SimulatedFootpod
from firmware_sim.footpod.rsc import RscServer
from firmware_sim.runner import SimulatedAthlete

pytestmark = pytest.mark.ble

NAME = "Stridecue Footpod"
TIMEOUT_S = 5.0
OFFSET_S = 1000.0  # the footpod's default device clock at athlete time 0
SHORT = SessionPlan("short", warmup_s=20.0, reps=1, rep_s=10.0, min_recovery_s=10.0,
                    cooldown_s=10.0)  # fmt: skip
LONG = SessionPlan("long", warmup_s=300.0, reps=1, rep_s=10.0, min_recovery_s=10.0,
                   cooldown_s=10.0)  # fmt: skip


def athlete(
    placement: Placement, plan: SessionPlan = SHORT, *, closed_loop: bool = False
) -> SimulatedAthlete:
    return SimulatedAthlete(plan, placement, seed=11, fs_hz=200.0, closed_loop=closed_loop)


def reference(placement: Placement, plan: SessionPlan = SHORT) -> SampleBlock:
    """Everything the athlete will ever send: the ground truth of the stream."""
    return athlete(placement, plan).read(1e5)


@dataclass
class Received:
    """Notifications of one characteristic, host-stamped by the callback (which only stores)."""

    items: list[tuple[float, bytes]] = field(default_factory=list)

    def __call__(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self.items.append((time.monotonic(), bytes(data)))

    async def wait_for(self, count: int) -> None:
        """Poll (with a deadline) until ``count`` notifications are in."""
        async with asyncio.timeout(TIMEOUT_S):
            while len(self.items) < count:
                await asyncio.sleep(0.005)

    def decode(self, stream: RawImuStream | PolarAccStream | WitMotionStream) -> SampleBlock:
        return SampleBlock.concat([b for t, d in self.items for b in stream.feed(t, d)])


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=40))


@asynccontextmanager
async def served(
    pod: SimulatedFootpod, on_lost: Callable[[BleakClient], None] | None = None
) -> AsyncIterator[BleakClient]:
    """The footpod served and streaming-ready, and a bleak client connected to it."""
    async with emulated_bluez(pod.peripheral):
        task = asyncio.create_task(pod.serve(), name="footpod")
        try:
            device = await BleakScanner.find_device_by_name(NAME, timeout=TIMEOUT_S)
            assert device is not None, "the footpod was not found by a scan"
            client = BleakClient(device, disconnected_callback=on_lost, timeout=TIMEOUT_S)
            async with client:
                yield client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.005)


async def wait_done(pod: SimulatedFootpod, data: Received) -> None:
    """The session is over and bleak delivered every notification the footpod sent."""
    await until(lambda: pod.athlete.done)
    await data.wait_for(pod.notifications)


async def read_device_information(client: BleakClient) -> tuple[str, str, str, int]:
    texts = [
        gatt.DeviceInfoString.from_bytes(await client.read_gatt_char(gatt.sig_uuid(u))).text
        for u in (gatt.MANUFACTURER_NAME, gatt.MODEL_NUMBER, gatt.FIRMWARE_REVISION)
    ]
    battery = gatt.BatteryLevel.from_bytes(
        await client.read_gatt_char(gatt.sig_uuid(gatt.BATTERY_LEVEL))
    )
    return texts[0], texts[1], texts[2], battery.percent


def quantised(values: np.ndarray, lsb: float, full_scale: float) -> np.ndarray:
    return np.clip(np.rint(values / lsb), -full_scale / lsb, full_scale / lsb - 1) * lsb


def print_figures(label: str, data: Received, pod: SimulatedFootpod) -> None:
    t = np.array([t for t, _ in data.items])
    span_s = float(t[-1] - t[0])
    print(
        f"\n{label}: {pod.notifications} notifications, {pod.sent_samples} samples in "
        f"{span_s:.2f} s ({pod.notifications / span_s:.0f} notifications/s, "
        f"{pod.sent_samples / span_s:.0f} samples/s, largest gap {np.diff(t).max() * 1e3:.1f} ms)"
    )


# --- raw-IMU ----------------------------------------------------------------------------------


async def raw_imu_start(client: BleakClient, data: Received) -> asyncio.Queue[bytes]:
    """Subscribe to indications and data, send START; returns the response queue."""
    responses: asyncio.Queue[bytes] = asyncio.Queue()
    await client.start_notify(raw_imu.RAW_IMU_CONTROL_POINT, lambda _c, d: responses.put_nowait(d))
    await client.start_notify(raw_imu.RAW_IMU_DATA, data)
    await client.write_gatt_char(
        raw_imu.RAW_IMU_CONTROL_POINT, bytes(RawImuCommand(RawImuOp.START)), response=True
    )
    async with asyncio.timeout(TIMEOUT_S):
        assert RawImuResponse.from_bytes(await responses.get()).ok
    return responses


def packet_indices(packets: list[RawImuPacket], fs_hz: float, step: int) -> np.ndarray:
    """Athlete sample index of every sample, from the packets' own device timestamps."""
    first = np.array([round((p.t_first_us * 1e-6 - OFFSET_S) * fs_hz) for p in packets])
    return np.concatenate(
        [f + step * np.arange(p.samples.shape[0]) for f, p in zip(first, packets, strict=True)]
    )


def test_raw_imu_streams_the_athletes_samples_exactly() -> None:
    pod = SimulatedFootpod(athlete(Placement.FOOT), "raw-imu", speed=40.0)
    truth = reference(Placement.FOOT)
    data = Received()

    async def scenario() -> None:
        async with served(pod) as client:
            info = await read_device_information(client)
            assert info == ("Stridecue", "Stridecue raw-IMU footpod (simulated)", "sim", 100)
            config = RawImuConfig.from_bytes(await client.read_gatt_char(raw_imu.RAW_IMU_CONFIG))
            assert config == RawImuConfig(200, 16, 2000, Axes.ACC | Axes.GYRO)
            responses = await raw_imu_start(client, data)
            await wait_done(pod, data)
            await client.write_gatt_char(
                raw_imu.RAW_IMU_CONTROL_POINT, bytes(RawImuCommand(RawImuOp.STOP)), response=True
            )
            async with asyncio.timeout(TIMEOUT_S):
                response = RawImuResponse.from_bytes(await responses.get())
            assert response.request is RawImuOp.STOP and response.ok
            assert not pod.profile.streaming()

    run(scenario)
    assert pod.commands == [b"\x01", b"\x02"]
    assert {len(d) for _, d in data.items} <= set(range(1, 247 - 3 + 1))
    stream = RawImuStream(RawImuConfig(200, 16, 2000, Axes.ACC | Axes.GYRO))
    decoded = data.decode(stream)
    assert stream.lost_packets == stream.malformed == 0
    assert len(decoded) == len(truth) == pod.sent_samples
    lsb_g, lsb_dps = 16 / 32768, 2000 / 32768
    np.testing.assert_allclose(decoded.acc_g, quantised(truth.acc_g, lsb_g, 16), atol=1e-9)
    assert decoded.gyro_dps is not None and truth.gyro_dps is not None
    np.testing.assert_allclose(
        decoded.gyro_dps, quantised(truth.gyro_dps, lsb_dps, 2000), atol=1e-9
    )
    # The device clock: athlete time + 1000 s, in µs, on every packet.
    packets = [RawImuPacket.from_bytes(d) for _, d in data.items]
    assert [p.seq for p in packets] == list(range(len(packets)))
    np.testing.assert_array_equal(packet_indices(packets, 200.0, 1), np.arange(len(truth)))
    print_figures("raw-imu 200 Hz 6-axis at 40×", data, pod)


def test_raw_imu_refuses_what_the_device_cannot_do() -> None:
    pod = SimulatedFootpod(athlete(Placement.TRUNK), "raw-imu", speed=40.0)

    async def scenario() -> None:
        async with served(pod) as client:
            config = RawImuConfig.from_bytes(await client.read_gatt_char(raw_imu.RAW_IMU_CONFIG))
            assert config == RawImuConfig(200, 16, 2000, Axes.ACC)  # a trunk sensor: no gyro
            for bad, code in [
                (RawImuConfig(200, 16, 2000, Axes.ACC | Axes.GYRO), 0xFF),  # no gyro here
                (RawImuConfig(150, 16, 2000, Axes.ACC), 0xFF),  # not 200 Hz / a whole number
            ]:
                with pytest.raises(BleakGATTProtocolError) as refused:
                    await client.write_gatt_char(raw_imu.RAW_IMU_CONFIG, bytes(bad), response=True)
                assert refused.value.code == code
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.write_gatt_char(raw_imu.RAW_IMU_CONFIG, b"\x01", response=True)
            assert refused.value.code == 0x0D  # invalid length
            # A control point written before its indications are on (the SIG's 0xFD).
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.write_gatt_char(raw_imu.RAW_IMU_CONTROL_POINT, b"\x01", response=True)
            assert refused.value.code == 0xFD
            fifty = RawImuConfig(50, 4, 2000, Axes.ACC)
            await client.write_gatt_char(raw_imu.RAW_IMU_CONFIG, bytes(fifty), response=True)
            assert await client.read_gatt_char(raw_imu.RAW_IMU_CONFIG) == bytes(fifty)
            assert pod.fs_hz == 50.0

    run(scenario)


def test_raw_imu_controls_skip_corrupt_stall_rate_and_link_loss() -> None:
    pod = SimulatedFootpod(athlete(Placement.FOOT, LONG), "raw-imu", speed=20.0)
    lost = asyncio.Event()
    data = Received()
    stream = RawImuStream(RawImuConfig(200, 16, 2000, Axes.ACC | Axes.GYRO))

    async def scenario() -> None:
        async with served(pod, on_lost=lambda _c: lost.set()) as client:
            await raw_imu_start(client, data)
            await data.wait_for(20)

            # Lost and damaged packets: the decoder counts both from the sequence numbers.
            pod.skip_next(2)
            pod.corrupt_next(3)
            await data.wait_for(len(data.items) + 20)
            for t, d in data.items:
                stream.feed(t, d)
            assert stream.malformed == 3  # truncated, bad header, random bytes
            assert stream.lost_packets == 2 + 3  # the damaged ones' numbers are missing too

            # Stall: still connected, but silent for 0.3 s; its samples are lost.
            fed = len(data.items)
            stalled_at = time.monotonic()
            pod.stall(0.3)
            await until(lambda: len(data.items) > fed + 10)
            arrivals = np.array([t for t, _ in data.items[fed:]])
            # (a burst already under way when the stall began may still finish)
            assert not np.any((arrivals > stalled_at + 0.02) & (arrivals < stalled_at + 0.3))
            assert client.is_connected
            for t, d in data.items[fed:]:
                stream.feed(t, d)
            assert stream.lost_packets >= 5 + 0.28 * 20 * 200 / 19  # 6 s of 19-sample packets

            # Half the rate: every other athlete sample, and the configuration says so.
            at_200_hz = len(data.items)
            pod.set_rate(100.0)
            await data.wait_for(at_200_hz + 15)
            config = RawImuConfig.from_bytes(await client.read_gatt_char(raw_imu.RAW_IMU_CONFIG))
            assert config.sample_rate_hz == 100
            # A burst encoded before the change may still be in flight: the last 5 are not.
            # (At 20× speed host receive times cannot space samples: read the device clock.)
            last = [RawImuPacket.from_bytes(d) for _, d in data.items[-5:]]
            spacing_us = [
                (b.t_first_us - a.t_first_us) / a.samples.shape[0]
                for a, b in itertools.pairwise(last)
            ]
            assert spacing_us == [10_000.0] * 4

            # Link loss: bleak's callback fires; the stream stops until the next start.
            await pod.drop_link()
            async with asyncio.timeout(TIMEOUT_S):
                await lost.wait()
            assert not client.is_connected and not pod.profile.started()

        # Every sample that arrived intact is the athlete's own, at the index its device
        # timestamp names (every other one at 100 Hz).
        good = [RawImuPacket.from_bytes(d) for _, d in data.items if pod.profile.accepts(d)]
        before = good[: at_200_hz - 3]
        after = good[-5:]
        index = np.concatenate([packet_indices(before, 200.0, 1), packet_indices(after, 200.0, 2)])
        assert np.all(packet_indices(after, 200.0, 2) % 2 == 0)
        values = np.concatenate([p.samples for p in before + after]).astype(np.float64)
        truth = reference(Placement.FOOT, LONG)
        assert truth.gyro_dps is not None
        np.testing.assert_allclose(
            values[:, :3] * 16 / 32768, quantised(truth.acc_g[index], 16 / 32768, 16), atol=1e-9
        )
        np.testing.assert_allclose(
            values[:, 3:] * 2000 / 32768,
            quantised(truth.gyro_dps[index], 2000 / 32768, 2000),
            atol=1e-9,
        )

    run(scenario)


# --- RSC --------------------------------------------------------------------------------------


def true_cadence_spm(t_s: np.ndarray, plan: SessionPlan = SHORT) -> np.ndarray:
    """Steps/min over the 2 s before each ``t_s``: contacts of both feet begun and over."""
    truth = athlete(Placement.FOOT, plan)
    truth.read(1e5)
    contacts = np.array([(ic, to) for ic, to, _ in truth.truth().contacts_s])
    ic, to = contacts[:, 0], contacts[:, 1]
    out = np.zeros(len(t_s))
    for k, t in enumerate(t_s):
        recent = ic[(ic >= t - 2.0) & (to <= t)]
        out[k] = 60.0 * (recent.size - 1) / (recent[-1] - recent[0]) if recent.size > 1 else 0.0
    return out


@pytest.mark.parametrize(
    ("device_unit", "client_unit"),
    [("steps", CadenceUnit.STEPS), ("strides", CadenceUnit.AUTO)],
)
def test_rsc_cadence_is_the_true_cadence(device_unit: str, client_unit: CadenceUnit) -> None:
    pod = SimulatedFootpod(athlete(Placement.FOOT), "rsc", speed=40.0, cadence_unit=device_unit)
    data = Received()

    async def scenario() -> None:
        async with served(pod) as client:
            assert (await read_device_information(client))[1] == "Stridecue RSC footpod (simulated)"
            feature = RscFeature.from_bytes(await client.read_gatt_char(rsc.RSC_FEATURE))
            assert feature.features == (
                rsc.RscFeatureFlags.STRIDE_LENGTH | rsc.RscFeatureFlags.RUNNING_STATUS
            )
            location = RscSensorLocation.from_bytes(
                await client.read_gatt_char(rsc.SENSOR_LOCATION)
            )
            assert location.location is rsc.SensorLocation.TOP_OF_SHOE
            pod.corrupt_next(3)
            await client.start_notify(rsc.RSC_MEASUREMENT, data)  # no start command
            await wait_done(pod, data)

    run(scenario)
    stream = RscStream(client_unit)
    readings = [r for t, d in data.items for r in stream.feed(t, d)]
    assert stream.malformed == 3
    assert stream.detected_unit == CadenceUnit(device_unit)
    # One measurement every 0.5 s of athlete time; the first three were damaged.
    last_sample_s = (reference(Placement.FOOT).t_s.size - 1) / 200.0
    t_s = 0.5 * np.arange(1, int(last_sample_s / 0.5) + 1)
    truth = true_cadence_spm(t_s)[3:]
    assert len(readings) == len(truth) == pod.sent_samples  # (intact ones only)
    cadence = np.array([r.cadence_spm for r in readings])
    # Rounding to whole steps (or whole strides, doubled) is all that separates them.
    np.testing.assert_allclose(cadence, truth, atol=0.5 if device_unit == "steps" else 1.0)
    assert truth.max() > 180.0  # the rep's stride cadence was in the stream
    # Speed is the footpod's model (cadence × step length), unquantised cadence in.
    assert isinstance(pod.profile, RscServer)
    model_m_s = [c / 60.0 * pod.profile.step_length_m(c) if c > 0 else 0.0 for c in truth]
    speed = np.array([r.speed_m_s for r in readings])
    np.testing.assert_allclose(speed, model_m_s, atol=1 / 256 + 0.04)


def test_closed_loop_cues_reach_the_athlete() -> None:
    pod = SimulatedFootpod(
        athlete(Placement.FOOT, LONG, closed_loop=True), "rsc", speed=20.0, tick_s=0.02
    )
    data = Received()

    async def scenario() -> None:
        async with served(pod) as client:
            await client.start_notify(rsc.RSC_MEASUREMENT, data)
            await data.wait_for(10)
            heard_s = 0.5 * len(data.items)  # athlete time of the last measurement in
            # The engine stamps cues with host time: the athlete hears them when they arrive.
            pod.on_cue(Cue(t_s=1e6, kind=CueKind.GO, text="go"))
            await data.wait_for(len(data.items) + 30)
            pod.on_cue(Cue(t_s=1e6, kind=CueKind.EASE, text="ease"))
            await data.wait_for(len(data.items) + 4)
            ((start_s, end_s),) = pod.athlete.truth().reps_s
            delay_s = pod.athlete.profile.reaction_delay_s
            # The athlete's clock was at most one measurement + one tick past the last one in.
            assert heard_s + delay_s <= start_s <= heard_s + delay_s + 0.5 + 20 * 0.02 + 0.1
            assert end_s - start_s >= 30 * 0.5 - 0.5 - 20 * 0.02 - 0.1

    run(scenario)
    readings = [r for t, d in data.items for r in RscStream(CadenceUnit.STEPS).feed(t, d)]
    easy, stride = pod.athlete.profile.easy_cadence_spm, pod.athlete.profile.stride_cadence_spm
    assert max(r.cadence_spm for r in readings) > (easy + stride) / 2
    assert readings[9].cadence_spm < (easy + stride) / 2


# --- Polar PMD --------------------------------------------------------------------------------


async def pmd_command(
    client: BleakClient, responses: asyncio.Queue[bytes], command: PmdCommand
) -> PmdResponse:
    await client.write_gatt_char(pmd.PMD_CONTROL_POINT, bytes(command), response=True)
    async with asyncio.timeout(TIMEOUT_S):
        response = PmdResponse.from_bytes(await responses.get())
    assert response.op is command.op
    return response


STOP = PmdCommand(PmdOp.STOP, MeasurementType.ACC)


@pytest.mark.parametrize(("delta", "range_g"), [(False, 8), (True, 2)])
def test_polar_pmd_frames_carry_the_athletes_samples(delta: bool, range_g: int) -> None:
    pod = SimulatedFootpod(athlete(Placement.TRUNK), "polar-pmd", speed=40.0, delta=delta)
    data = Received()
    start = PmdCommand.start(
        MeasurementType.ACC,
        PmdSettings(sample_rates_hz=(200,), resolutions_bits=(16,), ranges_g=(range_g,)),
    )

    async def scenario() -> None:
        async with served(pod) as client:
            responses: asyncio.Queue[bytes] = asyncio.Queue()
            await client.start_notify(pmd.PMD_CONTROL_POINT, lambda _c, d: responses.put_nowait(d))
            await client.start_notify(pmd.PMD_DATA, data)
            try:
                offer = await pmd_command(
                    client, responses, PmdCommand(PmdOp.GET_SETTINGS, MeasurementType.ACC)
                )
                assert offer.ok
                assert offer.settings() == PmdSettings((25, 50, 100, 200), (16,), (2, 4, 8))
                pod.corrupt_next(3)
                assert (await pmd_command(client, responses, start)).ok
                again = await pmd_command(client, responses, start)
                assert again.status == PmdStatus.ALREADY_IN_STATE
                await wait_done(pod, data)
            finally:
                assert (await pmd_command(client, responses, STOP)).ok

    run(scenario)
    assert pod.commands[-1] == b"\x03\x02"
    assert {len(d) for _, d in data.items} <= set(range(1, 247 - 3 + 1))
    stream = PolarAccStream(200.0)
    decoded = data.decode(stream)
    assert stream.malformed == 3
    truth = reference(Placement.TRUNK)
    mg = np.rint(np.clip(truth.acc_g * 1000.0, -1000.0 * range_g, 1000.0 * range_g))
    if range_g == 2:
        assert np.any(np.abs(truth.acc_g) > 2.0)  # the clip is exercised
    # The three damaged frames were the first: everything after them is exact.
    assert len(decoded) == pod.sent_samples < len(truth)
    np.testing.assert_allclose(decoded.acc_g, mg[-len(decoded) :] / 1000.0, atol=1e-12)
    # Every frame is stamped with its LAST sample's device time, ns since 2000-01-01.
    frames = [PmdDataFrame.from_bytes(d) for _, d in data.items if pod.profile.accepts(d)]
    last_ns = np.rint((truth.t_s + OFFSET_S) * 1e9).astype(np.int64)
    counts = np.cumsum([f.samples.shape[0] for f in frames])
    first = len(truth) - counts[-1]
    assert [f.timestamp_ns for f in frames] == last_ns[first + counts - 1].tolist()
    print_figures(f"polar-pmd 200 Hz {'delta' if delta else 'plain'} at 40×", data, pod)


def test_polar_pmd_refuses_a_small_mtu_and_records_the_stop() -> None:
    pod = SimulatedFootpod(athlete(Placement.TRUNK), "polar-pmd", mtu=185, speed=40.0)
    start = PmdCommand.start(
        MeasurementType.ACC, PmdSettings(sample_rates_hz=(200,), ranges_g=(8,))
    )

    async def scenario() -> None:
        async with served(pod) as client:
            responses: asyncio.Queue[bytes] = asyncio.Queue()
            await client.start_notify(pmd.PMD_CONTROL_POINT, lambda _c, d: responses.put_nowait(d))
            await client.start_notify(pmd.PMD_DATA, Received())
            try:
                refused = await pmd_command(client, responses, start)
                assert refused.status == PmdStatus.INVALID_MTU
                assert refused.meaning == "invalid mtu"
            finally:
                assert (await pmd_command(client, responses, STOP)).ok

    run(scenario)
    assert pod.commands == [bytes(start), b"\x03\x02"]
    assert pod.notifications == 0 and not pod.athlete.truth().contacts_s


# --- WitMotion --------------------------------------------------------------------------------


def test_witmotion_packets_carry_the_athletes_samples() -> None:
    pod = SimulatedFootpod(athlete(Placement.FOOT), "witmotion", speed=30.0)
    data = Received()

    async def scenario() -> None:
        async with served(pod) as client:
            info = await read_device_information(client)
            assert info[1] == "WitMotion BWT901BLECL (simulated)"
            await client.start_notify(wit.WITMOTION_NOTIFY, data)  # no start command
            await wait_done(pod, data)

    run(scenario)
    # As many 20-byte packets as MTU − 3 holds, evenly.
    assert {len(d) // 20 for _, d in data.items} <= {11, 12}
    stream = WitMotionStream(200.0)
    decoded = data.decode(stream)
    truth = reference(Placement.FOOT)
    assert truth.gyro_dps is not None and decoded.gyro_dps is not None
    assert stream.malformed == stream.discarded_bytes == 0
    assert len(decoded) == len(truth) == pod.sent_samples
    np.testing.assert_allclose(decoded.acc_g, quantised(truth.acc_g, 16 / 32768, 16), atol=1e-9)
    np.testing.assert_allclose(
        decoded.gyro_dps, quantised(truth.gyro_dps, 2000 / 32768, 2000), atol=1e-9
    )
    # Angles: the running integral of the angular rate, wrapped to ±180°.
    raw = b"".join(d for _, d in data.items)
    angles = np.array(
        [wit.WitMotionPacket.from_bytes(raw[i : i + 20]).angle_deg for i in range(0, len(raw), 20)]
    )
    expected = np.cumsum(truth.gyro_dps, axis=0) / 200.0
    error = (angles - expected + 180.0) % 360.0 - 180.0
    assert np.abs(error).max() <= 180 / 32768 / 2 + 1e-6


def test_witmotion_rate_register_halves_the_stream() -> None:
    pod = SimulatedFootpod(athlete(Placement.FOOT, LONG), "witmotion", speed=20.0)
    data = Received()
    writes = [bytes(wit.unlock()), bytes(wit.set_rate(100)), bytes(wit.save())]

    async def scenario() -> None:
        async with served(pod) as client:
            await client.start_notify(wit.WITMOTION_NOTIFY, data)
            await data.wait_for(10)
            for write in writes:
                await client.write_gatt_char(wit.WITMOTION_WRITE, write, response=False)
            await until(lambda: pod.fs_hz == 100.0)
            await data.wait_for(len(data.items) + 20)

    run(scenario)
    assert pod.commands == writes
    decoded = data.decode(WitMotionStream(200.0))
    truth = quantised(reference(Placement.FOOT, LONG).acc_g, 16 / 32768, 16)
    # A prefix at 200 Hz, then every other athlete sample from the next even index on.
    same = np.all(np.isclose(decoded.acc_g, truth[: len(decoded)], atol=1e-9), axis=1)
    split = int(np.argmin(same))
    assert split >= 10 * 12 - 12 and not same[split:].all()
    tail = decoded.acc_g[split:]
    first = split + split % 2
    np.testing.assert_allclose(tail, truth[first : first + 2 * len(tail) : 2], atol=1e-9)
    assert len(tail) >= 100  # 20 notifications of ≥ 5 samples


# --- without a bus ----------------------------------------------------------------------------


def test_invalid_settings_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        SimulatedFootpod(athlete(Placement.FOOT), "ant+")
    with pytest.raises(ValueError, match="cadence_unit"):
        SimulatedFootpod(athlete(Placement.FOOT), "raw-imu", cadence_unit="strides")
    pod = SimulatedFootpod(athlete(Placement.FOOT), "raw-imu")
    with pytest.raises(ValueError, match="whole number"):
        pod.set_rate(150.0)
    with pytest.raises(ValueError, match="whole number"):
        pod.set_rate(400.0)
    pod.set_rate(25.0)
    assert pod.fs_hz == 25.0
