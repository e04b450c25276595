"""Polar Measurement Data (PMD): raw accelerometer frames from a Polar H10 or Verity Sense.

The control point takes ``01``/``02``/``03`` (get settings, start, stop) for a measurement type
and answers ``F0 op type status more params…``; settings travel as records
``[setting, count, values…]``. Data frames carry the device timestamp of their LAST sample
(ns since 2000-01-01) and either plain int16 samples or delta-compressed blocks. The device
clock restarts after a power-down, so ``PolarAccStream`` maps it onto the host clock
(``DeviceClock``) rather than trusting it.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from device.errors import CodecError
from device.profiles import DeviceClock, Rejects
from dsp.samples import SampleBlock

log = logging.getLogger(__name__)

PMD_SERVICE = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL_POINT = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"
PMD_MIN_MTU = 232

# Unix time of the PMD epoch, 2000-01-01T00:00:00Z.
PMD_EPOCH_UNIX_S = 946_684_800

RESPONSE_CODE = 0xF0
DELTA_FRAME_BIT = 0x80


def _fail(reason: str) -> CodecError:
    return CodecError("polar-pmd", reason)


class MeasurementType(IntEnum):
    ECG = 0
    ACC = 2
    GYRO = 5
    SDK_MODE = 9


class PmdOp(IntEnum):
    GET_SETTINGS = 1
    START = 2
    STOP = 3


class PmdStatus(IntEnum):
    """Control-point result codes; a device may send others (kept as plain ints)."""

    SUCCESS = 0
    INVALID_OP_CODE = 1
    INVALID_MEASUREMENT_TYPE = 2
    NOT_SUPPORTED = 3
    INVALID_PARAMETER = 5
    ALREADY_IN_STATE = 6
    INVALID_SAMPLE_RATE = 8
    INVALID_RANGE = 9
    INVALID_MTU = 10
    INVALID_STATE = 12
    DEVICE_IN_CHARGER = 13


class PmdSetting(IntEnum):
    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    CHANNELS = 4
    FACTOR = 5


# struct format of one value of each setting
_SETTING_FORMAT = {
    PmdSetting.SAMPLE_RATE: "H",
    PmdSetting.RESOLUTION: "H",
    PmdSetting.RANGE: "H",
    PmdSetting.CHANNELS: "B",
    PmdSetting.FACTOR: "f",
}


def _is_float32(value: float) -> bool:
    try:
        return math.isfinite(value) and struct.unpack("<f", struct.pack("<f", value))[0] == value
    except (OverflowError, struct.error):
        return False


@dataclass(frozen=True, slots=True)
class PmdSettings:
    """Settings records: every value a device offers (a get-settings reply) or one of each
    (a start command). Encoded in the order of ``PmdSetting``; a record absent is empty."""

    sample_rates_hz: tuple[int, ...] = ()
    resolutions_bits: tuple[int, ...] = ()
    ranges_g: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    factors: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for setting, values in zip(PmdSetting, self._records(), strict=True):
            if len(values) > 0xFF:
                raise _fail(f"{setting.name}: at most 255 values, got {len(values)}")
            fmt = _SETTING_FORMAT[setting]
            if fmt == "f":
                if not all(_is_float32(v) for v in values):
                    raise _fail(f"{setting.name}: factors must be finite float32 values")
                continue
            top = 0xFF if fmt == "B" else 0xFFFF
            if not all(isinstance(v, int) and 0 <= v <= top for v in values):
                raise _fail(f"{setting.name}: values must be integers 0..{top}, got {values}")

    def _records(self) -> tuple[Sequence[float], ...]:
        return (
            self.sample_rates_hz,
            self.resolutions_bits,
            self.ranges_g,
            self.channels,
            self.factors,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        found: dict[PmdSetting, tuple[float, ...]] = {}
        pos = 0
        while pos < len(data):
            if pos + 2 > len(data):
                raise _fail("a settings record is cut short")
            try:
                setting = PmdSetting(data[pos])
            except ValueError:
                raise _fail(f"unknown setting type {data[pos]}") from None
            if setting in found:
                raise _fail(f"setting {setting.name} appears twice")
            count, fmt = data[pos + 1], "<" + _SETTING_FORMAT[setting]
            end = pos + 2 + count * struct.calcsize(fmt)
            if end > len(data):
                raise _fail(f"{setting.name}: {count} values do not fit in the record")
            found[setting] = tuple(v for (v,) in struct.iter_unpack(fmt, data[pos + 2 : end]))
            pos = end
        return cls(
            sample_rates_hz=tuple(int(v) for v in found.get(PmdSetting.SAMPLE_RATE, ())),
            resolutions_bits=tuple(int(v) for v in found.get(PmdSetting.RESOLUTION, ())),
            ranges_g=tuple(int(v) for v in found.get(PmdSetting.RANGE, ())),
            channels=tuple(int(v) for v in found.get(PmdSetting.CHANNELS, ())),
            factors=found.get(PmdSetting.FACTOR, ()),
        )

    def __bytes__(self) -> bytes:
        out = bytearray()
        for setting, values in zip(PmdSetting, self._records(), strict=True):
            if values:
                fmt = "<" + _SETTING_FORMAT[setting] * len(values)
                out += bytes([setting, len(values)]) + struct.pack(fmt, *values)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class PmdCommand:
    """A control-point write: ``op type [settings…]`` (settings only with START)."""

    op: PmdOp
    measurement_type: int
    settings: PmdSettings | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.measurement_type <= 0xFF:
            raise _fail(f"measurement type {self.measurement_type} is not a byte")
        if (self.settings is not None) != (self.op is PmdOp.START):
            raise _fail("settings go with START, and only with START")

    @classmethod
    def start(cls, measurement_type: int, settings: PmdSettings) -> Self:
        return cls(PmdOp.START, measurement_type, settings)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) < 2:
            raise _fail(f"a command is at least 2 bytes, got {len(data)}")
        try:
            op = PmdOp(data[0])
        except ValueError:
            raise _fail(f"unknown control-point op {data[0]}") from None
        if op is PmdOp.START:
            return cls(op, data[1], PmdSettings.from_bytes(data[2:]))
        if len(data) != 2:
            raise _fail(f"{op.name} is 2 bytes, got {len(data)}")
        return cls(op, data[1])

    def __bytes__(self) -> bytes:
        return bytes([self.op, self.measurement_type]) + (
            bytes(self.settings) if self.settings is not None else b""
        )


@dataclass(frozen=True, slots=True)
class PmdResponse:
    """A control-point indication: ``F0 op type status more params…``.

    ``status`` is kept as the device's integer (``PmdStatus`` names the known ones);
    ``params`` are the raw parameters (settings records after a successful get-settings).
    """

    op: PmdOp
    measurement_type: int
    status: int
    more: bool = False
    params: bytes = b""

    def __post_init__(self) -> None:
        if not (0 <= self.measurement_type <= 0xFF and 0 <= self.status <= 0xFF):
            raise _fail("measurement type and status are bytes")

    @property
    def ok(self) -> bool:
        return self.status == PmdStatus.SUCCESS

    @property
    def meaning(self) -> str:
        try:
            return PmdStatus(self.status).name.lower().replace("_", " ")
        except ValueError:
            return f"unknown status {self.status}"

    def settings(self) -> PmdSettings:
        """The settings records in ``params`` (raises ``CodecError`` if they are not)."""
        return PmdSettings.from_bytes(self.params)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) < 5 or data[0] != RESPONSE_CODE:
            raise _fail(f"a response is F0 op type status more […], got {data.hex(' ')}")
        try:
            op = PmdOp(data[1])
        except ValueError:
            raise _fail(f"a response to unknown op {data[1]}") from None
        if data[4] > 1:
            raise _fail(f"the 'more' byte is 0 or 1, got {data[4]}")
        return cls(op, data[2], data[3], bool(data[4]), bytes(data[5:]))

    def __bytes__(self) -> bytes:
        head = [RESPONSE_CODE, self.op, self.measurement_type, self.status, int(self.more)]
        return bytes(head) + self.params


def _signed_width(values: NDArray[np.int64]) -> int:
    """The fewest bits holding every value as two's complement (at least 1)."""
    magnitude = int(np.max(np.where(values < 0, ~values, values), initial=0))
    return magnitude.bit_length() + 1


def _pack(values: NDArray[np.int64], bits: int) -> bytes:
    unsigned = values & ((1 << bits) - 1)
    stream = (unsigned[:, None] >> np.arange(bits, dtype=np.int64)) & 1
    return np.packbits(stream.astype(np.uint8).ravel(), bitorder="little").tobytes()


def _unpack(data: bytes, n_values: int, bits: int) -> NDArray[np.int64]:
    stream = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    fields = stream[: n_values * bits].reshape(n_values, bits).astype(np.int64)
    unsigned = fields @ (np.int64(1) << np.arange(bits, dtype=np.int64))
    return np.where(unsigned >= 1 << (bits - 1), unsigned - (1 << bits), unsigned)


@dataclass(frozen=True, slots=True, eq=False)
class PmdDataFrame:
    """A PMD data notification.

    Byte 0 measurement type, bytes 1–8 u64 timestamp of the last sample (ns since
    2000-01-01), byte 9 frame type (bit 7: delta-compressed), then samples. ``samples`` is
    (n, channels) int64 in device counts (milli-g on an H10). Uncompressed frames are type 1,
    int16 per channel. Delta frames hold a reference sample (``ceil(resolution_bits / 8)``
    bytes per channel, signed) then blocks ``[bits u8][count u8][count × channels signed
    deltas, bit-packed LSB-first, padded to a byte]``, each delta added to the previous sample.
    ``block_samples`` is how many deltas the encoder puts in one block (each block gets the
    narrowest width that holds its deltas).
    """

    measurement_type: int
    timestamp_ns: int
    frame_type: int
    samples: NDArray[np.int64]
    resolution_bits: int = 16
    block_samples: int = field(default=16, compare=False)

    def __post_init__(self) -> None:
        s = np.array(self.samples, dtype=np.int64)
        s.flags.writeable = False
        object.__setattr__(self, "samples", s)
        if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
            raise _fail(f"samples must be (n ≥ 1, channels ≥ 1), got {s.shape}")
        if not 0 <= self.measurement_type <= 0xFF or not 0 <= self.frame_type <= 0xFF:
            raise _fail("measurement type and frame type are bytes")
        if not 0 <= self.timestamp_ns < 1 << 64:
            raise _fail(f"timestamp {self.timestamp_ns} ns does not fit in a u64")
        if not 1 <= self.resolution_bits <= 32 or not 1 <= self.block_samples <= 0xFF:
            raise _fail("resolution is 1..32 bits and a block holds 1..255 samples")
        if self.delta:
            top = 1 << (8 * self.sample_bytes - 1)
            if np.any(s[0] < -top) or np.any(s[0] >= top):
                raise _fail("the reference sample does not fit its width")
            if s.shape[0] > 1 and _signed_width(np.diff(s, axis=0)) > 32:
                raise _fail("a delta needs more than 32 bits")
        elif self.frame_type != 1:
            raise _fail(f"uncompressed frame type {self.frame_type} is not supported (only 1)")
        elif np.any(s < -(1 << 15)) or np.any(s >= 1 << 15):
            raise _fail("an uncompressed type 1 sample does not fit in int16")

    @property
    def delta(self) -> bool:
        return bool(self.frame_type & DELTA_FRAME_BIT)

    @property
    def sample_bytes(self) -> int:
        return -(-self.resolution_bits // 8)

    @classmethod
    def from_bytes(cls, data: bytes, *, channels: int = 3, resolution_bits: int = 16) -> Self:
        if len(data) < 10:
            raise _fail(f"a data frame is at least 10 bytes, got {len(data)}")
        mtype, ts_ns, ftype = struct.unpack_from("<BQB", data)
        body = data[10:]
        if not ftype & DELTA_FRAME_BIT:
            if ftype != 1:
                raise _fail(f"uncompressed frame type {ftype} is not supported (only 1)")
            if not body or len(body) % (2 * channels):
                raise _fail(f"{len(body)} bytes is not a whole number of int16 samples")
            samples = np.frombuffer(body, "<i2").reshape(-1, channels)
            return cls(mtype, ts_ns, ftype, samples, resolution_bits)
        width = -(-resolution_bits // 8)
        if not 1 <= width <= 4:
            raise _fail(f"a resolution of {resolution_bits} bits is not supported")
        if len(body) < channels * width:
            raise _fail("a delta frame is shorter than its reference sample")
        ref = [
            int.from_bytes(body[i : i + width], "little", signed=True)
            for i in range(0, channels * width, width)
        ]
        rows: list[NDArray[np.int64]] = [np.array([ref], dtype=np.int64)]
        pos = channels * width
        while pos < len(body):
            if pos + 2 > len(body):
                raise _fail("a delta block header is cut short")
            bits, count = body[pos], body[pos + 1]
            if not 1 <= bits <= 32 or count == 0:
                raise _fail(f"a delta block of {count} samples × {bits} bits is invalid")
            n_values = count * channels
            end = pos + 2 + -(-n_values * bits // 8)
            if end > len(body):
                raise _fail("a delta block is cut short")
            rows.append(_unpack(body[pos + 2 : end], n_values, bits).reshape(count, channels))
            pos = end
        steps = np.concatenate(rows)
        return cls(mtype, ts_ns, ftype, np.cumsum(steps, axis=0), resolution_bits)

    def __bytes__(self) -> bytes:
        head = struct.pack("<BQB", self.measurement_type, self.timestamp_ns, self.frame_type)
        if not self.delta:
            return head + self.samples.astype("<i2").tobytes()
        width, channels = self.sample_bytes, self.samples.shape[1]
        out = bytearray(head)
        for v in self.samples[0].tolist():
            out += int(v).to_bytes(width, "little", signed=True)
        deltas = np.diff(self.samples, axis=0)
        for start in range(0, deltas.shape[0], self.block_samples):
            block = deltas[start : start + self.block_samples].ravel()
            bits = _signed_width(block)
            out += bytes([bits, block.size // channels]) + _pack(block, bits)
        return bytes(out)


def encode_frame(
    samples_mg: ArrayLike,
    last_timestamp_ns: int,
    *,
    delta: bool = False,
    block_samples: int = 16,
) -> bytes:
    """An accelerometer data frame (H10 style: 3 channels, milli-g, 16-bit) for the simulator.

    Raises ``CodecError`` when a sample does not fit (int16 for an uncompressed frame).
    """
    mg = np.asarray(samples_mg, dtype=np.float64)
    if not np.all(np.isfinite(mg)) or np.any(np.abs(mg) >= 2.0**31):
        raise _fail("samples must be finite and fit in 32 bits")
    frame_type = DELTA_FRAME_BIT | 1 if delta else 1
    counts = np.rint(mg).astype(np.int64)
    frame = PmdDataFrame(
        MeasurementType.ACC, last_timestamp_ns, frame_type, counts, block_samples=block_samples
    )
    return bytes(frame)


class PolarAccStream:
    """PMD accelerometer frames + host receive times → ``SampleBlock`` (g, host seconds).

    Sample times are spread evenly between the previous frame's timestamp and this one's (the
    device's own spacing, drift included). A first frame, or one after a hole longer than 1.5
    frames, is laid out at the nominal ``fs_hz`` ending on its timestamp, and the samples the
    hole swallowed are counted in ``lost_samples``. A timestamp that disagrees with the host's
    elapsed time by more than ``clock_jump_s`` (a power-down restarts the H10 clock at 2019)
    restarts the clock mapping (``clock_resets``). Device times are mapped onto host time by a
    ``DeviceClock`` fed with each frame's last-sample time and host receive time; output
    timestamps never go backwards.

    Parameters
    ----------
    fs_hz : float
        The sample rate the stream was started at.
    g_per_count : float
        Scale of one count: 0.001 on an H10 (milli-g), the start reply's factor on a Verity Sense.
    resolution_bits : int
        From the settings (sizes the reference sample of delta frames).
    clock : DeviceClock | None
        The mapping (a default ``DeviceClock()`` when ``None``).
    clock_jump_s : float
        Device-vs-host disagreement on elapsed time that means the device clock jumped.
    """

    channels = 3

    def __init__(
        self,
        fs_hz: float,
        *,
        g_per_count: float = 1e-3,
        resolution_bits: int = 16,
        clock: DeviceClock | None = None,
        clock_jump_s: float = 1.0,
    ) -> None:
        self.fs_hz = fs_hz
        self.g_per_count = g_per_count
        self.resolution_bits = resolution_bits
        self.clock = clock or DeviceClock()
        self.clock_jump_s = clock_jump_s
        self.packets = 0
        self.samples = 0
        self.lost_packets = 0
        self.lost_samples = 0
        self.clock_resets = 0
        self._rejects = Rejects(log, "polar-pmd")
        self._epoch_ns: int | None = None  # device time 0 (the first frame's timestamp)
        self._prev_ns = 0
        self._prev_host_s = 0.0
        self._last_t_s = -np.inf

    @property
    def malformed(self) -> int:
        return self._rejects.count

    def feed(self, host_t_s: float, data: bytes) -> list[SampleBlock]:
        """One notification received at ``host_t_s``; never raises on bad input."""
        try:
            frame = PmdDataFrame.from_bytes(
                data, channels=self.channels, resolution_bits=self.resolution_bits
            )
        except CodecError as e:
            self._rejects.add(e)
            return []
        if frame.measurement_type != MeasurementType.ACC:
            self._rejects.add(f"measurement type {frame.measurement_type} is not ACC", "type")
            return []
        n, ts_ns = frame.samples.shape[0], frame.timestamp_ns
        self.packets += 1
        self.samples += n
        nominal_s = np.arange(1 - n, 1) / self.fs_hz  # offsets of the samples from the last
        dt_s = 0.0
        if self._epoch_ns is not None:
            dt_s = (ts_ns - self._prev_ns) * 1e-9
            if dt_s <= 0 or abs(dt_s - (host_t_s - self._prev_host_s)) > self.clock_jump_s:
                log.warning("polar-pmd: the device clock jumped by %.3f s: remapping", dt_s)
                self.clock_resets += 1
                self.clock.reset()
                self._epoch_ns = None
        if self._epoch_ns is None:
            self._epoch_ns = ts_ns
            offsets_s = nominal_s
        elif dt_s > 1.5 * n / self.fs_hz:
            missing = round(dt_s * self.fs_hz) - n
            self.lost_samples += missing
            self.lost_packets += max(1, round(missing / n))
            offsets_s = nominal_s
        else:
            offsets_s = (np.arange(1, n + 1) / n - 1.0) * dt_s
        self._prev_ns, self._prev_host_s = ts_ns, host_t_s
        last_dev_s = (ts_ns - self._epoch_ns) * 1e-9
        self.clock.observe(last_dev_s, host_t_s)
        t_s = np.maximum(self.clock.to_host(last_dev_s + offsets_s), self._last_t_s)
        self._last_t_s = float(t_s[-1])
        return [SampleBlock(t_s, frame.samples.astype(np.float64) * self.g_per_count)]
