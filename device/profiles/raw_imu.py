"""Stridecue's open raw-IMU footpod profile (specified in ``docs/footpod-profile.md``).

A configuration characteristic (rate, ranges, axes), a control point (start, stop, reset the
sequence number) and data notifications: a header with a sequence number and the device time
of the first sample, then a batch of int16 samples sized to the negotiated MTU. The sequence
number reveals lost notifications; the device clock (µs, u32) is unwrapped on the host and
mapped onto host time by a ``DeviceClock``.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Self

import numpy as np
from numpy.typing import NDArray

from device.errors import CodecError
from device.profiles import DeviceClock, Rejects
from dsp.samples import SampleBlock

log = logging.getLogger(__name__)

_BASE = "41f0{:04x}-2b53-44b4-92fb-de7e4710fd4f"
RAW_IMU_SERVICE = _BASE.format(0x0001)
RAW_IMU_CONFIG = _BASE.format(0x0002)
RAW_IMU_CONTROL_POINT = _BASE.format(0x0003)
RAW_IMU_DATA = _BASE.format(0x0004)

ACC_RANGES_G = (2, 4, 8, 16)
GYRO_RANGES_DPS = (125, 250, 500, 1000, 2000)
MAX_SAMPLE_RATE_HZ = 3200
FULL_SCALE_COUNTS = 32768  # one LSB = range / 32768
HEADER = struct.Struct("<HIBB")  # seq, first-sample time µs, count, flags
ATT_HEADER_BYTES = 3  # a notification carries MTU − 3 bytes of value
CLOCK_WRAP_US = 1 << 32
SEQ_MODULUS = 1 << 16


def _fail(reason: str) -> CodecError:
    return CodecError("raw-imu", reason)


class Axes(IntFlag):
    ACC = 0x01
    GYRO = 0x02


class DataFlags(IntFlag):
    ACC = 0x01
    GYRO = 0x02
    SATURATED = 0x04


@dataclass(frozen=True, slots=True)
class RawImuConfig:
    """Configuration characteristic (read/write), 6 bytes: sample rate Hz u16, accelerometer
    range g u8, gyro range °/s u16, axes u8 (bit 0 accelerometer, required; bit 1 gyro)."""

    sample_rate_hz: int = 200
    acc_range_g: int = 16
    gyro_range_dps: int = 2000
    axes: Axes = Axes.ACC | Axes.GYRO

    def __post_init__(self) -> None:
        if not 1 <= self.sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
            raise _fail(f"sample rate {self.sample_rate_hz} Hz is outside 1..{MAX_SAMPLE_RATE_HZ}")
        if self.acc_range_g not in ACC_RANGES_G:
            raise _fail(f"accelerometer range {self.acc_range_g} g is not one of {ACC_RANGES_G}")
        if self.gyro_range_dps not in GYRO_RANGES_DPS:
            raise _fail(f"gyro range {self.gyro_range_dps} °/s is not one of {GYRO_RANGES_DPS}")
        if int(self.axes) not in (1, 3):
            raise _fail(
                f"axes 0x{int(self.axes):02X}: the accelerometer is required, gyro optional"
            )

    @property
    def gyro(self) -> bool:
        return Axes.GYRO in self.axes

    @property
    def values_per_sample(self) -> int:
        return 6 if self.gyro else 3

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) != 6:
            raise _fail(f"the configuration is 6 bytes, got {len(data)}")
        rate, acc, gyro, axes = struct.unpack("<HBHB", data)
        return cls(rate, acc, gyro, Axes(axes))

    def __bytes__(self) -> bytes:
        return struct.pack(
            "<HBHB", self.sample_rate_hz, self.acc_range_g, self.gyro_range_dps, self.axes
        )


class RawImuOp(IntEnum):
    START = 0x01
    STOP = 0x02
    RESET_SEQUENCE = 0x03


RESPONSE_CODE = 0x80


class RawImuResult(IntEnum):
    SUCCESS = 0x01
    NOT_SUPPORTED = 0x02
    INVALID_STATE = 0x03
    FAILED = 0x04


@dataclass(frozen=True, slots=True)
class RawImuCommand:
    """Control point write (with response): one byte, the op."""

    op: RawImuOp

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) != 1:
            raise _fail(f"a command is 1 byte, got {len(data)}")
        try:
            return cls(RawImuOp(data[0]))
        except ValueError:
            raise _fail(f"unknown op 0x{data[0]:02X}") from None

    def __bytes__(self) -> bytes:
        return bytes([self.op])


@dataclass(frozen=True, slots=True)
class RawImuResponse:
    """Control point indication: ``80 <op> <result>``."""

    request: RawImuOp
    result: RawImuResult

    @property
    def ok(self) -> bool:
        return self.result is RawImuResult.SUCCESS

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) != 3 or data[0] != RESPONSE_CODE:
            raise _fail(f"a response is 80 <op> <result>, got {data.hex(' ')}")
        try:
            return cls(RawImuOp(data[1]), RawImuResult(data[2]))
        except ValueError:
            raise _fail(f"unknown op or result in {data.hex(' ')}") from None

    def __bytes__(self) -> bytes:
        return bytes([RESPONSE_CODE, self.request, self.result])


def max_samples(mtu: int, gyro: bool) -> int:
    """How many samples one notification holds at ``mtu`` (value = MTU − 3 bytes)."""
    n = (mtu - ATT_HEADER_BYTES - HEADER.size) // (12 if gyro else 6)
    if n < 1:
        raise _fail(f"an MTU of {mtu} cannot carry one sample")
    return min(n, 0xFF)


@dataclass(frozen=True, slots=True, eq=False)
class RawImuPacket:
    """Data notification: seq u16, first-sample device time µs u32, count u8, flags u8
    (``DataFlags``), then ``count`` samples of int16 LE: acc x, y, z [, gyro x, y, z].

    ``samples`` is (count, 3 or 6) int16 counts; ``gyro`` says whether columns 3–5 exist.
    """

    seq: int
    t_first_us: int
    samples: NDArray[np.int16]
    saturated: bool = False

    def __post_init__(self) -> None:
        s = np.array(self.samples)
        if s.dtype != np.int16:
            raise _fail(f"samples are int16 counts, got {s.dtype}")
        s.flags.writeable = False
        object.__setattr__(self, "samples", s)
        if s.ndim != 2 or s.shape[1] not in (3, 6) or not 1 <= s.shape[0] <= 0xFF:
            raise _fail(f"samples must be (1..255, 3 or 6), got {s.shape}")
        if not 0 <= self.seq < SEQ_MODULUS or not 0 <= self.t_first_us < CLOCK_WRAP_US:
            raise _fail("seq is a u16 and the timestamp a u32")

    @property
    def gyro(self) -> bool:
        return self.samples.shape[1] == 6

    @property
    def flags(self) -> DataFlags:
        f = DataFlags.ACC
        if self.gyro:
            f |= DataFlags.GYRO
        if self.saturated:
            f |= DataFlags.SATURATED
        return f

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) < HEADER.size:
            raise _fail(f"a data notification is at least {HEADER.size} bytes, got {len(data)}")
        seq, t_us, count, flags = HEADER.unpack_from(data)
        if flags & ~0x07 or not flags & DataFlags.ACC:
            raise _fail(f"flags 0x{flags:02X}: reserved bits set or no accelerometer")
        width = 6 if flags & DataFlags.GYRO else 3
        if count == 0 or len(data) != HEADER.size + 2 * width * count:
            raise _fail(f"{count} samples of {width} values do not make {len(data)} bytes")
        samples = np.frombuffer(data, "<i2", offset=HEADER.size).reshape(count, width)
        return cls(seq, t_us, samples.astype(np.int16), bool(flags & DataFlags.SATURATED))

    def __bytes__(self) -> bytes:
        head = HEADER.pack(self.seq, self.t_first_us, self.samples.shape[0], self.flags)
        return head + self.samples.astype("<i2").tobytes()


def _counts(
    values: NDArray[np.float64], range_: float
) -> tuple[NDArray[np.int16], NDArray[np.bool_]]:
    """int16 counts (LSB = range / 32768), clipped, and which samples clipped."""
    c = np.rint(values * (FULL_SCALE_COUNTS / range_))
    clipped = np.any((c > 32767) | (c < -32768), axis=1)
    return np.clip(c, -32768, 32767).astype(np.int16), clipped


def encode_batches(
    block: SampleBlock, seq_start: int, mtu: int, config: RawImuConfig
) -> list[bytes]:
    """The notifications a device sends for ``block`` (times in device seconds), seq from
    ``seq_start`` (wrapping), each as full as ``mtu`` allows; values beyond the configured
    ranges are clipped and flag their packet as saturated."""
    if not np.all(np.isfinite(block.acc_g)) or (
        block.gyro_dps is not None and not np.all(np.isfinite(block.gyro_dps))
    ):
        raise _fail("samples must be finite")
    values, sat = _counts(block.acc_g, config.acc_range_g)
    if config.gyro:
        if block.gyro_dps is None:
            raise _fail("the configuration streams gyro but the block has none")
        gyro, gyro_sat = _counts(block.gyro_dps, config.gyro_range_dps)
        values, sat = np.hstack([values, gyro]), sat | gyro_sat
    t_us = np.rint(block.t_s * 1e6).astype(np.int64) % CLOCK_WRAP_US
    per = max_samples(mtu, config.gyro)
    return [
        bytes(
            RawImuPacket(
                (seq_start + k) % SEQ_MODULUS,
                int(t_us[i]),
                values[i : i + per],
                bool(sat[i : i + per].any()),
            )
        )
        for k, i in enumerate(range(0, len(block), per))
    ]


class RawImuStream:
    """Raw-IMU notifications + host receive times → ``SampleBlock`` (g, °/s, host seconds).

    - Lost notifications: a jump of ``k`` in the sequence number (mod 2¹⁶) counts ``k`` lost
      packets and ``k × count`` lost samples (``count`` of the packet that revealed the hole);
      the samples keep their device times, so the engine sees the hole in the timestamps.
      A backward jump (more than half the sequence space) is a restarted stream
      (``restarts``): the clock mapping starts afresh.
    - Device clock: u32 µs, wrapping every 2³² µs ≈ 71.6 min. Each timestamp advances the
      unwrapped clock by ``(t − t_prev) mod 2³²``; when the host saw more than half a wrap
      pass between two notifications, whole wraps are added to match the host's elapsed time.
    - Samples are ``1 / sample_rate_hz`` apart in device time from the first-sample time, and
      mapped to host time by a ``DeviceClock`` fed with each packet's last-sample time and
      host receive time (the device sends a batch as soon as it is full). A device time that
      disagrees with the host's elapsed time by more than ``clock_jump_s`` restarts the
      mapping. Output timestamps never go backwards.

    Parameters
    ----------
    config : RawImuConfig
        The configuration the device was started with (rate, ranges, axes).
    clock : DeviceClock | None
        The mapping (a default ``DeviceClock()`` when ``None``).
    clock_jump_s : float
        Device-vs-host disagreement on elapsed time that means the device clock restarted.
    """

    def __init__(
        self, config: RawImuConfig, *, clock: DeviceClock | None = None, clock_jump_s: float = 1.0
    ) -> None:
        self.config = config
        self.clock = clock or DeviceClock()
        self.clock_jump_s = clock_jump_s
        self.packets = 0
        self.samples = 0
        self.saturated_packets = 0
        self.lost_packets = 0
        self.lost_samples = 0
        self.restarts = 0
        self._rejects = Rejects(log, "raw-imu")
        self._scale = (
            np.array([config.acc_range_g] * 3 + [config.gyro_range_dps] * 3, dtype=np.float64)[
                : config.values_per_sample
            ]
            / FULL_SCALE_COUNTS
        )
        self._next_seq: int | None = None
        self._raw_us = 0
        self._dev_us = 0  # unwrapped device clock, µs since the first packet
        self._host_s = 0.0
        self._last_t_s = -np.inf

    @property
    def malformed(self) -> int:
        return self._rejects.count

    def feed(self, host_t_s: float, data: bytes) -> list[SampleBlock]:
        """One notification received at ``host_t_s``; never raises on bad input."""
        try:
            p = RawImuPacket.from_bytes(data)
        except CodecError as e:
            self._rejects.add(e)
            return []
        if p.gyro != self.config.gyro:
            self._rejects.add("the packet's axes differ from the configuration", "axes")
            return []
        n = p.samples.shape[0]
        self.packets += 1
        self.samples += n
        self.saturated_packets += p.saturated
        if self._next_seq is not None:
            gap = (p.seq - self._next_seq) % SEQ_MODULUS
            if gap >= SEQ_MODULUS // 2:
                log.warning("raw-imu: sequence went back from %d to %d", self._next_seq, p.seq)
                self.restarts += 1
                self._next_seq = None
            else:
                self.lost_packets += gap
                self.lost_samples += gap * n
        if self._next_seq is not None:
            self._unwrap(p.t_first_us, host_t_s)
        else:
            self.clock.reset()
            self._dev_us = 0
        self._next_seq = (p.seq + 1) % SEQ_MODULUS
        self._raw_us, self._host_s = p.t_first_us, host_t_s
        dev_s = self._dev_us * 1e-6 + np.arange(n) / self.config.sample_rate_hz
        self.clock.observe(float(dev_s[-1]), host_t_s)
        t_s = np.maximum(self.clock.to_host(dev_s), self._last_t_s)
        self._last_t_s = float(t_s[-1])
        values = p.samples * self._scale
        gyro = values[:, 3:] if self.config.gyro else None
        return [SampleBlock(t_s, values[:, :3], gyro)]

    def _unwrap(self, raw_us: int, host_t_s: float) -> None:
        step_us = (raw_us - self._raw_us) % CLOCK_WRAP_US
        host_us = (host_t_s - self._host_s) * 1e6
        if host_us > CLOCK_WRAP_US / 2:
            step_us += max(0, round((host_us - step_us) / CLOCK_WRAP_US)) * CLOCK_WRAP_US
        if abs(step_us - host_us) > self.clock_jump_s * 1e6:
            log.warning("raw-imu: the device clock jumped by %.3f s: remapping", step_us * 1e-6)
            self.restarts += 1
            self.clock.reset()
        self._dev_us += step_us
