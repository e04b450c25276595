"""Running Speed and Cadence (``0x1814``): what every commercial footpod speaks.

Speed, cadence and distance only, no acceleration: this stream drives cadence and the rep engine.
The cadence field's unit is ambiguous in the field (steps/min on some devices, one-foot strides
on others), hence ``CadenceUnit`` and the auto-detection in ``RscStream``.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum
from typing import Self

import numpy as np

from device.errors import CodecError
from device.profiles import Rejects
from device.profiles.gatt import sig_uuid
from dsp.samples import CadenceReading

log = logging.getLogger(__name__)

RSC_SERVICE = sig_uuid(0x1814)
RSC_MEASUREMENT = sig_uuid(0x2A53)
RSC_FEATURE = sig_uuid(0x2A54)
SENSOR_LOCATION = sig_uuid(0x2A5D)
SC_CONTROL_POINT = sig_uuid(0x2A55)

# counts per unit: values decode as count / N (exact for the test values a SIG spec quotes)
SPEED_COUNTS_PER_M_S = 256
STRIDE_COUNTS_PER_M = 100
DISTANCE_COUNTS_PER_M = 10


def _fail(reason: str) -> CodecError:
    return CodecError("rsc", reason)


class RscMeasurementFlags(IntFlag):
    STRIDE_LENGTH = 0x01
    TOTAL_DISTANCE = 0x02
    RUNNING = 0x04


def _quantise(value: float, per_unit: int, max_count: int, name: str) -> int:
    count = round(value * per_unit) if math.isfinite(value) else -1
    if not 0 <= count <= max_count:
        raise _fail(f"{name} {value} is outside 0..{max_count / per_unit:g}")
    return count


@dataclass(frozen=True, slots=True)
class RscMeasurement:
    """RSC Measurement ``0x2A53``: flags u8, speed u16 (1/256 m/s), cadence u8 (per minute),
    stride length u16 (cm) if flag bit 0, total distance u32 (dm) if flag bit 1.

    ``cadence_per_min`` is as sent: steps or strides depending on the device (see ``CadenceUnit``).
    """

    speed_m_s: float
    cadence_per_min: int
    running: bool
    stride_length_m: float | None = None
    total_distance_m: float | None = None

    def __post_init__(self) -> None:
        _quantise(self.speed_m_s, SPEED_COUNTS_PER_M_S, 0xFFFF, "speed_m_s")
        if not 0 <= self.cadence_per_min <= 0xFF:
            raise _fail(f"cadence {self.cadence_per_min} is outside 0..255")
        if self.stride_length_m is not None:
            _quantise(self.stride_length_m, STRIDE_COUNTS_PER_M, 0xFFFF, "stride_length_m")
        if self.total_distance_m is not None:
            _quantise(self.total_distance_m, DISTANCE_COUNTS_PER_M, 0xFFFF_FFFF, "total_distance_m")

    @property
    def flags(self) -> RscMeasurementFlags:
        f = RscMeasurementFlags(0)
        if self.stride_length_m is not None:
            f |= RscMeasurementFlags.STRIDE_LENGTH
        if self.total_distance_m is not None:
            f |= RscMeasurementFlags.TOTAL_DISTANCE
        if self.running:
            f |= RscMeasurementFlags.RUNNING
        return f

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) < 4:
            raise _fail(f"a measurement is at least 4 bytes, got {len(data)}")
        flags = data[0]
        if flags & ~0x07:
            raise _fail(f"reserved flag bits set in 0x{flags:02X}")
        expected = 4 + 2 * bool(flags & 0x01) + 4 * bool(flags & 0x02)
        if len(data) != expected:
            raise _fail(f"flags 0x{flags:02X} promise {expected} bytes, got {len(data)}")
        speed, cadence = struct.unpack_from("<HB", data, 1)
        pos = 4
        stride_m = distance_m = None
        if flags & RscMeasurementFlags.STRIDE_LENGTH:
            stride_m = struct.unpack_from("<H", data, pos)[0] / STRIDE_COUNTS_PER_M
            pos += 2
        if flags & RscMeasurementFlags.TOTAL_DISTANCE:
            distance_m = struct.unpack_from("<I", data, pos)[0] / DISTANCE_COUNTS_PER_M
        return cls(
            speed / SPEED_COUNTS_PER_M_S,
            cadence,
            bool(flags & RscMeasurementFlags.RUNNING),
            stride_m,
            distance_m,
        )

    def __bytes__(self) -> bytes:
        out = bytearray(
            struct.pack("<BHB", self.flags, _speed(self.speed_m_s), self.cadence_per_min)
        )
        if self.stride_length_m is not None:
            out += struct.pack(
                "<H", _quantise(self.stride_length_m, STRIDE_COUNTS_PER_M, 0xFFFF, "stride")
            )
        if self.total_distance_m is not None:
            count = _quantise(self.total_distance_m, DISTANCE_COUNTS_PER_M, 0xFFFF_FFFF, "distance")
            out += struct.pack("<I", count)
        return bytes(out)


def _speed(speed_m_s: float) -> int:
    return _quantise(speed_m_s, SPEED_COUNTS_PER_M_S, 0xFFFF, "speed_m_s")


class RscFeatureFlags(IntFlag):
    STRIDE_LENGTH = 0x01
    TOTAL_DISTANCE = 0x02
    RUNNING_STATUS = 0x04
    CALIBRATION = 0x08
    MULTIPLE_SENSOR_LOCATIONS = 0x10


@dataclass(frozen=True, slots=True)
class RscFeature:
    """RSC Feature ``0x2A54``: u16 bitmask of what the sensor supports."""

    features: RscFeatureFlags

    def __post_init__(self) -> None:
        if int(self.features) & ~0x1F:
            raise _fail(f"reserved feature bits set in 0x{int(self.features):04X}")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) != 2:
            raise _fail(f"the feature value is 2 bytes, got {len(data)}")
        value = int.from_bytes(data, "little")
        if value & ~0x1F:
            raise _fail(f"reserved feature bits set in 0x{value:04X}")
        return cls(RscFeatureFlags(value))

    def __bytes__(self) -> bytes:
        return int(self.features).to_bytes(2, "little")


class SensorLocation(IntEnum):
    """Sensor Location values (Bluetooth SIG assigned numbers)."""

    OTHER = 0
    TOP_OF_SHOE = 1
    IN_SHOE = 2
    HIP = 3
    FRONT_WHEEL = 4
    LEFT_CRANK = 5
    RIGHT_CRANK = 6
    LEFT_PEDAL = 7
    RIGHT_PEDAL = 8
    FRONT_HUB = 9
    REAR_DROPOUT = 10
    CHAINSTAY = 11
    REAR_WHEEL = 12
    REAR_HUB = 13
    CHEST = 14
    SPIDER = 15
    CHAIN_RING = 16


def _location(value: int) -> SensorLocation:
    try:
        return SensorLocation(value)
    except ValueError:
        raise _fail(f"unknown sensor location {value}") from None


@dataclass(frozen=True, slots=True)
class RscSensorLocation:
    """Sensor Location ``0x2A5D``: one byte."""

    location: SensorLocation

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) != 1:
            raise _fail(f"the sensor location is 1 byte, got {len(data)}")
        return cls(_location(data[0]))

    def __bytes__(self) -> bytes:
        return bytes([self.location])


class ScOpcode(IntEnum):
    SET_CUMULATIVE_DISTANCE = 1
    START_CALIBRATION = 2
    UPDATE_SENSOR_LOCATION = 3
    REQUEST_SUPPORTED_LOCATIONS = 4
    RESPONSE = 0x10


class ScResult(IntEnum):
    SUCCESS = 1
    NOT_SUPPORTED = 2
    INVALID_PARAMETER = 3
    FAILED = 4


@dataclass(frozen=True, slots=True)
class ScRequest:
    """SC Control Point ``0x2A55`` request: opcode u8, then u32 distance (dm) for opcode 1 or
    a location u8 for opcode 3; no parameter for 2 and 4."""

    opcode: ScOpcode
    cumulative_distance_m: float | None = None
    location: SensorLocation | None = None

    def __post_init__(self) -> None:
        if self.opcode is ScOpcode.RESPONSE:
            raise _fail("0x10 is the response opcode, not a request")
        wants_distance = self.opcode is ScOpcode.SET_CUMULATIVE_DISTANCE
        wants_location = self.opcode is ScOpcode.UPDATE_SENSOR_LOCATION
        if (self.cumulative_distance_m is not None) != wants_distance:
            raise _fail(f"{self.opcode.name} {'needs' if wants_distance else 'takes no'} distance")
        if (self.location is not None) != wants_location:
            raise _fail(f"{self.opcode.name} {'needs' if wants_location else 'takes no'} location")
        if self.cumulative_distance_m is not None:
            _quantise(self.cumulative_distance_m, DISTANCE_COUNTS_PER_M, 0xFFFF_FFFF, "distance")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if not data:
            raise _fail("an empty control-point request")
        try:
            opcode = ScOpcode(data[0])
        except ValueError:
            raise _fail(f"unknown control-point opcode {data[0]}") from None
        size = {ScOpcode.SET_CUMULATIVE_DISTANCE: 5, ScOpcode.UPDATE_SENSOR_LOCATION: 2}
        if len(data) != size.get(opcode, 1):
            raise _fail(f"{opcode.name} is {size.get(opcode, 1)} bytes, got {len(data)}")
        if opcode is ScOpcode.SET_CUMULATIVE_DISTANCE:
            distance_m = int.from_bytes(data[1:5], "little") / DISTANCE_COUNTS_PER_M
            return cls(opcode, cumulative_distance_m=distance_m)
        if opcode is ScOpcode.UPDATE_SENSOR_LOCATION:
            return cls(opcode, location=_location(data[1]))
        return cls(opcode)

    def __bytes__(self) -> bytes:
        out = bytes([self.opcode])
        if self.cumulative_distance_m is not None:
            dm = _quantise(
                self.cumulative_distance_m, DISTANCE_COUNTS_PER_M, 0xFFFF_FFFF, "distance"
            )
            out += dm.to_bytes(4, "little")
        if self.location is not None:
            out += bytes([self.location])
        return out


@dataclass(frozen=True, slots=True)
class ScResponse:
    """SC Control Point indication: ``10 <request opcode> <result>``, then the supported
    locations (one byte each) after a successful request for them."""

    request: ScOpcode
    result: ScResult
    supported_locations: tuple[SensorLocation, ...] = ()

    def __post_init__(self) -> None:
        if self.request is ScOpcode.RESPONSE:
            raise _fail("a response cannot answer a response")
        lists = self.request is ScOpcode.REQUEST_SUPPORTED_LOCATIONS
        if self.supported_locations and not (lists and self.result is ScResult.SUCCESS):
            raise _fail("only a successful location request lists locations")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) < 3 or data[0] != ScOpcode.RESPONSE:
            raise _fail(f"a response is 10 <opcode> <result> […], got {data.hex(' ')}")
        try:
            request, result = ScOpcode(data[1]), ScResult(data[2])
        except ValueError:
            raise _fail(f"unknown opcode or result in {data.hex(' ')}") from None
        return cls(request, result, tuple(_location(b) for b in data[3:]))

    def __bytes__(self) -> bytes:
        return bytes([ScOpcode.RESPONSE, self.request, self.result, *self.supported_locations])


class CadenceUnit(StrEnum):
    """What a device's cadence field counts: steps (both feet), strides (one foot), or unknown."""

    STEPS = "steps"
    STRIDES = "strides"
    AUTO = "auto"


class RscStream:
    """RSC measurements → ``CadenceReading`` (steps/min of both feet, host-stamped).

    With ``unit=AUTO`` the unit is decided once, over the first ``detect_readings`` readings
    taken while running (speed above ``running_speed_m_s``, cadence above zero): if their median
    cadence is below ``stride_threshold_spm`` the device counts strides, and every cadence is
    doubled from then on (nobody runs faster than 2 m/s at under 120 steps/min; everybody does
    at under 120 strides/min). Readings before the decision are held back and released with it,
    so every reading leaves in one unit. A device that does not run within its first
    ``max_held`` readings is taken at its word (steps), and the held readings are released.

    RSC has no sequence numbers: ``lost_packets`` and ``lost_samples`` stay 0 (they exist so
    every stream decoder reports the same counters).

    Parameters
    ----------
    unit : CadenceUnit
        The device's setting: steps, strides, or auto-detect.
    detect_readings : int
        Running readings the auto-detection decides over.
    stride_threshold_spm : float
        A running cadence below this is strides.
    running_speed_m_s : float
        Speed above which a reading counts as running.
    max_held : int
        Readings held at most while undecided.
    """

    def __init__(
        self,
        unit: CadenceUnit = CadenceUnit.AUTO,
        *,
        detect_readings: int = 5,
        stride_threshold_spm: float = 120.0,
        running_speed_m_s: float = 2.0,
        max_held: int = 600,
    ) -> None:
        self.unit = unit
        self.detect_readings = detect_readings
        self.stride_threshold_spm = stride_threshold_spm
        self.running_speed_m_s = running_speed_m_s
        self.max_held = max_held
        self.detected_unit: CadenceUnit | None = None if unit is CadenceUnit.AUTO else unit
        self.packets = 0
        self.lost_packets = 0
        self.lost_samples = 0
        self._held: list[tuple[float, RscMeasurement]] = []
        self._rejects = Rejects(log, "rsc")

    @property
    def malformed(self) -> int:
        return self._rejects.count

    def feed(self, host_t_s: float, data: bytes) -> list[CadenceReading]:
        """One notification received at ``host_t_s``; never raises on bad input."""
        try:
            m = RscMeasurement.from_bytes(data)
        except CodecError as e:
            self._rejects.add(e)
            return []
        self.packets += 1
        if self.detected_unit is None:
            self._held.append((host_t_s, m))
            self._detect()
            if self.detected_unit is None:
                return []
            held, self._held = self._held, []
            return [self._reading(t, x) for t, x in held]
        return [self._reading(host_t_s, m)]

    def _detect(self) -> None:
        running = [
            m.cadence_per_min
            for _, m in self._held
            if m.speed_m_s > self.running_speed_m_s and m.cadence_per_min > 0
        ]
        if len(running) >= self.detect_readings:
            strides = float(np.median(running[: self.detect_readings])) < self.stride_threshold_spm
            self.detected_unit = CadenceUnit.STRIDES if strides else CadenceUnit.STEPS
            log.info("rsc: the device's cadence counts %s", self.detected_unit)
        elif len(self._held) >= self.max_held:
            self.detected_unit = CadenceUnit.STEPS

    def _reading(self, host_t_s: float, m: RscMeasurement) -> CadenceReading:
        factor = 2 if self.detected_unit is CadenceUnit.STRIDES else 1
        return CadenceReading(host_t_s, float(m.cadence_per_min * factor), m.speed_m_s)
