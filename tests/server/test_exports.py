"""Session exports over real HTTP: CSV back to the stored values, FIT decoded by Garmin's SDK.

Two sources: the known team of ``conftest_app`` (every value known; SQLite and PostgreSQL), and
a simulated closed-loop NRR session with two reps (``simulated``), whose published messages
are the ground truth of what the store holds.
"""
# ruff: noqa: F811 (fixtures imported from conftest_app are test parameters of the same name)

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
from garmin_fit_sdk import Decoder, Stream

from bus.messages import Message, MetricsMessage, Quality, RepMessage
from server.app import create_app
from server.exports import attachment, rows_csv
from tests.server.conftest_app import (
    ANNA_CUES,
    ANNA_METRICS_S,
    ANNA_REPS,
    ANNA_SESSION,
    BEN_SESSION,
    CLEO_LOST_S,
    CLEO_METRICS_S,
    CLEO_PERIODIC_S,
    CLEO_REPS,
    CLEO_SESSION,
    T0,
    TOKEN,
    auth,
    cadence_spm,
    cleo_messages,
    gct_ms,
    seed,
    seeded,  # noqa: F401
    served,  # noqa: F401
    serving,
    settings,
)

SIMULATED = "anna-3"  # the session id of simulated("anna", seed=3)
ODD_SESSION = 'run "1";\r\nü x'  # any text is a valid session id
METRIC_HEADER = [
    "sensor_time_s",
    "wall_time",
    "rep",
    "cadence_spm",
    "gct_ms",
    "step_count",
    "intensity_g",
    "speed_m_s",
    "samples",
    "saturated_samples",
    "gaps",
    "lost_samples",
    "activity",
    "cadence_source",
    "cadence_confidence",
    "lost_fraction",
    "clipped_fraction",
    "trusted",
]
HALF_SECOND = timedelta(seconds=0.5)  # FIT timestamps are whole seconds
CADENCE_TOLERANCE_SPM = 1 / 128  # half of FIT's 1/64 spm (1/128 stride/min) step
STANCE_TOLERANCE_MS = 0.05 + 1e-9  # half of FIT's 0.1 ms step
ELAPSED_TOLERANCE_S = 0.0005 + 1e-9  # half of FIT's 1 ms step


@pytest.fixture(scope="module")
def simulated_session(
    tmp_path_factory: pytest.TempPathFactory, simulated: Callable[..., list[Message]]
) -> Iterator[tuple[httpx.Client, list[Message]]]:
    """A client of the app serving a database holding one simulated session (and an odd id)."""
    messages = simulated("anna", seed=3)
    odd = MetricsMessage(
        athlete_id="cleo",
        session_id=ODD_SESSION,
        sensor_time_s=1.0,
        wall_time=T0,
        cadence_spm=180.0,
        gct_ms=230.0,
        step_count=3,
        intensity_g=None,
        speed_m_s=None,
        quality=Quality(samples=200, saturated_samples=0, gaps=0, lost_samples=0),
    )
    config = settings(tmp_path_factory.mktemp("exports"))
    seed(config.database, [*messages, odd])
    with (
        serving(create_app(config)) as address,
        httpx.Client(base_url=f"http://{address}", headers=auth()) as client,
    ):
        yield client, messages


def parse_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.text)))


def decode_fit(response: httpx.Response) -> dict[str, list[dict[str, Any]]]:
    """Garmin's decoder on the body: a FIT file, CRCs right, no decode error."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.ant.fit"
    data = bytearray(response.content)
    assert Decoder(Stream.from_byte_array(data)).is_fit()
    assert Decoder(Stream.from_byte_array(data)).check_integrity()
    messages, errors = Decoder(Stream.from_byte_array(data)).read()
    assert errors == []
    return cast(dict[str, list[dict[str, Any]]], messages)


def number(text: str) -> float | None:
    return None if text == "" else float(text)


def strides_to_spm(fit_message: dict[str, Any], prefix: str = "") -> float:
    whole = fit_message[f"{prefix}cadence"]
    fraction = fit_message[f"{prefix}fractional_cadence"]
    return float(2 * (whole + fraction))


def test_metrics_csv_is_the_stored_seconds_with_their_rep(
    simulated_session: tuple[httpx.Client, list[Message]],
) -> None:
    client, messages = simulated_session
    metrics = sorted(
        (m for m in messages if isinstance(m, MetricsMessage)), key=lambda m: m.sensor_time_s
    )
    reps = [m for m in messages if isinstance(m, RepMessage)]
    assert len(reps) >= 2
    response = client.get(f"/api/sessions/{SIMULATED}/export.csv")
    rows = parse_csv(response)
    assert response.headers["content-disposition"] == f'attachment; filename="{SIMULATED}.csv"'
    assert list(rows[0]) == METRIC_HEADER
    assert len(rows) == len(metrics)
    for row, m in zip(rows, metrics, strict=True):
        assert float(row["sensor_time_s"]) == m.sensor_time_s
        assert datetime.fromisoformat(row["wall_time"]) == m.wall_time
        assert number(row["cadence_spm"]) == m.cadence_spm
        assert number(row["gct_ms"]) == m.gct_ms
        assert int(row["step_count"]) == m.step_count
        assert number(row["intensity_g"]) == m.intensity_g
        assert number(row["speed_m_s"]) == m.speed_m_s
        assert {k: int(row[k]) for k in m.quality.model_dump()} == m.quality.model_dump()
        assert (row["activity"] or None, row["cadence_source"] or None) == (
            m.activity,
            m.cadence_source,
        )
        assert number(row["cadence_confidence"]) == m.cadence_confidence
        assert float(row["lost_fraction"]) == m.lost_fraction
        assert float(row["clipped_fraction"]) == m.clipped_fraction
        assert row["trusted"] == ("true" if m.trusted else "false")
        holding = [r.rep for r in reps if r.start_s <= m.sensor_time_s <= r.end_s]
        assert row["rep"] == (str(holding[0]) if holding else "")
    # Every rep holds its seconds: the rep column is not blank by accident.
    for r in reps:
        inside = [m for m in metrics if r.start_s <= m.sensor_time_s <= r.end_s]
        assert len(inside) >= 10
        assert sum(row["rep"] == str(r.rep) for row in rows) == len(inside)


def test_metrics_csv_of_the_known_team(served: httpx.Client) -> None:
    rows = parse_csv(served.get(f"/api/sessions/{ANNA_SESSION}/export.csv"))
    assert [float(r["sensor_time_s"]) for r in rows] == list(ANNA_METRICS_S)
    assert [float(r["cadence_spm"]) for r in rows] == [cadence_spm(t) for t in ANNA_METRICS_S]
    assert [float(r["gct_ms"]) for r in rows] == [gct_ms(t) for t in ANNA_METRICS_S]
    assert {r["wall_time"] for r in rows} == {T0.isoformat()}
    # Rep 1 spans 65.4–96.0 s; rep 2 (180.2–212 s) holds none of the stored seconds.
    assert [r["rep"] for r in rows] == ["1" if 65.4 <= t <= 96.0 else "" for t in ANNA_METRICS_S]


def test_reps_csv_is_the_rep_table_with_its_fatigue_flags(served: httpx.Client) -> None:
    response = served.get(f"/api/sessions/{ANNA_SESSION}/export.csv", params={"table": "reps"})
    rows = parse_csv(response)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{ANNA_SESSION}-reps.csv"'
    )
    assert len(rows) == len(ANNA_REPS)
    for row, rep in zip(rows, ANNA_REPS, strict=True):
        assert int(row["rep"]) == rep.rep
        assert float(row["start_s"]) == rep.start_s
        assert float(row["end_s"]) == rep.end_s
        assert float(row["duration_s"]) == rep.duration_s
        assert number(row["mean_cadence_spm"]) == rep.mean_cadence_spm
        assert number(row["mean_gct_ms"]) == rep.mean_gct_ms
        assert number(row["gct_drift_ms"]) == rep.gct_drift_ms
        assert number(row["cadence_cv_pct"]) == rep.cadence_cv_pct
        assert number(row["time_to_stride_cadence_s"]) == rep.time_to_stride_cadence_s
        assert row["fatigue_flag"] == ("true" if rep.fatigue_flag else "false")
        assert row["fatigue_reason"] == (rep.fatigue_reason or "")
        assert float(row["sensor_time_s"]) == rep.end_s
        assert int(row["seq"]) == rep.rep
    # The same rows as the JSON API's, ids included.
    stored = served.get(f"/api/sessions/{ANNA_SESSION}/reps").json()
    assert [row["id"] for row in rows] == [r["id"] for r in stored]
    assert [row["fatigue_flag"] for row in rows] == ["false", "true"]


def test_cues_csv_is_every_cue(served: httpx.Client) -> None:
    rows = parse_csv(
        served.get(f"/api/sessions/{ANNA_SESSION}/export.csv", params={"table": "cues"})
    )
    assert [
        (int(r["seq"]), float(r["sensor_time_s"]), r["kind"], r["text"], int(r["rep"]))
        for r in rows
    ] == [(i + 1, c.t_s, c.kind.value, c.text, c.rep) for i, c in enumerate(ANNA_CUES)]
    assert {(r["reps"], r["at_s"], r["reason"]) for r in rows} == {("6", "", "")}
    stored = served.get(f"/api/sessions/{ANNA_SESSION}/cues").json()
    assert [r["id"] for r in rows] == [c["id"] for c in stored]


def test_fit_export_of_a_simulated_session(
    simulated_session: tuple[httpx.Client, list[Message]],
) -> None:
    client, messages = simulated_session
    metrics = sorted(
        (m for m in messages if isinstance(m, MetricsMessage)), key=lambda m: m.sensor_time_s
    )
    reps = [m for m in messages if isinstance(m, RepMessage)]
    response = client.get(f"/api/sessions/{SIMULATED}/export.fit")
    fit = decode_fit(response)
    assert response.headers["content-disposition"] == f'attachment; filename="{SIMULATED}.fit"'

    # Sensor time to wall time: through the earliest stored row.
    first = metrics[0]

    def wall(t_s: float) -> datetime:
        return first.wall_time + timedelta(seconds=t_s - first.sensor_time_s)

    laps = fit["lap_mesgs"]
    assert len(laps) == len(reps) == 2
    for lap, rep in zip(laps, reps, strict=True):
        assert abs(lap["start_time"] - wall(rep.start_s)) <= HALF_SECOND
        assert abs(lap["timestamp"] - wall(rep.end_s)) <= HALF_SECOND
        assert abs(lap["total_elapsed_time"] - rep.duration_s) <= ELAPSED_TOLERANCE_S
        assert abs(lap["total_timer_time"] - rep.duration_s) <= ELAPSED_TOLERANCE_S
        assert rep.mean_cadence_spm is not None and rep.mean_gct_ms is not None
        spm = strides_to_spm(lap, "avg_")
        assert abs(spm - rep.mean_cadence_spm) <= CADENCE_TOLERANCE_SPM
        assert abs(lap["avg_stance_time"] - rep.mean_gct_ms) <= STANCE_TOLERANCE_MS
        assert lap["intensity"] == "active"

    records = fit["record_mesgs"]
    assert len(records) == len(metrics)
    for record, m in zip(records, metrics, strict=True):
        assert abs(record["timestamp"] - wall(m.sensor_time_s)) <= HALF_SECOND
        if m.cadence_spm is None or not m.trusted:
            assert "cadence" not in record
        else:
            assert abs(strides_to_spm(record) - m.cadence_spm) <= CADENCE_TOLERANCE_SPM
        if not m.trusted or m.gct_ms is None:
            assert "stance_time" not in record
        else:
            assert abs(record["stance_time"] - m.gct_ms) <= STANCE_TOLERANCE_MS
    assert sum("cadence" in r for r in records) == sum(m.trusted for m in metrics)
    assert sum(m.trusted for m in metrics) >= len(metrics) // 2

    (session,) = fit["session_mesgs"]
    assert session["num_laps"] == 2
    span_s = metrics[-1].sensor_time_s - metrics[0].sensor_time_s
    assert abs(session["total_elapsed_time"] - span_s) <= ELAPSED_TOLERANCE_S
    assert session["sport"] == "running"
    assert len(fit["activity_mesgs"]) == 1
    assert fit["file_id_mesgs"][0]["type"] == "activity"


@pytest.fixture
def poor_signal(tmp_path: Path) -> Iterator[httpx.Client]:
    """A client of the app serving a database holding Cleo's session, whose signal fails."""
    config = settings(tmp_path)
    seed(config.database, cleo_messages())
    with (
        serving(create_app(config)) as address,
        httpx.Client(base_url=f"http://{address}", headers=auth()) as client,
    ):
        yield client


def test_untrusted_seconds_keep_their_cadence_in_the_csv_and_say_so(
    poor_signal: httpx.Client,
) -> None:
    rows = parse_csv(poor_signal.get(f"/api/sessions/{CLEO_SESSION}/export.csv"))
    assert [float(r["sensor_time_s"]) for r in rows] == list(CLEO_METRICS_S)
    untrusted = CLEO_LOST_S | CLEO_PERIODIC_S
    assert [r["trusted"] for r in rows] == [
        "false" if t in untrusted else "true" for t in CLEO_METRICS_S
    ]
    assert all(r["cadence_spm"] != "" for r in rows)  # the value stays, flagged
    lost = [r for r in rows if float(r["sensor_time_s"]) in CLEO_LOST_S]
    assert {(r["lost_fraction"], r["activity"], r["cadence_source"]) for r in lost} == {
        ("0.5", "running", "contacts")
    }
    periodic = [r for r in rows if float(r["sensor_time_s"]) in CLEO_PERIODIC_S]
    assert {
        (r["gct_ms"], r["activity"], r["cadence_source"], r["cadence_confidence"]) for r in periodic
    } == {("", "walking", "periodicity", "0.3")}
    assert rows[0]["cadence_confidence"] == "0.9" and rows[0]["clipped_fraction"] == "0.0"


def test_the_reps_csv_says_which_rep_has_a_hole(poor_signal: httpx.Client) -> None:
    response = poor_signal.get(f"/api/sessions/{CLEO_SESSION}/export.csv", params={"table": "reps"})
    rows = parse_csv(response)
    assert [(r["rep"], r["missing_s"], r["complete"]) for r in rows] == [
        ("1", "0.0", "true"),
        ("2", "20.0", "false"),
    ]
    assert [number(r["mean_cadence_spm"]) for r in rows] == [
        rep.mean_cadence_spm for rep in CLEO_REPS
    ]


def test_the_fit_file_writes_no_untrusted_cadence_and_no_missing_stance(
    poor_signal: httpx.Client,
) -> None:
    fit = decode_fit(poor_signal.get(f"/api/sessions/{CLEO_SESSION}/export.fit"))
    records = fit["record_mesgs"]
    assert len(records) == len(CLEO_METRICS_S)
    untrusted = CLEO_LOST_S | CLEO_PERIODIC_S
    assert ["cadence" in r for r in records] == [t not in untrusted for t in CLEO_METRICS_S]
    assert ["stance_time" in r for r in records] == [t not in untrusted for t in CLEO_METRICS_S]
    for record, t_s in zip(records, CLEO_METRICS_S, strict=True):
        if t_s not in untrusted:
            assert abs(strides_to_spm(record) - cadence_spm(t_s)) <= CADENCE_TOLERANCE_SPM
    laps = fit["lap_mesgs"]
    assert strides_to_spm(laps[0], "avg_") == 176.0
    assert not {"avg_cadence", "avg_running_cadence", "avg_stance_time"} & laps[1].keys()


def test_fit_export_of_the_known_team(served: httpx.Client) -> None:
    fit = decode_fit(served.get(f"/api/sessions/{ANNA_SESSION}/export.fit"))
    # Every message was stamped T0: the earliest row (1 s) sets sensor time 0 at T0 − 1 s.
    laps = fit["lap_mesgs"]
    assert [lap["start_time"] for lap in laps] == [
        T0 + timedelta(seconds=64),
        T0 + timedelta(seconds=179),
    ]
    assert [lap["total_elapsed_time"] for lap in laps] == [rep.duration_s for rep in ANNA_REPS]
    assert [strides_to_spm(lap, "avg_") for lap in laps] == [190.0, 194.0]
    assert [lap["avg_stance_time"] for lap in laps] == [205.0, 215.0]
    records = fit["record_mesgs"]
    assert [r["timestamp"] for r in records] == [
        T0 + timedelta(seconds=t - 1) for t in ANNA_METRICS_S
    ]
    for record, t_s in zip(records, ANNA_METRICS_S, strict=True):
        assert abs(strides_to_spm(record) - cadence_spm(t_s)) <= CADENCE_TOLERANCE_SPM
        assert abs(record["stance_time"] - gct_ms(t_s)) <= STANCE_TOLERANCE_MS


def test_a_session_with_nothing_to_export(served: httpx.Client) -> None:
    # Ben's session holds only its state: no metrics, no rep.
    response = served.get(f"/api/sessions/{BEN_SESSION}/export.fit")
    assert response.status_code == 409
    assert "no metrics and no finished rep" in response.json()["detail"]
    rows = served.get(f"/api/sessions/{BEN_SESSION}/export.csv")
    assert rows.text == ",".join(METRIC_HEADER) + "\r\n"


def test_unknown_sessions_missing_tokens_and_bad_tables(served: httpx.Client) -> None:
    base = str(served.base_url)
    for export in ("export.csv", "export.fit"):
        unknown = served.get(f"/api/sessions/nobody/{export}")
        assert unknown.status_code == 404
        assert unknown.json()["detail"] == "no session 'nobody'"
        path = f"{base}/api/sessions/{ANNA_SESSION}/{export}"
        assert httpx.get(path).status_code == 401
        assert httpx.get(path, headers=auth(TOKEN + "x")).status_code == 401
    bad = served.get(f"/api/sessions/{ANNA_SESSION}/export.csv", params={"table": "steps"})
    assert bad.status_code == 422
    assert "metrics" in bad.text


def test_the_file_name_is_made_safe(
    simulated_session: tuple[httpx.Client, list[Message]],
) -> None:
    client, _ = simulated_session
    path = f"/api/sessions/{quote(ODD_SESSION, safe='')}"
    rows = parse_csv(client.get(f"{path}/export.csv"))
    assert [(r["sensor_time_s"], r["cadence_spm"]) for r in rows] == [("1.0", "180.0")]
    for export, name in (("export.csv", "run_1_x.csv"), ("export.fit", "run_1_x.fit")):
        response = client.get(f"{path}/{export}")
        assert response.status_code == 200
        assert response.headers["content-disposition"] == f'attachment; filename="{name}"'


def test_spreadsheet_formulas_in_free_text_are_neutralised() -> None:
    rows: list[dict[str, Any]] = [
        {"text": '=HYPERLINK("http://x")', "at_s": -4.5, "rep": None},
        {"text": "+1", "at_s": 0.1, "rep": 2},
        {"text": "Go! Rep 1 of 6", "at_s": None, "rep": 1},
    ]
    parsed = list(csv.reader(io.StringIO(rows_csv(("text", "at_s", "rep"), rows))))
    assert parsed == [
        ["text", "at_s", "rep"],
        ['\'=HYPERLINK("http://x")', "-4.5", ""],
        ["'+1", "0.1", "2"],
        ["Go! Rep 1 of 6", "", "1"],
    ]


def test_file_names_of_empty_or_dotted_ids() -> None:
    assert attachment("../..", "", "csv") == 'attachment; filename="session.csv"'
    assert attachment("a/b\\c", "-reps", "csv") == 'attachment; filename="a_b_c-reps.csv"'
