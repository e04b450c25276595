"""WitMotion BLE IMUs (BWT901BLECL, WT901BLE): a cheap shoe-mountable IMU.

No timestamps and no sequence numbers: 20-byte ``55 61`` packets of acceleration, angular rate
and angles, sent at a configured rate and possibly cut across or packed into notifications. The
stream resynchronises on the header and stamps samples on the host.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Self

import numpy as np

from device.errors import CodecError
from device.profiles import DeviceClock, Rejects
from dsp.samples import SampleBlock

log = logging.getLogger(__name__)

# WitMotion's own base: note ...9a34fb, not the SIG's ...9b34fb.
_BASE = "0000{:04x}-0000-1000-8000-00805f9a34fb"
WITMOTION_SERVICE = _BASE.format(0xFFE5)
WITMOTION_NOTIFY = _BASE.format(0xFFE4)
WITMOTION_WRITE = _BASE.format(0xFFE9)

HEADER = b"\x55\x61"
PACKET_BYTES = 20
ACC_FULL_SCALE_G = 16.0
GYRO_FULL_SCALE_DPS = 2000.0
ANGLE_FULL_SCALE_DEG = 180.0
_SCALES = np.repeat([ACC_FULL_SCALE_G, GYRO_FULL_SCALE_DPS, ANGLE_FULL_SCALE_DEG], 3) / 32768

RATE_REGISTER = 0x03
RATE_CODES = {100: 0x09, 200: 0x0A}
READ_REGISTER = 0x27


def _fail(reason: str) -> CodecError:
    return CodecError("witmotion", reason)


Vector = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class WitMotionPacket:
    """``55 61`` then 9 × int16 LE: acceleration (×16/32768 g), angular rate
    (×2000/32768 °/s), angles roll, pitch, yaw (×180/32768 °)."""

    acc_g: Vector
    gyro_dps: Vector
    angle_deg: Vector

    def __post_init__(self) -> None:
        self._counts()

    def _counts(self) -> list[int]:
        values = np.array([*self.acc_g, *self.gyro_dps, *self.angle_deg], dtype=np.float64)
        if values.shape != (9,) or not np.all(np.isfinite(values)):
            raise _fail("three finite 3-vectors are needed")
        counts = np.rint(values / _SCALES)
        if np.any(counts < -32768) or np.any(counts > 32767):
            raise _fail("a value is beyond the int16 full scale (±16 g, ±2000 °/s, ±180 °)")
        return [int(c) for c in counts]

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) != PACKET_BYTES or data[:2] != HEADER:
            raise _fail(f"a packet is 20 bytes starting 55 61, got {data[:4].hex(' ')}…")
        v = [float(c * s) for c, s in zip(struct.unpack_from("<9h", data, 2), _SCALES, strict=True)]
        return cls((v[0], v[1], v[2]), (v[3], v[4], v[5]), (v[6], v[7], v[8]))

    def __bytes__(self) -> bytes:
        return HEADER + struct.pack("<9h", *self._counts())


@dataclass(frozen=True, slots=True)
class WitRegisterWrite:
    """A register write on ``ffe9``: ``FF AA <register> <value u16 LE>``."""

    register: int
    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.register <= 0xFF or not 0 <= self.value <= 0xFFFF:
            raise _fail(f"register 0x{self.register:X} = 0x{self.value:X} does not fit")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) != 5 or data[:2] != b"\xff\xaa":
            raise _fail(f"a register write is FF AA reg lo hi, got {data.hex(' ')}")
        return cls(data[2], int.from_bytes(data[3:5], "little"))

    def __bytes__(self) -> bytes:
        return b"\xff\xaa" + bytes([self.register]) + self.value.to_bytes(2, "little")


def read_register(register: int) -> WitRegisterWrite:
    """Ask for a register's value (the reply is a ``55 71`` packet)."""
    return WitRegisterWrite(READ_REGISTER, register)


def unlock() -> WitRegisterWrite:
    """Unlock register writes (``FF AA 69 88 B5``), needed before a change is saved."""
    return WitRegisterWrite(0x69, 0xB588)


def save() -> WitRegisterWrite:
    """Persist the registers (``FF AA 00 00 00``)."""
    return WitRegisterWrite(0x00, 0x0000)


def set_rate(fs_hz: int) -> WitRegisterWrite:
    """Set the output rate (register 0x03); 100 and 200 Hz are the rates a gait needs."""
    if fs_hz not in RATE_CODES:
        raise _fail(f"rate {fs_hz} Hz is not one of {sorted(RATE_CODES)}")
    return WitRegisterWrite(RATE_REGISTER, RATE_CODES[fs_hz])


class WitMotionStream:
    """WitMotion notifications + host receive times → ``SampleBlock`` (g, °/s, host seconds).

    Bytes accumulate across notifications; packets are cut at each ``55 61`` header, and bytes
    outside a packet (noise, a torn packet, other packet types such as ``55 71`` register
    replies) are dropped and counted in ``discarded_bytes``. The packets found do not depend on
    where the notifications split the byte stream.

    The device has no clock of its own on the air, so the sample counter is its clock: sample
    ``k`` is at ``k / fs_hz`` device seconds, mapped onto host receive times by a
    ``DeviceClock`` (which absorbs the IMU's rate error as drift, hence its wide drift bound).
    Bunched deliveries (several notifications in one connection event) thus keep an even
    spacing. A notification arriving more than ``max_latency_s`` later than the mapping
    predicts means samples went missing (a lost link, a stalled device): their estimated
    number is counted in ``lost_samples`` and the offset is learnt afresh from the arrivals,
    so the engine sees the hole in the times.

    Parameters
    ----------
    fs_hz : float
        The configured output rate.
    clock : DeviceClock | None
        The mapping (default: a ``DeviceClock`` allowing ±2 % rate error).
    max_latency_s : float
        Lateness beyond which samples are taken as lost rather than late.
    """

    def __init__(
        self, fs_hz: float, *, clock: DeviceClock | None = None, max_latency_s: float = 0.5
    ) -> None:
        self.fs_hz = fs_hz
        self.clock = clock or DeviceClock(max_drift_ppm=20_000.0)
        self.max_latency_s = max_latency_s
        self.packets = 0
        self.discarded_bytes = 0
        self.lost_packets = 0
        self.lost_samples = 0
        self._rejects = Rejects(log, "witmotion")
        self._buf = b""
        self._index = 0  # device sample counter
        self._last_t_s = -np.inf

    @property
    def malformed(self) -> int:
        return self._rejects.count

    def feed(self, host_t_s: float, data: bytes) -> list[SampleBlock]:
        """One notification received at ``host_t_s``; never raises on bad input."""
        packets = self._cut(self._buf + bytes(data))
        k = len(packets)
        if k == 0:
            return []
        self.packets += k
        counts = np.frombuffer(b"".join(packets), "<i2").reshape(k, PACKET_BYTES // 2)[:, 1:]
        values = counts * _SCALES
        if self.clock.ready:
            late_s = self.clock.excess_s((self._index + k - 1) / self.fs_hz, host_t_s)
            if late_s > self.max_latency_s:
                # The counter cannot know how much is missing: start the offset afresh from
                # the arrivals (the drift, a property of the IMU's oscillator, is kept).
                missing = round(late_s * self.fs_hz)
                self.lost_samples += missing
                self.lost_packets += missing
                self.clock.reset(keep_drift=True)
        dev_s = (self._index + np.arange(k)) / self.fs_hz
        self._index += k
        self.clock.observe(float(dev_s[-1]), host_t_s)
        t_s = np.maximum(self.clock.to_host(dev_s), self._last_t_s)
        self._last_t_s = float(t_s[-1])
        return [SampleBlock(t_s, values[:, 0:3], values[:, 3:6])]

    def _cut(self, buf: bytes) -> list[bytes]:
        """Whole packets in ``buf``; keeps an incomplete tail for the next notification."""
        packets: list[bytes] = []
        pos = 0
        while True:
            start = buf.find(HEADER, pos)
            if start < 0:
                # Keep a trailing 0x55: it may begin the next notification's header.
                keep = 1 if len(buf) > pos and buf[-1] == HEADER[0] else 0
                self._discard(len(buf) - keep - pos)
                self._buf = buf[len(buf) - keep :]
                return packets
            self._discard(start - pos)
            if start + PACKET_BYTES > len(buf):
                self._buf = buf[start:]
                return packets
            packets.append(buf[start : start + PACKET_BYTES])
            pos = start + PACKET_BYTES

    def _discard(self, n: int) -> None:
        if n > 0:
            self.discarded_bytes += n
            self._rejects.add(f"{n} bytes outside a 55 61 packet", "resync")
