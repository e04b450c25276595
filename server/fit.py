"""A stored session as a FIT activity file, the format Garmin Connect, Strava and most training
logs import.

The bytes are written by Garmin's own FIT SDK (``garmin_fit_sdk.Encoder``, there since 21.200
and generated from the published FIT profile: field numbers, base types, scales, header and
file CRCs), so neither a third-party encoder nor one of our own is needed. This module only
decides which messages a session becomes, in the order of Garmin's "encode an activity" recipe:

- ``file_id`` (type activity, manufacturer ``development``: the FIT profile's id for
  software that is not a registered product; see :func:`serial_number`) and a
  ``device_info`` naming the creator;
- a timer ``start`` event, one ``record`` per stored second, a timer ``stop`` event;
- one ``lap`` per finished rep (``intensity`` active), then one ``session`` and one
  ``activity``.

FIT readers expect at least one lap, so a session without any finished rep gets one lap
spanning the whole session (``lap_trigger`` session_end): "one lap per rep" holds only when
there are reps. Laps then cover the reps only: warm-up, recoveries and cool-down are in the
records and the session, not in a lap.

Running cadence in FIT is in strides (cycles) per minute, one foot's steps: ``cadence`` holds
the whole strides, ``fractional_cadence`` the rest in 1/128ths, so a stored cadence in steps
per minute comes back to within 1/128 spm. ``stance_time`` is the ground contact time, in
0.1 ms. Timestamps are whole seconds: sensor seconds become wall time through the stored rows
(the earliest row's ``wall_time − sensor_time_s``), so that durations stay sensor durations
even when the publisher replayed a recording faster than real time. A value FIT cannot hold
(out of its field's range, NaN) is left out of its message rather than clipped.

FIT has no way to mark a value uncertain, so a second whose cadence the publisher did not
trust has neither cadence nor stance time in its record (an importer would take them as
fact), and the session's averages are of trusted seconds only. A second without a contact time
(cadence from the signal's periodicity, a cadence-only sensor) has no stance time.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from garmin_fit_sdk import FIT_EPOCH_S, Encoder, Profile

from server.errors import ServerError
from server.store import MetricRow, RepRow

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.ant.fit"
PRODUCT_NAME = "Stridecue"
FRACTION = 128  # fractional_cadence: 1/128 stride per minute
_MAX_DATE_TIME = 0xFFFF_FFFE  # uint32 seconds since the FIT epoch; 0xFFFFFFFF means invalid
_MAX_UINT8 = 0xFE
_MAX_UINT16 = 0xFFFE
_MAX_UINT32 = 0xFFFF_FFFE
_MESG = Profile["mesg_num"]


class FitExportError(ServerError):
    """The session holds nothing a FIT activity can carry (no second, no rep with a time)."""

    def __init__(self, session_id: str, problem: str) -> None:
        super().__init__(f"session {session_id!r} cannot be exported as FIT: {problem}")
        self.session_id = session_id
        self.problem = problem


@dataclass(frozen=True, slots=True)
class SensorClock:
    """Sensor stream seconds to FIT timestamps (whole seconds since 1989-12-31 00:00 UTC)."""

    epoch_s: float  # Unix time at sensor time 0

    @classmethod
    def of(cls, rows: Iterable[MetricRow | RepRow]) -> SensorClock | None:
        """The clock of the earliest row (by sensor time); ``None`` without any usable row."""
        usable = [r for r in rows if math.isfinite(r.sensor_time_s)]
        if not usable:
            return None
        first = min(usable, key=lambda r: r.sensor_time_s)
        return cls(first.wall_time.timestamp() - first.sensor_time_s)

    def fit_s(self, sensor_time_s: float) -> int | None:
        """The FIT timestamp nearest ``sensor_time_s``; ``None`` outside FIT's range."""
        value = self.epoch_s + sensor_time_s - FIT_EPOCH_S
        if not math.isfinite(value):
            return None
        stamp = math.floor(value + 0.5)
        return stamp if 0 <= stamp <= _MAX_DATE_TIME else None


def encode_activity(session_id: str, metrics: Sequence[MetricRow], reps: Sequence[RepRow]) -> bytes:
    """The FIT activity file of a session's per-second ``metrics`` and finished ``reps``.

    Rows whose time FIT cannot represent are left out (and logged); raises
    :class:`FitExportError` when none is left.
    """
    clock = SensorClock.of([*metrics, *reps])
    if clock is None:
        raise FitExportError(session_id, "it has no metrics and no finished rep yet")
    seconds = [(m, t) for m in metrics if (t := clock.fit_s(m.sensor_time_s)) is not None]
    laps = [
        (r, start, end)
        for r in reps
        if (start := clock.fit_s(r.start_s)) is not None
        and (end := clock.fit_s(r.end_s)) is not None
        and _checked(r.duration_s, 1000, _MAX_UINT32) is not None
    ]
    if skipped := len(metrics) + len(reps) - len(seconds) - len(laps):
        log.warning("FIT export of %s: left out %d rows FIT cannot date", session_id, skipped)
    times_s = [m.sensor_time_s for m, _ in seconds] + [
        t for r, *_ in laps for t in (r.start_s, r.end_s)
    ]
    if not times_s:
        raise FitExportError(session_id, "none of its times falls within FIT's range (1990–2126)")
    start, end = clock.fit_s(min(times_s)), clock.fit_s(max(times_s))
    elapsed_s = _checked(max(times_s) - min(times_s), 1000, _MAX_UINT32)
    if start is None or end is None or elapsed_s is None:
        raise FitExportError(session_id, "it lasts longer than a FIT session can (49 days)")

    encoder = Encoder()
    encoder.write_mesg(_file_id(start, serial_number(session_id)))
    encoder.write_mesg(_device_info(start, serial_number(session_id)))
    encoder.write_mesg(_timer(start, "start"))
    for row, timestamp in seconds:
        encoder.write_mesg(_record(row, timestamp))
    encoder.write_mesg(_timer(end, "stop"))
    cadences = _known(m.cadence_spm for m, _ in seconds if m.trusted)
    contacts = _known(m.gct_ms for m, _ in seconds if m.trusted)
    for index, (rep, lap_start, lap_end) in enumerate(laps):
        # A rep with a hole in its data is a lap without averages: it was not summarised.
        cadence_spm, gct_ms = (
            (rep.mean_cadence_spm, rep.mean_gct_ms) if rep.complete else (None, None)
        )
        lap = _lap(index, lap_start, lap_end, rep.duration_s, cadence_spm, gct_ms)
        # FIT has no trigger for "the engine saw the rep"; manual is how readers show a split
        # the athlete marked, the nearest meaning.
        encoder.write_mesg(lap | {"lap_trigger": "manual"})
    if not laps:
        whole = _lap(0, start, end, elapsed_s, _mean(cadences), _mean(contacts))
        encoder.write_mesg(whole | {"lap_trigger": "session_end"})
    encoder.write_mesg(_session(start, end, elapsed_s, max(len(laps), 1), cadences, contacts))
    encoder.write_mesg(
        {
            "mesg_num": _MESG["ACTIVITY"],
            "timestamp": end,
            "total_timer_time": elapsed_s,
            "num_sessions": 1,
            "type": "manual",
            "event": "activity",
            "event_type": "stop",
        }
    )
    return bytes(encoder.close())


def running_cadence(steps_per_min: float | None) -> tuple[int | None, float | None]:
    """Steps per minute as FIT's running cadence: whole strides per minute and the fraction
    (a multiple of 1/128); ``(None, None)`` when unknown or out of FIT's range."""
    if steps_per_min is None or not math.isfinite(steps_per_min):
        return None, None
    strides = math.floor(steps_per_min / 2 * FRACTION + 0.5)
    whole, rest = divmod(strides, FRACTION)
    if strides < 0 or whole > _MAX_UINT8:
        return None, None
    return whole, rest / FRACTION


def serial_number(session_id: str) -> int:
    """The ``file_id`` serial number of a session's file: CRC-32 of its id, never 0 (invalid).

    Importers tell files apart by serial number and ``time_created`` (the session's start, not
    the export's): a session exported twice is recognised as a duplicate, two sessions that
    started in the same second are not.
    """
    return zlib.crc32(session_id.encode()) or 1


def _file_id(start: int, serial: int) -> dict[str, Any]:
    return {
        "mesg_num": _MESG["FILE_ID"],
        "type": "activity",
        "manufacturer": "development",
        "product": 0,
        "serial_number": serial,
        "time_created": start,
        "product_name": PRODUCT_NAME,
    }


def _device_info(start: int, serial: int) -> dict[str, Any]:
    return {
        "mesg_num": _MESG["DEVICE_INFO"],
        "timestamp": start,
        "device_index": "creator",
        "manufacturer": "development",
        "product": 0,
        "serial_number": serial,
        "product_name": PRODUCT_NAME,
    }


def _timer(timestamp: int, event_type: str) -> dict[str, Any]:
    return {
        "mesg_num": _MESG["EVENT"],
        "timestamp": timestamp,
        "event": "timer",
        "event_type": event_type,
    }


def _session(
    start: int,
    end: int,
    elapsed_s: float,
    num_laps: int,
    cadences_spm: list[float],
    contacts_ms: list[float],
) -> dict[str, Any]:
    cadence, fraction = running_cadence(_mean(cadences_spm))
    top, top_fraction = running_cadence(max(cadences_spm, default=None))
    return {
        "mesg_num": _MESG["SESSION"],
        "message_index": 0,
        "timestamp": end,
        "event": "session",
        "event_type": "stop",
        "start_time": start,
        "total_elapsed_time": elapsed_s,
        "total_timer_time": elapsed_s,
        "sport": "running",
        "sub_sport": "generic",
        "first_lap_index": 0,
        "num_laps": num_laps,
        "trigger": "activity_end",
        "avg_cadence": cadence,
        "avg_fractional_cadence": fraction,
        "max_cadence": top,
        "max_fractional_cadence": top_fraction,
        "avg_stance_time": _checked(_mean(contacts_ms), 10, _MAX_UINT16),
    }


def _record(row: MetricRow, timestamp: int) -> dict[str, Any]:
    cadence, fraction = running_cadence(row.cadence_spm if row.trusted else None)
    gct_ms = row.gct_ms if row.trusted else None
    return {
        "mesg_num": _MESG["RECORD"],
        "timestamp": timestamp,
        "cadence": cadence,
        "fractional_cadence": fraction,
        "stance_time": _checked(gct_ms, 10, _MAX_UINT16),
        "speed": _checked(row.speed_m_s, 1000, _MAX_UINT16),
    }


def _lap(
    index: int,
    start: int,
    end: int,
    elapsed_s: float,
    cadence_spm: float | None,
    gct_ms: float | None,
) -> dict[str, Any]:
    cadence, fraction = running_cadence(cadence_spm)
    return {
        "mesg_num": _MESG["LAP"],
        "message_index": index,
        "timestamp": end,
        "event": "lap",
        "event_type": "stop",
        "start_time": start,
        "total_elapsed_time": elapsed_s,
        "total_timer_time": elapsed_s,
        "sport": "running",
        "sub_sport": "generic",
        "intensity": "active",
        "avg_cadence": cadence,
        "avg_fractional_cadence": fraction,
        "avg_stance_time": _checked(gct_ms, 10, _MAX_UINT16),
    }


def _known(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _checked(value: float | None, scale: float, max_raw: int) -> float | None:
    """``value`` when its scaled, rounded form fits the field (``0..max_raw``), else ``None``."""
    if value is None or not math.isfinite(value):
        return None
    return value if 0 <= round(value * scale) <= max_raw else None


def _mean(values: list[float]) -> float | None:
    return fmean(values) if values else None
