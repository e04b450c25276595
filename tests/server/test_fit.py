"""The FIT activity encoding on known rows, decoded back by Garmin's FIT SDK.

Resolutions of the FIT profile: timestamps 1 s, elapsed times 1 ms, running cadence 1/128
stride per minute (1/64 step per minute), stance time 0.1 ms, speed 1 mm/s.
"""

from __future__ import annotations

import logging
import math
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from garmin_fit_sdk import Decoder, Stream

from bus.messages import Quality
from server.fit import (
    FitExportError,
    SensorClock,
    encode_activity,
    running_cadence,
    serial_number,
)
from server.store import MetricRow, RepRow

T0 = datetime(2025, 6, 2, 18, 0, tzinfo=UTC)
CADENCE_TOLERANCE_SPM = 1 / 128  # half of FIT's 1/64 spm step
STANCE_TOLERANCE_MS = 0.05 + 1e-9
QUALITY = Quality(samples=200, saturated_samples=0, gaps=0, lost_samples=0)


def decode(data: bytes) -> dict[str, list[dict[str, Any]]]:
    """Garmin's decoder on ``data``: a FIT file, CRCs right, no decode error."""
    assert Decoder(Stream.from_byte_array(bytearray(data))).is_fit()
    assert Decoder(Stream.from_byte_array(bytearray(data))).check_integrity()
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    assert errors == []
    return cast(dict[str, list[dict[str, Any]]], messages)


def metric(t_s: float, wall: datetime, **values: Any) -> MetricRow:
    fields: dict[str, Any] = {
        "cadence_spm": 180.0,
        "gct_ms": 220.0,
        "step_count": int(3 * t_s),
        "intensity_g": 2.0,
        "speed_m_s": None,
        "activity": "running",
        "cadence_source": "contacts",
        "cadence_confidence": 0.9,
        "lost_fraction": 0.0,
        "clipped_fraction": 0.0,
        "trusted": True,
    }
    return MetricRow(
        sensor_time_s=t_s, wall_time=wall, quality=QUALITY, seconds=1, **(fields | values)
    )


def rep(number: int, start_s: float, end_s: float, wall: datetime, **values: Any) -> RepRow:
    fields: dict[str, Any] = {
        "mean_cadence_spm": 190.0,
        "mean_gct_ms": 200.0,
        "gct_drift_ms": None,
        "cadence_cv_pct": None,
        "time_to_stride_cadence_s": None,
        "fatigue_flag": False,
        "fatigue_reason": None,
        "missing_s": 0.0,
        "complete": True,
    }
    return RepRow(
        id=f"rep-{number}",
        seq=number,
        sensor_time_s=end_s,
        wall_time=wall,
        rep=number,
        start_s=start_s,
        end_s=end_s,
        duration_s=end_s - start_s,
        **(fields | values),
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_running_cadence_is_strides_and_128ths() -> None:
    assert running_cadence(181.0) == (90, 0.5)
    assert running_cadence(180.0) == (90, 0.0)
    assert running_cadence(171.25) == (85, 80 / 128)
    # A fraction rounding up to a whole stride carries into the whole strides.
    assert running_cadence(2 * (90 + 127.8 / 128)) == (91, 0.0)
    for unknown in (None, math.nan, math.inf, -4.0, 600.0):
        assert running_cadence(unknown) == (None, None)


def test_records_hold_each_second_to_fit_resolution() -> None:
    # The publisher's clock says 0.3 s after sensor time 10 s: sensor time t is T0 + t − 9.7 s.
    rows = [
        metric(10.0, at(0.3), cadence_spm=None, gct_ms=None),  # first second: nothing yet
        metric(11.0, at(1.3), cadence_spm=171.3, gct_ms=241.26, speed_m_s=3.2125),
        metric(12.0, at(2.3), cadence_spm=183.337, gct_ms=198.04, speed_m_s=3.5),
        metric(13.0, at(3.3), cadence_spm=math.nan, gct_ms=7000.0, speed_m_s=70.0),
    ]
    messages = decode(encode_activity("s", rows, []))
    records = messages["record_mesgs"]
    assert [r["timestamp"] for r in records] == [at(0), at(1), at(2), at(3)]
    assert "cadence" not in records[0] and "stance_time" not in records[0]
    for row, record in zip(rows[1:3], records[1:3], strict=True):
        spm = 2 * (record["cadence"] + record["fractional_cadence"])
        assert row.cadence_spm is not None and row.speed_m_s is not None
        assert abs(spm - row.cadence_spm) <= CADENCE_TOLERANCE_SPM
        assert abs(record["stance_time"] - row.gct_ms) <= STANCE_TOLERANCE_MS
        assert record["speed"] == pytest.approx(row.speed_m_s, abs=0.0005)
    # NaN, and values past the fields' ranges (6553.4 ms, 65.534 m/s), are left out.
    assert not {"cadence", "stance_time", "speed"} & records[3].keys()


def test_an_untrusted_second_has_no_cadence_and_no_stance_time() -> None:
    rows = [
        metric(1.0, at(1), cadence_spm=180.0, gct_ms=220.0),
        # Cadence from the periodicity: no contact time, the cadence itself trusted.
        metric(2.0, at(2), cadence_spm=182.0, gct_ms=None, cadence_source="periodicity"),
        # The periodicity does not support it: kept in the store, not written as fact.
        metric(3.0, at(3), cadence_spm=120.0, gct_ms=300.0, cadence_confidence=0.2, trusted=False),
        metric(4.0, at(4), cadence_spm=184.0, gct_ms=210.0, lost_fraction=0.5, trusted=False),
        metric(5.0, at(5), cadence_spm=186.0, gct_ms=230.0),
    ]
    messages = decode(encode_activity("s", rows, []))
    records = messages["record_mesgs"]
    assert [r["timestamp"] for r in records] == [at(t) for t in range(1, 6)]
    assert ["cadence" in r for r in records] == [True, True, False, False, True]
    assert ["stance_time" in r for r in records] == [True, False, False, False, True]
    assert 2 * (records[1]["cadence"] + records[1]["fractional_cadence"]) == 182.0
    # The session's averages and maximum are of the trusted seconds only.
    (session,) = messages["session_mesgs"]
    mean_spm = 2 * (session["avg_running_cadence"] + session["avg_fractional_cadence"])
    assert abs(mean_spm - (180.0 + 182.0 + 186.0) / 3) <= CADENCE_TOLERANCE_SPM
    assert 2 * (session["max_running_cadence"] + session["max_fractional_cadence"]) == 186.0
    assert session["avg_stance_time"] == 225.0


def test_a_rep_with_a_hole_is_a_lap_without_averages() -> None:
    rows = [metric(float(t), at(t)) for t in range(1, 61)]
    # Whatever means a publisher sent for it, an incomplete rep is not summarised.
    reps = [
        rep(1, 5.0, 25.0, at(25)),
        rep(2, 30.0, 60.0, at(60), mean_cadence_spm=150.0, missing_s=20.0, complete=False),
    ]
    laps = decode(encode_activity("s", rows, reps))["lap_mesgs"]
    assert [lap["total_elapsed_time"] for lap in laps] == [20.0, 30.0]
    assert 2 * (laps[0]["avg_running_cadence"] + laps[0]["avg_fractional_cadence"]) == 190.0
    assert not {"avg_cadence", "avg_running_cadence", "avg_stance_time"} & laps[1].keys()


def test_one_lap_per_rep_with_its_times_and_means() -> None:
    rows = [metric(float(t), at(t)) for t in range(1, 121)]
    reps = [
        rep(1, 30.4, 61.25, at(61.5), mean_cadence_spm=191.5, mean_gct_ms=201.33),
        rep(2, 90.6, 120.0, at(120.2), mean_cadence_spm=None, mean_gct_ms=None),
    ]
    messages = decode(encode_activity("s", rows, reps))
    laps = messages["lap_mesgs"]
    assert len(laps) == 2
    assert [lap["start_time"] for lap in laps] == [at(30), at(91)]
    assert [lap["timestamp"] for lap in laps] == [at(61), at(120)]
    assert [lap["total_elapsed_time"] for lap in laps] == [30.85, 29.4]
    assert [lap["total_timer_time"] for lap in laps] == [30.85, 29.4]
    assert [lap["message_index"] for lap in laps] == [0, 1]
    assert {(lap["intensity"], lap["lap_trigger"], lap["sport"]) for lap in laps} == {
        ("active", "manual", "running")
    }
    assert 2 * (laps[0]["avg_running_cadence"] + laps[0]["avg_fractional_cadence"]) == 191.5
    assert laps[0]["avg_stance_time"] == 201.3
    assert "avg_cadence" not in laps[1] and "avg_stance_time" not in laps[1]
    (session,) = messages["session_mesgs"]
    assert (session["num_laps"], session["first_lap_index"]) == (2, 0)
    assert (session["start_time"], session["timestamp"]) == (at(1), at(120))
    assert session["total_elapsed_time"] == session["total_timer_time"] == 119.0
    assert 2 * (session["avg_running_cadence"] + session["avg_fractional_cadence"]) == 180.0
    assert session["avg_stance_time"] == 220.0
    (activity,) = messages["activity_mesgs"]
    assert (activity["num_sessions"], activity["total_timer_time"]) == (1, 119.0)
    assert [(e["event"], e["event_type"], e["timestamp"]) for e in messages["event_mesgs"]] == [
        ("timer", "start", at(1)),
        ("timer", "stop", at(120)),
    ]
    (file_id,) = messages["file_id_mesgs"]
    assert (file_id["type"], file_id["manufacturer"], file_id["product"]) == (
        "activity",
        "development",
        0,
    )
    assert file_id["time_created"] == at(1)
    assert file_id["serial_number"] == serial_number("s") == zlib.crc32(b"s")
    assert serial_number("another") != serial_number("s")


def test_a_session_without_reps_is_one_lap() -> None:
    rows = [metric(float(t), at(t), cadence_spm=170.0 + t) for t in range(5, 65)]
    messages = decode(encode_activity("s", rows, []))
    (lap,) = messages["lap_mesgs"]
    assert (lap["start_time"], lap["timestamp"], lap["total_elapsed_time"]) == (at(5), at(64), 59)
    assert (lap["lap_trigger"], lap["intensity"]) == ("session_end", "active")
    assert 2 * (lap["avg_running_cadence"] + lap["avg_fractional_cadence"]) == 170.0 + 34.5
    assert messages["session_mesgs"][0]["num_laps"] == 1


def test_durations_stay_sensor_durations_when_a_replay_ran_fast() -> None:
    # Published 30 times faster than real time: the wall clock is no clock of the run.
    rows = [metric(float(t), at(t / 30)) for t in range(0, 61)]
    reps = [rep(1, 20.0, 50.0, at(50 / 30))]
    messages = decode(encode_activity("s", rows, reps))
    assert [r["timestamp"] for r in messages["record_mesgs"]] == [at(t) for t in range(0, 61)]
    (lap,) = messages["lap_mesgs"]
    assert (lap["start_time"], lap["total_elapsed_time"]) == (at(20), 30.0)


def test_the_same_session_gives_the_same_bytes() -> None:
    rows = [metric(float(t), at(t)) for t in range(1, 30)]
    reps = [rep(1, 5.0, 20.0, at(20))]
    assert encode_activity("s", rows, reps) == encode_activity("s", list(rows), list(reps))


def test_rows_fit_cannot_date_are_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    rows = [metric(1.0, at(1)), metric(2.0, at(2)), metric(5e9, at(3))]
    reps = [rep(1, -1e10, 2.0, at(2))]  # would start before 1990
    with caplog.at_level(logging.WARNING, logger="server.fit"):
        messages = decode(encode_activity("odd", rows, reps))
    assert [r["timestamp"] for r in messages["record_mesgs"]] == [at(1), at(2)]
    assert messages["lap_mesgs"][0]["lap_trigger"] == "session_end"
    assert "left out 2 rows" in caplog.text


def test_nothing_to_export_is_an_error() -> None:
    with pytest.raises(FitExportError, match="no metrics and no finished rep"):
        encode_activity("empty", [], [])
    with pytest.raises(FitExportError, match="FIT's range"):
        encode_activity("far", [metric(1.0, datetime(2200, 1, 1, tzinfo=UTC))], [])


def test_the_clock_is_the_earliest_rows() -> None:
    rows = [metric(30.0, at(100)), metric(10.0, at(50))]
    clock = SensorClock.of(rows)
    assert clock is not None
    assert clock.epoch_s == at(40).timestamp()
    assert SensorClock.of([]) is None
