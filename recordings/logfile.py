"""Raw sensor recordings: an append-only, crash-tolerant binary log (``.log``).

``docs/log-format.md`` specifies the bytes; this module is the reference implementation. A file is
a sequence of framed records, all little-endian::

    sync 89 53 43 4C | type u8 | flags u8 | payload_len u32 | payload | crc32 u32

The CRC-32 (zlib/IEEE) covers the sync marker through the end of the payload. The first record is
the JSON HEADER. A reader replays every intact record, skips a damaged one by resynchronising on
the next sync marker, and drops a last record that a killed writer left unfinished.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np

from dsp.events import Placement
from dsp.samples import CadenceReading, SampleBlock

logger = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
SYNC: Final = b"\x89SCL"
# Bounds a damaged length field: a reader treats anything longer as corruption, not as a record
# that runs past the end of the file. Writers split sample blocks well below it.
MAX_PAYLOAD_BYTES: Final = 1 << 24
MAX_RECORD_SAMPLES: Final = 1 << 16

_FRAME = struct.Struct("<4sBBI")  # sync, type, flags, payload_len
_CRC = struct.Struct("<I")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_CADENCE = struct.Struct("<ddd")
_NOTIFICATION = struct.Struct("<d16s")
_HEAD = _FRAME.size

FLAG_GYRO: Final = 0x01  # SAMPLES: the record carries a gyro array
FLAG_SPEED: Final = 0x01  # CADENCE: the speed field is valid
_BLE_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


class RecordType(IntEnum):
    HEADER = 0x01
    SAMPLES = 0x02
    CADENCE = 0x03
    NOTIFICATION = 0x04
    NOTE = 0x05


class LogError(Exception):
    """Root of the errors raised while reading or writing a recording."""


class LogFormatError(LogError):
    """The file is not a stridecue log this version can use; ``reason`` says what to do."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _default_units() -> dict[str, str]:
    return {"t": "s", "acc": "g", "gyro": "deg/s"}


def utc_now() -> str:
    """The current time as a header's ``start_time``: ISO 8601 UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class LogHeader:
    """What a recording holds: ``start_time`` is ISO 8601 UTC (``2024-05-01T06:30:00Z``)."""

    device: str
    placement: str
    sample_rate_hz: float
    start_time: str
    units: dict[str, str] = field(default_factory=_default_units)
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification:
    """One raw BLE notification as the host received it, for byte-exact replay through the codecs.

    ``host_t_s`` is the host receive time, seconds since the header's ``start_time``.
    ``characteristic`` is read back in canonical 128-bit form (lowercase, with dashes).
    """

    host_t_s: float
    characteristic: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Note:
    """A free JSON annotation at stream time ``t_s`` (e.g. a gap reported by the device layer)."""

    t_s: float
    data: dict[str, Any]


Record = SampleBlock | CadenceReading | Notification | Note


def characteristic_uuid(characteristic: str) -> uuid.UUID:
    """A characteristic UUID from its 128-bit form or a 16/32-bit Bluetooth short form."""
    text = characteristic.strip().lower()
    if len(text) in (4, 8) and all(c in "0123456789abcdef" for c in text):
        text = f"{int(text, 16):08x}{_BLE_BASE_UUID_TAIL}"
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError(f"not a characteristic UUID: {characteristic!r}") from None


def _frame(rtype: RecordType, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"record payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    head = _FRAME.pack(SYNC, rtype, flags, len(payload))
    return b"".join((head, payload, _CRC.pack(zlib.crc32(payload, zlib.crc32(head)))))


def _json_bytes(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _header_payload(header: LogHeader) -> bytes:
    return _json_bytes(
        {
            "format_version": header.format_version,
            "device": header.device,
            "placement": header.placement,
            "sample_rate_hz": header.sample_rate_hz,
            "start_time": header.start_time,
            "units": header.units,
            "extra": header.extra,
        }
    )


def _samples_payload(block: SampleBlock) -> tuple[int, bytes]:
    parts = [
        _U32.pack(len(block)),
        np.ascontiguousarray(block.t_s, dtype="<f8").tobytes(),
        np.ascontiguousarray(block.acc_g, dtype="<f4").tobytes(),
    ]
    if block.gyro_dps is None:
        return 0, b"".join(parts)
    parts.append(np.ascontiguousarray(block.gyro_dps, dtype="<f4").tobytes())
    return FLAG_GYRO, b"".join(parts)


def _check_header(header: LogHeader) -> None:
    if header.format_version != FORMAT_VERSION:
        raise ValueError(f"this writer writes format version {FORMAT_VERSION} only")
    if not (math.isfinite(header.sample_rate_hz) and header.sample_rate_hz > 0):
        raise ValueError(f"sample_rate_hz must be > 0, got {header.sample_rate_hz}")
    Placement.parse(header.placement)
    try:
        start = datetime.fromisoformat(header.start_time)
    except ValueError:
        start = None
    if start is None or start.utcoffset() != timedelta(0):
        raise ValueError(
            "start_time must be ISO 8601 UTC such as 2024-05-01T06:30:00Z, "
            f"got {header.start_time!r}"
        )


# Outcomes of checking the frame at an offset, besides its end offset when it is intact.
_SHORT: Final = -1  # the file ends inside it
_BAD: Final = -2  # not a record, or a damaged one


def _frame_end(buf: bytes, pos: int) -> int:
    """End offset of the intact record starting at ``pos``, else ``_SHORT`` or ``_BAD``."""
    left = len(buf) - pos
    if left < _HEAD:
        return _SHORT if SYNC.startswith(buf[pos : pos + len(SYNC)]) else _BAD
    sync, _, _, length = _FRAME.unpack_from(buf, pos)
    if sync != SYNC or length > MAX_PAYLOAD_BYTES:
        return _BAD
    end = pos + _HEAD + length + _CRC.size
    if end > len(buf):
        return _SHORT
    (crc,) = _CRC.unpack_from(buf, end - _CRC.size)
    body = memoryview(buf)[pos : end - _CRC.size]
    return end if zlib.crc32(body) == crc else _BAD


def _next_frame(buf: bytes, start: int) -> int | None:
    """Offset of the first intact record at or after ``start``: where reading resynchronises."""
    pos = buf.find(SYNC, start)
    while pos != -1:
        if _frame_end(buf, pos) > 0:
            return pos
        pos = buf.find(SYNC, pos + 1)
    return None


class _MalformedError(Exception):
    """An intact record (good CRC) whose payload does not match its type's layout."""


def _decode(rtype: int, flags: int, payload: memoryview) -> Record | None:
    """The record, or ``None`` for a type this version skips (unknown, or a mid-file HEADER)."""
    size = len(payload)
    if rtype == RecordType.SAMPLES:
        if flags & ~FLAG_GYRO or size < _U32.size:
            raise _MalformedError
        (n,) = _U32.unpack_from(payload)
        axes = 6 if flags & FLAG_GYRO else 3
        if size != _U32.size + n * (8 + 4 * axes):
            raise _MalformedError
        t_s = np.frombuffer(payload, "<f8", n, _U32.size).astype(np.float64)
        values = np.frombuffer(payload, "<f4", n * axes, _U32.size + 8 * n).astype(np.float64)
        acc = values[: 3 * n].reshape(n, 3)
        gyro = values[3 * n :].reshape(n, 3) if axes == 6 else None
        return SampleBlock(t_s, acc, gyro)
    if rtype == RecordType.CADENCE:
        if flags & ~FLAG_SPEED or size != _CADENCE.size:
            raise _MalformedError
        t_s, cadence_spm, speed_m_s = _CADENCE.unpack_from(payload)
        return CadenceReading(t_s, cadence_spm, speed_m_s if flags & FLAG_SPEED else None)
    if rtype == RecordType.NOTIFICATION:
        if flags or size < _NOTIFICATION.size:
            raise _MalformedError
        host_t_s, raw_uuid = _NOTIFICATION.unpack_from(payload)
        data = bytes(payload[_NOTIFICATION.size :])
        return Notification(host_t_s, str(uuid.UUID(bytes=raw_uuid)), data)
    if rtype == RecordType.NOTE:
        if flags or size < _F64.size:
            raise _MalformedError
        try:
            data = json.loads(bytes(payload[_F64.size :]).decode("utf-8"))
        except ValueError:
            raise _MalformedError from None
        if not isinstance(data, dict):
            raise _MalformedError
        return Note(_F64.unpack_from(payload)[0], data)
    return None


def _header_from_json(obj: Any, path: Path) -> LogHeader:
    if not isinstance(obj, dict):
        raise LogFormatError(
            path, "the header is not a JSON object; the file is not a stridecue log"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise LogFormatError(path, "the header has no valid format_version; not a stridecue log")
    if version > FORMAT_VERSION:
        raise LogFormatError(
            path,
            f"written with log format version {version}, but this stridecue reads versions up to "
            f"{FORMAT_VERSION}: upgrade stridecue to read it",
        )
    expected: dict[str, type | tuple[type, ...]] = {
        "device": str,
        "placement": str,
        "sample_rate_hz": (int, float),
        "start_time": str,
        "units": dict,
        "extra": dict,
    }
    wrong = sorted(k for k, kind in expected.items() if not isinstance(obj.get(k), kind))
    if wrong:
        raise LogFormatError(path, f"the header lacks or mistypes {', '.join(wrong)}: file damaged")
    return LogHeader(
        device=obj["device"],
        placement=obj["placement"],
        sample_rate_hz=float(obj["sample_rate_hz"]),
        start_time=obj["start_time"],
        units=obj["units"],
        format_version=version,
        extra=obj["extra"],
    )


def _parse_header(buf: bytes, path: Path) -> tuple[LogHeader, int]:
    """The header and the offset of the first record after it."""
    if not buf:
        raise LogFormatError(path, "the file is empty: nothing was recorded")
    if not buf.startswith(SYNC):
        raise LogFormatError(
            path,
            "not a stridecue log (it does not begin with the bytes 89 53 43 4C); "
            "pass a .log file written by stridecue",
        )
    end = _frame_end(buf, 0)
    if end < 0 or buf[len(SYNC)] != RecordType.HEADER:
        raise LogFormatError(
            path, "the header record is damaged or cut short, so the recording cannot be identified"
        )
    try:
        obj = json.loads(buf[_HEAD : end - _CRC.size].decode("utf-8"))
    except ValueError:
        raise LogFormatError(path, "the header is not valid UTF-8 JSON: file damaged") from None
    return _header_from_json(obj, path), end


def _read_header_file(path: Path) -> LogHeader:
    with path.open("rb") as f:
        head = f.read(_HEAD)
        if len(head) == _HEAD and head.startswith(SYNC):
            head += f.read(min(_FRAME.unpack(head)[3], MAX_PAYLOAD_BYTES) + _CRC.size)
    return _parse_header(head, path)[0]


class LogWriter:
    """Append records to a ``.log`` file; writes the header when the file is new or empty.

    Sample blocks are coalesced into records of at least ``coalesce_s`` seconds (at the header's
    rate) to keep framing overhead small; ``coalesce_s=0`` writes one record per block. Any other
    record first writes the pending samples, so records keep their order. ``flush()`` and
    ``close()`` write everything pending; a crash loses at most the pending samples plus the
    record being written. Appending to an existing log requires the same device, placement,
    rate and units; its own header is kept (``self.header``).
    """

    def __init__(self, path: Path | str, header: LogHeader, *, coalesce_s: float = 0.25) -> None:
        if coalesce_s < 0:
            raise ValueError(f"coalesce_s must be >= 0, got {coalesce_s}")
        _check_header(header)
        self.path = Path(path)
        is_new = not self.path.exists() or self.path.stat().st_size == 0
        self.header = header if is_new else _read_header_file(self.path)
        same = ("device", "placement", "sample_rate_hz", "units")
        if any(getattr(self.header, k) != getattr(header, k) for k in same):
            raise LogFormatError(
                self.path,
                "already holds a recording from another device, placement, rate or units; "
                "write this one to a new file",
            )
        self._min_samples = max(1, round(coalesce_s * header.sample_rate_hz))
        self._pending: list[SampleBlock] = []
        self._pending_n = 0
        # Encode before opening, so a header that is not JSON leaves no empty file behind.
        header_record = _frame(RecordType.HEADER, 0, _header_payload(header)) if is_new else b""
        self._file = self.path.open("ab")
        self._file.write(header_record)
        self._file.flush()

    def write(self, record: Record) -> None:
        """Queue or write one record (an empty sample block records nothing)."""
        if self._file.closed:
            raise ValueError(f"{self.path}: the writer is closed")
        match record:
            case SampleBlock():
                self._add_samples(record)
            case CadenceReading(t_s=t_s, cadence_spm=cadence_spm, speed_m_s=speed_m_s):
                flags = 0 if speed_m_s is None else FLAG_SPEED
                speed = math.nan if speed_m_s is None else speed_m_s
                self._emit(RecordType.CADENCE, flags, _CADENCE.pack(t_s, cadence_spm, speed))
            case Notification(host_t_s=host_t_s, characteristic=characteristic, data=data):
                raw_uuid = characteristic_uuid(characteristic).bytes
                self._emit(
                    RecordType.NOTIFICATION, 0, _NOTIFICATION.pack(host_t_s, raw_uuid) + data
                )
            case Note(t_s=t_s, data=data):
                self._emit(RecordType.NOTE, 0, _F64.pack(t_s) + _json_bytes(data))
            case _:
                raise TypeError(f"cannot record a {type(record).__name__}")

    def flush(self, *, fsync: bool = False) -> None:
        """Write pending samples and hand everything to the OS.

        That survives the process being killed. ``fsync=True`` also waits for the disk, which
        survives a power loss but costs milliseconds: call it at rep ends, not per block.
        """
        self._write_pending()
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _add_samples(self, block: SampleBlock) -> None:
        if not len(block):
            return
        if self._pending and (self._pending[0].gyro_dps is None) != (block.gyro_dps is None):
            self._write_pending()
        self._pending.append(block)
        self._pending_n += len(block)
        if self._pending_n >= self._min_samples:
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        merged = SampleBlock.concat(self._pending)
        self._pending.clear()
        self._pending_n = 0
        for start in range(0, len(merged), MAX_RECORD_SAMPLES):
            flags, payload = _samples_payload(merged.slice(start, start + MAX_RECORD_SAMPLES))
            self._file.write(_frame(RecordType.SAMPLES, flags, payload))

    def _emit(self, rtype: RecordType, flags: int, payload: bytes) -> None:
        self._write_pending()
        self._file.write(_frame(rtype, flags, payload))


class LogReader:
    """Iterate the records of a ``.log`` file in order.

    The constructor reads the file and validates its header (``LogFormatError`` if it is not a
    log this version reads). After an iteration, ``truncated`` (0 or 1: a last record cut short),
    ``corrupted`` (damaged stretches skipped by resynchronising on the next sync marker) and
    ``skipped`` (intact records of a type this version does not know) count what was dropped;
    each drop is logged once as a warning.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._buf = self.path.read_bytes()
        self.header, self._body_start = _parse_header(self._buf, self.path)
        self.truncated = 0
        self.corrupted = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[Record]:
        self.truncated = self.corrupted = self.skipped = 0
        buf = self._buf
        view = memoryview(buf)
        pos = self._body_start
        while pos < len(buf):
            end = _frame_end(buf, pos)
            if end < 0:
                resume = _next_frame(buf, pos + 1)
                if resume is None and end == _SHORT:
                    self.truncated += 1
                    logger.warning(
                        "%s: the last record (offset %d) is cut short, as when the recorder "
                        "stops mid-write; everything before it was read",
                        self.path,
                        pos,
                    )
                else:
                    self._corrupt(pos, len(buf) if resume is None else resume)
                if resume is None:
                    return
                pos = resume
                continue
            _, rtype, flags, _ = _FRAME.unpack_from(buf, pos)
            try:
                record = _decode(rtype, flags, view[pos + _HEAD : end - _CRC.size])
            except _MalformedError:
                self._corrupt(pos, end)
            else:
                if record is None:
                    self.skipped += 1
                    logger.warning(
                        "%s: skipped a record of type %#04x at offset %d (newer writer?)",
                        self.path,
                        rtype,
                        pos,
                    )
                else:
                    yield record
            pos = end

    def _corrupt(self, start: int, stop: int) -> None:
        self.corrupted += 1
        logger.warning(
            "%s: skipped %d damaged bytes at offset %d (bad CRC or layout); reading resumes at "
            "the next intact record",
            self.path,
            stop - start,
            start,
        )


def read_log(path: Path | str) -> LogReader:
    """A reader over the log at ``path`` (header already validated)."""
    return LogReader(path)
