"""`stridecue bench ble`: the Bluetooth path, end to end, on the emulated BlueZ (no hardware).

Standalone: it starts its own private dbus-daemon and a simulated raw-IMU footpod in this
process, and connects to it with unmodified bleak through the same ``BleSource`` as a live run.

- ``notify_to_step_*_ms``: for every step, from the moment bleak delivered the notification that
  carried the sample confirming the step to the moment the engine emitted the step (queue,
  decoding, DSP; the radio is not part of it), at 200 Hz, 6 axes, in real time.
- ``samples_sent`` / ``samples_lost``: a sustained 1 kHz, 6-axis raw-IMU stream: every sample the
  footpod sent against every sample the decoder delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from device.drivers import RawImuDriver
from device.link import LinkConfig, RawNotification
from device.source import BleSource
from dsp.engine import StrideEngine
from dsp.events import Placement, StepEvent
from dsp.plan import SessionPlan
from dsp.samples import SampleBlock
from firmware_sim.bluez.testing import emulated_bluez
from firmware_sim.footpod import SimulatedFootpod
from firmware_sim.runner import SimulatedAthlete

NAME = "Stridecue Bench Footpod"
PLAN = SessionPlan(name="nrr", warmup_s=600, reps=1, rep_s=30, min_recovery_s=60, cooldown_s=60)


def _clock() -> tuple[Callable[[], float], list[float]]:
    """A monotonic clock that remembers its first reading (the link's origin)."""
    first: list[float] = []

    def clock() -> float:
        now = time.monotonic()
        if not first:
            first.append(now)
        return now

    return clock, first


async def _stream(fs_hz: float, seconds: float, *, engine: bool) -> dict[str, Any]:
    athlete = SimulatedAthlete(PLAN, Placement.FOOT, seed=5, fs_hz=fs_hz)
    footpod = SimulatedFootpod(athlete, "raw-imu", name=NAME, speed=1.0)
    latencies_ms: list[float] = []
    received = 0
    async with emulated_bluez(footpod.peripheral):
        server = asyncio.create_task(footpod.serve(), name="bench-footpod")
        clock, origin = _clock()
        arrived: list[float] = []

        def note(n: RawNotification) -> None:
            arrived.append(origin[0] + n.host_t_s)  # when bleak delivered it

        try:
            async with BleSource(
                NAME,
                RawImuDriver(),
                placement=Placement.FOOT,
                link_config=LinkConfig(silent_s=2.0),
                recorder=note,
                clock=clock,
            ) as source:
                fs = source.fs_hz or fs_hz
                dsp = StrideEngine(Placement.FOOT, fs) if engine else None
                deadline = time.monotonic() + seconds
                async for reading in source:
                    assert isinstance(reading, SampleBlock)
                    received += len(reading)
                    if dsp is not None:
                        delivered = arrived[-1]
                        steps = [e for e in dsp.process(reading) if isinstance(e, StepEvent)]
                        done = time.monotonic()
                        latencies_ms += [(done - delivered) * 1000.0 for _ in steps]
                    if time.monotonic() >= deadline:
                        break
                lost_samples = source.decoder.lost_samples
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server
    return {
        "latencies_ms": latencies_ms,
        "sent": footpod.sent_samples,
        "received": received,
        "lost_samples": lost_samples,
    }


async def run_ble_bench(*, latency_s: float = 30.0, sustained_s: float = 60.0) -> dict[str, Any]:
    """The figures of ``stridecue bench ble``, one flat dict with units in the keys."""
    steps = await _stream(200.0, latency_s, engine=True)
    flood = await _stream(1000.0, sustained_s, engine=False)
    lat = steps["latencies_ms"]
    # Samples still in flight when the client stopped reading are not lost: count what the
    # decoder saw go missing (sequence gaps), and bound the in-flight tail by what was sent.
    in_flight = max(0, flood["sent"] - flood["received"])
    return {
        "notify_to_step_p50_ms": round(float(np.percentile(lat, 50)), 3) if lat else None,
        "notify_to_step_p99_ms": round(float(np.percentile(lat, 99)), 3) if lat else None,
        "steps": len(lat),
        "sustained_rate_hz": 1000.0,
        "sustained_s": sustained_s,
        "samples_sent": flood["sent"],
        "samples_received": flood["received"],
        "samples_lost": flood["lost_samples"],
        "samples_in_flight_at_stop": in_flight,
    }
