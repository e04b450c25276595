"""The simulated athlete served as a BLE footpod: pacing, the device clock and the test controls.

Every ``tick_s`` of wall time the footpod reads ``speed × tick_s`` seconds of samples from the
athlete, keeps every ``k``-th (the output rate), stamps them with the device clock (athlete
time + ``clock_offset_s``: devices do not start at 0) and sends the profile's notifications,
each cut to ``MTU − 3`` bytes. The athlete starts running the first time the stream is on
(subscribed, and started for profiles with a start command); from then on it keeps running in
wall time, so samples taken while the link is down, the stream is stopped, or the device is
stalled are lost, exactly as on a real footpod.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import numpy as np

from device.profiles.rsc import CadenceUnit
from dsp.events import Cue
from dsp.samples import SampleBlock
from firmware_sim.bluez import EmulatedPeripheral
from firmware_sim.footpod.base import ProfileServer, standard_services
from firmware_sim.footpod.polar_pmd import PolarPmdServer
from firmware_sim.footpod.raw_imu import RawImuServer
from firmware_sim.footpod.rsc import RscServer
from firmware_sim.footpod.witmotion import WitMotionServer
from firmware_sim.runner import SimulatedAthlete

PROFILES = ("raw-imu", "rsc", "polar-pmd", "witmotion")
_CORRUPTIONS = ("truncated", "bad header", "random bytes")
_MAX_BACKLOG_S = 1.0  # further behind the wall clock than this, the pacing clock gives up


class SimulatedFootpod:
    """A ``SimulatedAthlete`` served as a BLE peripheral of one profile, for real bleak.

    Parameters
    ----------
    athlete
        The sample source (its seed fixes every sample, so a second athlete with the same
        arguments is the ground truth of what this one sends).
    profile
        ``raw-imu``, ``rsc``, ``polar-pmd`` or ``witmotion``.
    name, address
        Advertised name and device address.
    mtu
        The negotiated ATT MTU: every notification carries at most ``mtu − 3`` bytes.
    speed
        Athlete seconds per wall second (tests run sessions 20–50× faster than real time).
    tick_s
        Wall time between two reads of the athlete (and bursts of notifications).
    clock_offset_s
        Device clock at the athlete's time 0.
    cadence_unit
        RSC only: ``steps`` (steps/min, both feet) or ``strides`` (one foot, like some
        footpods).
    delta
        Polar only: send delta-compressed frames instead of uncompressed ones.
    seed
        Seeds the random bytes of ``corrupt_next``.

    Notes
    -----
    ``set_rate`` decimates by an integer factor ``k``: it keeps athlete samples whose index is
    a multiple of ``k``, with no anti-alias filter, so a test can compare the output with the
    athlete's own samples ``[::k]``. Counters: ``notifications`` sent, ``sent_samples`` carried
    by notifications sent intact (RSC: one per measurement).
    """

    def __init__(
        self,
        athlete: SimulatedAthlete,
        profile: str,
        *,
        name: str = "Stridecue Footpod",
        address: str = "C0:FF:EE:00:00:01",
        mtu: int = 247,
        speed: float = 1.0,
        tick_s: float = 0.02,
        clock_offset_s: float = 1000.0,
        cadence_unit: str = "steps",
        delta: bool = False,
        seed: int = 0,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
        if not (speed > 0 and tick_s > 0 and math.isfinite(speed * tick_s)):
            raise ValueError(f"speed and tick_s must be > 0, got {speed} and {tick_s}")
        if clock_offset_s < 0:
            raise ValueError(f"clock_offset_s must be >= 0, got {clock_offset_s}")
        if cadence_unit != CadenceUnit.STEPS and profile != "rsc":
            raise ValueError("cadence_unit is a setting of the rsc profile")
        if delta and profile != "polar-pmd":
            raise ValueError("delta is a setting of the polar-pmd profile")
        self.athlete = athlete
        self.speed = speed
        self.tick_s = tick_s
        self.commands: list[bytes] = []
        self.sent_samples = 0
        self.notifications = 0
        self._mtu = mtu
        self._clock_offset_s = clock_offset_s
        self._decimation = 1
        self._read = 0  # athlete samples read: the decimation phase
        self._running = False
        self._athlete_now_s = 0.0
        self._stall_until = -math.inf
        self._skip = 0
        self._corrupt = 0
        self._corruptions = 0
        self._rng = np.random.default_rng(seed)
        self.profile = self._make_profile(profile, CadenceUnit(cadence_unit), delta)
        self.peripheral = EmulatedPeripheral(
            name,
            address,
            [self.profile.service(), *standard_services(self.profile.model)],
            mtu=mtu,
            advertised_uuids=[self.profile.service_uuid],
        )

    def _make_profile(self, profile: str, unit: CadenceUnit, delta: bool) -> ProfileServer:
        if profile == "raw-imu":
            return RawImuServer(self)
        if profile == "rsc":
            return RscServer(self, cadence_unit=unit)
        if profile == "polar-pmd":
            return PolarPmdServer(self, delta=delta)
        return WitMotionServer(self)

    # --- what the profiles read -----------------------------------------------------------------

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def clock_offset_s(self) -> float:
        return self._clock_offset_s

    @property
    def fs_hz(self) -> float:
        """The output rate: the athlete's rate divided by the decimation factor."""
        return self.athlete.fs_hz / self._decimation

    # --- running --------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Stream while a client is subscribed (and started), until cancelled.

        The peripheral must be started on a bus first (``emulated_bluez`` does it).
        """
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._watch_link(), name=f"footpod {self.profile.name}: link")
            tasks.create_task(self._stream(), name=f"footpod {self.profile.name}: stream")

    async def _watch_link(self) -> None:
        while True:
            await self.peripheral.wait_connected()
            await self.peripheral.wait_disconnected()
            self.profile.link_down()

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            # Absolute deadlines: a late wake-up sends a short burst, the rate never drifts.
            next_tick += self.tick_s
            delay = next_tick - loop.time()
            if delay < -_MAX_BACKLOG_S:
                next_tick = loop.time()
            elif delay > 0:
                await asyncio.sleep(delay)
            await self._tick()

    async def _tick(self) -> None:
        streaming = self.peripheral.connected and self.profile.streaming()
        if not (self._running or streaming):
            return
        self._running = True
        block = self._decimate(self.athlete.read(self.speed * self.tick_s))
        if len(block) == 0 or not streaming:
            return
        device = SampleBlock(block.t_s + self._clock_offset_s, block.acc_g, block.gyro_dps)
        stalled = time.monotonic() < self._stall_until
        for data, n in self.profile.encode(device):
            if stalled:
                continue  # built (the sequence number moves on) but never sent
            if not self.profile.streaming():
                return  # stopped or unsubscribed mid-burst
            if self._skip:
                self._skip -= 1
                continue
            damaged = self._corrupt > 0
            if damaged:
                self._corrupt -= 1
                data = self._damage(data)
            if not await self.peripheral.notify(self.profile.data_uuid, data):
                return  # the link went down mid-burst
            self.notifications += 1
            self.sent_samples += 0 if damaged else n

    def _decimate(self, block: SampleBlock) -> SampleBlock:
        first, k = self._read, self._decimation
        self._read += len(block)
        if len(block):
            self._athlete_now_s = float(block.t_s[-1])
        if k == 1:
            return block
        keep = np.flatnonzero((first + np.arange(len(block))) % k == 0)
        gyro = None if block.gyro_dps is None else block.gyro_dps[keep]
        return SampleBlock(block.t_s[keep], block.acc_g[keep], gyro)

    def _damage(self, data: bytes) -> bytes:
        kind = _CORRUPTIONS[self._corruptions % len(_CORRUPTIONS)]
        self._corruptions += 1
        if kind == "truncated":
            return data[:-1]
        if kind == "bad header":
            return self.profile.bad_header(data)
        while True:  # random bytes, redrawn in the unlikely case they decode
            junk = self._rng.bytes(len(data))
            if not self.profile.accepts(junk):
                return junk

    # --- test controls --------------------------------------------------------------------------

    async def drop_link(self) -> None:
        """The peripheral drops the connection (link loss); it keeps advertising."""
        self.profile.link_down()
        await self.peripheral.drop_link()

    def stall(self, seconds: float) -> None:
        """Stay connected but send nothing for ``seconds`` of wall time; the samples of that
        time are lost (the device's buffer overflows), so sequence numbers and timestamps
        jump when it resumes."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._stall_until = time.monotonic() + seconds

    def corrupt_next(self, n: int = 1) -> None:
        """Damage the next ``n`` notifications: truncated, bad header, random bytes, in turn."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._corrupt += n

    def skip_next(self, n: int = 1) -> None:
        """Do not send the next ``n`` notifications (lost packets)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._skip += n

    def set_rate(self, fs_hz: float) -> None:
        """Change the output rate to the athlete's rate divided by a whole number.

        RSC: the measurement rate. Raises ``ValueError`` for any other rate.
        """
        ratio = self.athlete.fs_hz / fs_hz if fs_hz > 0 else 0.0
        k = round(ratio)
        if k < 1 or abs(ratio - k) > 1e-9 * ratio:
            raise ValueError(
                f"{fs_hz} Hz is not the athlete's {self.athlete.fs_hz:g} Hz divided by a "
                "whole number"
            )
        self._decimation = k
        self.profile.rate_changed(self.fs_hz)

    def on_cue(self, cue: Cue) -> None:
        """Closed loop: the athlete hears ``cue`` now.

        The cue is re-stamped with the athlete's current time: the engine's stream time is
        the host's, and the runner reacts (after their reaction delay) when the cue arrives.
        """
        self.athlete.on_cue(dataclasses.replace(cue, t_s=self._athlete_now_s))
