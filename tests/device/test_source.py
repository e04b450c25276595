"""``BleSource`` against a hand-built raw-IMU footpod through unmodified bleak: decoded samples,
counters for lost and malformed notifications, the end on ``session_done``, and a recording that
replays through ``RecordedSource`` to the very same blocks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from device.drivers import RawImuDriver
from device.errors import DeviceError, DeviceNotFoundError
from device.link import LinkConfig, RawNotification
from device.profiles.raw_imu import (
    RAW_IMU_CONFIG,
    RAW_IMU_CONTROL_POINT,
    RAW_IMU_DATA,
    RAW_IMU_SERVICE,
    RawImuConfig,
    RawImuOp,
    RawImuResponse,
    RawImuResult,
    encode_batches,
)
from device.source import BleSource
from dsp.events import Cue, CueKind, Placement
from dsp.samples import SampleBlock
from firmware_sim.bluez import Characteristic, EmulatedPeripheral, Service
from firmware_sim.bluez.testing import emulated_bluez
from recordings.logfile import LogHeader, LogWriter, Notification, utc_now
from recordings.sources import RecordedSource

pytestmark = pytest.mark.ble

NAME = "Raw Pod"
ADDRESS = "C0:FF:EE:00:00:03"
FS_HZ = 200
CONFIG = RawImuConfig(FS_HZ, 16, 2000)
PER_PACKET = 10
PACKETS = 40
SKIPPED = 15  # the pod never sends this packet
CORRUPT_AFTER = 25  # a garbage notification follows this packet


def signal() -> SampleBlock:
    t = np.arange(PACKETS * PER_PACKET) / FS_HZ
    rng = np.random.default_rng(7)
    acc = np.column_stack([np.sin(2 * np.pi * 3 * t), np.cos(2 * np.pi * 3 * t), 1 + 0 * t])
    gyro = rng.normal(0, 200, (t.size, 3))
    return SampleBlock(t, acc + rng.normal(0, 0.01, acc.shape), gyro)


class Pod:
    """Streams ``signal()`` in real time once started; skips one packet, sends one garbage."""

    def __init__(self) -> None:
        self.packets = encode_batches(signal(), 0, mtu=3 + 8 + 12 * PER_PACKET, config=CONFIG)
        assert len(self.packets) == PACKETS
        self.started = asyncio.Event()
        self.peripheral = EmulatedPeripheral(
            NAME,
            ADDRESS,
            [
                Service(
                    RAW_IMU_SERVICE,
                    [
                        Characteristic(RAW_IMU_CONFIG, ["read", "write"], bytes(CONFIG)),
                        Characteristic(
                            RAW_IMU_CONTROL_POINT, ["write", "indicate"], on_write=self.command
                        ),
                        Characteristic(RAW_IMU_DATA, ["notify"]),
                    ],
                )
            ],
            mtu=247,
        )

    def command(self, data: bytes) -> bytes:
        op = RawImuOp(data[0])
        if op is RawImuOp.START:
            self.started.set()
        return bytes(RawImuResponse(op, RawImuResult.SUCCESS))

    async def stream(self) -> None:
        await self.started.wait()
        await self.peripheral.wait_subscribed(RAW_IMU_DATA)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for k, packet in enumerate(self.packets):
            # a batch leaves when its last sample is taken: device time and host time agree
            await asyncio.sleep(t0 + (k + 1) * PER_PACKET / FS_HZ - loop.time())
            if k != SKIPPED:
                await self.peripheral.notify(RAW_IMU_DATA, packet)
            if k == CORRUPT_AFTER:
                await self.peripheral.notify(RAW_IMU_DATA, b"\x00\x01garbage")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


def test_live_samples_counters_and_byte_exact_replay(tmp_path: Path) -> None:
    pod = Pod()
    log_path = tmp_path / "run.log"
    cues: list[Cue] = []
    live: list[SampleBlock] = []
    writer: LogWriter | None = None

    def record(n: RawNotification) -> None:
        assert writer is not None
        writer.write(Notification(n.host_t_s, n.characteristic, n.data))

    source = BleSource(
        NAME,
        RawImuDriver(CONFIG),
        placement=Placement.FOOT,
        link_config=LinkConfig(silent_s=10.0),
        recorder=record,
        on_cue=cues.append,
    )
    with pytest.raises(DeviceError, match="not connected"):
        _ = source.fs_hz

    async def scenario() -> None:
        nonlocal writer
        async with emulated_bluez(pod.peripheral), asyncio.TaskGroup() as tasks:
            tasks.create_task(pod.stream())
            async with source:
                assert source.fs_hz == FS_HZ
                header = LogHeader(NAME, "foot", FS_HZ, utc_now(), extra=source.driver.log_extra())
                with LogWriter(log_path, header) as writer:
                    async for block in source:
                        assert isinstance(block, SampleBlock)
                        live.append(block)
                        if sum(map(len, live)) == (PACKETS - 1) * PER_PACKET:
                            done = Cue(block.t_s[-1], CueKind.SESSION_DONE, "Workout complete")
                            source.on_cue(done)  # ends the iteration
            await pod.peripheral.wait_disconnected()

    run(scenario)
    assert cues and cues[-1].kind is CueKind.SESSION_DONE
    got = SampleBlock.concat(live)
    want = signal()
    kept = np.ones(len(want), dtype=bool)
    kept[SKIPPED * PER_PACKET : (SKIPPED + 1) * PER_PACKET] = False
    lsb_g, lsb_dps = 16 / 32768, 2000 / 32768
    np.testing.assert_allclose(got.acc_g, want.acc_g[kept], atol=lsb_g)
    assert got.gyro_dps is not None and want.gyro_dps is not None
    np.testing.assert_allclose(got.gyro_dps, want.gyro_dps[kept], atol=lsb_dps)
    # the hole the lost packet left is in the host timestamps, one packet wide
    dt = np.diff(got.t_s)
    hole = SKIPPED * PER_PACKET - 1
    assert dt[hole] == pytest.approx((PER_PACKET + 1) / FS_HZ, abs=5e-3)
    assert np.all(np.delete(dt, hole) < 1.5 / FS_HZ)
    counters = source.counters()
    assert counters["lost_packets"] == 1
    assert counters["lost_samples"] == PER_PACKET
    assert counters["malformed"] == 1
    assert counters["packets"] == PACKETS - 1
    assert counters["connects"] == 1 and counters["dropped"] == 0

    replay = RecordedSource.open(log_path)
    assert replay.fs_hz == FS_HZ and replay.placement is Placement.FOOT
    replayed = list(replay)
    assert len(replayed) == len(live)
    for a, b in zip(live, replayed, strict=True):
        assert isinstance(b, SampleBlock)
        np.testing.assert_array_equal(a.t_s, b.t_s)
        np.testing.assert_array_equal(a.acc_g, b.acc_g)
        np.testing.assert_array_equal(a.gyro_dps, b.gyro_dps)
    assert replay.decoder is not None and replay.decoder.lost_packets == 1
    assert replay.decoder.malformed == 1


def test_a_device_that_never_answers_is_not_found_in_time() -> None:
    pod = Pod()

    async def scenario() -> None:
        async with emulated_bluez(pod.peripheral):
            source = BleSource(
                "Some Other Pod",
                RawImuDriver(CONFIG),
                placement=Placement.FOOT,
                link_config=LinkConfig(scan_timeout_s=0.2, backoff_initial_s=0.05),
                first_connect_s=0.6,
            )
            with pytest.raises(DeviceNotFoundError, match="Some Other Pod"):
                async with source:
                    pass

    run(scenario)
