"""The store: every message type in and back, idempotence, restarts, downsampling, concurrency.

Each test runs on a SQLite file and on a fresh PostgreSQL database (``store_url``), with the
messages of a real closed-loop session (the simulated runner through the stride engine).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from bus.messages import (
    CueMessage,
    Message,
    MetricsMessage,
    Quality,
    RepMessage,
    SessionMessage,
    StatusMessage,
    StepMessage,
)
from server.store import MetricRow, Store, StoreError
from tests.server.conftest import ADMIN_DSN
from tests.server.conftest_app import CLEO_LOST_S, CLEO_PERIODIC_S, CLEO_SESSION, cleo_messages

Simulate = Callable[..., list[Message]]
T0 = datetime(2025, 5, 1, 7, 30, tzinfo=UTC)


def of(messages: list[Message], cls: type[Any]) -> list[Any]:
    return [m for m in messages if isinstance(m, cls)]


def payload(message: Message, *drop: str) -> dict[str, Any]:
    """The message's own fields, as a row of that session shows them."""
    exclude = {"schema_version", "type", "athlete_id", "session_id", *drop}
    return message.model_dump(exclude=exclude)


def rows(items: list[Any], *drop: str) -> list[dict[str, Any]]:
    return [item.model_dump(exclude=set(drop)) for item in items]


def durable(messages: list[Message]) -> list[Message]:
    """The messages a re-delivery may repeat in any order: all but the retained ones."""
    return [m for m in messages if not isinstance(m, SessionMessage | StatusMessage)]


def snapshot(store: Store) -> dict[str, Any]:
    """Everything the store answers, for comparing two states of it."""
    out: dict[str, Any] = {"athletes": rows(store.athletes()), "sessions": rows(store.sessions())}
    for session in store.sessions():
        out[session.id] = {
            "cues": rows(store.cues(session.id)),
            "reps": rows(store.reps(session.id)),
            "steps": rows(store.steps(session.id)),
            "metrics": rows(store.metrics(session.id)),
            "metrics_10s": rows(store.metrics(session.id, every_s=10.0)),
        }
    return out


def metrics_message(t_s: float, cadence: float | None, gct: float | None, steps: int) -> Message:
    return MetricsMessage(
        athlete_id="anna",
        session_id="s1",
        sensor_time_s=t_s,
        wall_time=T0 + timedelta(seconds=t_s),
        cadence_spm=cadence,
        gct_ms=gct,
        step_count=steps,
        intensity_g=None if cadence is None else cadence / 100.0,
        speed_m_s=None,
        quality=Quality(samples=200 * steps, saturated_samples=0, gaps=0, lost_samples=0),
    )


def test_every_message_type_is_stored_and_read_back(store: Store, simulated: Simulate) -> None:
    messages = simulated("anna", 3)
    assert all(store.ingest(m) for m in messages)

    (session,) = store.sessions()
    cues, reps = of(messages, CueMessage), of(messages, RepMessage)
    metrics, steps = of(messages, MetricsMessage), of(messages, StepMessage)
    assert len(cues) > 5 and len(reps) == 2 and len(steps) > 100  # the session did its job
    assert rows(store.cues(session.id)) == [payload(m) for m in cues]
    assert rows(store.reps(session.id)) == [payload(m) for m in reps]
    assert rows(store.steps(session.id)) == [payload(m, "wall_time") for m in steps]
    stored = store.metrics(session.id)
    assert rows(stored, "seconds") == [payload(m) for m in metrics]
    assert {row.seconds for row in stored} == {1}

    last_state = of(messages, SessionMessage)[-1]
    assert last_state.state == "done"
    assert session.model_dump(exclude={"counts"}) == {
        "id": "anna-3",
        "athlete_id": "anna",
        "started_at": min(m.wall_time for m in messages),
        "last_at": max(m.wall_time for m in messages),
        **payload(last_state, "sensor_time_s", "wall_time"),
    }
    assert session.counts.model_dump() == {
        "cues": len(cues),
        "reps": 2,
        "metrics": len(metrics),
        "steps": len(steps),
    }
    assert store.session(session.id) == session
    assert store.session("nope") is None

    final_status = of(messages, StatusMessage)[-1]
    (athlete,) = store.athletes()
    assert athlete.model_dump() == {
        "id": "anna",
        "first_seen_at": session.started_at,
        "last_seen_at": session.last_at,
        "current_session_id": "anna-3",
        **payload(final_status, "sensor_time_s", "wall_time", "quality"),
    }
    assert athlete.online is False


def test_redelivered_messages_are_stored_once(store: Store, simulated: Simulate) -> None:
    messages = simulated("anna", 3)
    assert all(store.ingest(m) for m in messages)
    before = snapshot(store)

    # A broker or publisher restart re-delivers cues and reps in any order; of the retained
    # session and status messages, the broker keeps and re-sends the latest only.
    again = durable(messages)
    random.Random(1).shuffle(again)
    again += [of(messages, SessionMessage)[-1], of(messages, StatusMessage)[-1]]
    assert store.ingest_many(again) == [False] * len(again)
    assert snapshot(store) == before


def test_a_new_id_on_a_stored_seq_is_logged_and_ignored(
    store: Store, simulated: Simulate, caplog: pytest.LogCaptureFixture
) -> None:
    messages = simulated("anna", 3)
    store.ingest_many(messages)
    first_cue = of(messages, CueMessage)[0]
    impostor = first_cue.model_copy(update={"id": "another-id", "text": "Sprint!"})

    with caplog.at_level(logging.WARNING, logger="server.store.store"):
        assert store.ingest(impostor) is False
    assert "seq 1 is already stored under another id" in caplog.text
    assert store.cues("anna-3")[0].model_dump() == payload(first_cue)


def test_a_session_id_of_another_athlete_is_refused(
    store: Store, simulated: Simulate, caplog: pytest.LogCaptureFixture
) -> None:
    anna = simulated("anna", 3)
    store.ingest_many(anna)
    stolen = of(anna, CueMessage)[0].model_copy(update={"athlete_id": "ben", "id": "x", "seq": 99})

    with caplog.at_level(logging.WARNING, logger="server.store.store"):
        assert store.ingest(stolen) is False
    assert "belongs to another athlete" in caplog.text
    assert [c.seq for c in store.cues("anna-3")] == [m.seq for m in of(anna, CueMessage)]
    assert [s.athlete_id for s in store.sessions()] == ["anna"]


def test_session_state_newest_sensor_time_wins(store: Store, simulated: Simulate) -> None:
    states = of(simulated("anna", 3), SessionMessage)
    assert len(states) >= 5
    for state in states:
        assert store.ingest(state) is True
    # The retained message re-delivered, then an old state arriving late: neither changes it.
    assert store.ingest(states[-1]) is False
    assert store.ingest(states[1]) is False
    session = store.session("anna-3")
    assert session is not None
    assert (session.state, session.rep) == (states[-1].state, states[-1].rep)


def test_the_last_will_overrides_a_newer_online_status(store: Store) -> None:
    def status(online: bool, wall_time: datetime) -> StatusMessage:
        return StatusMessage(
            athlete_id="anna",
            session_id="s1",
            sensor_time_s=0.0,
            wall_time=wall_time,
            online=online,
            device="footpod",
            placement="foot",
            sample_rate_hz=None,
            quality=None,
            metrics_dropped=0,
            outbox_pending=0,
        )

    # The will is built when the publisher connects, just before it says "online".
    will, online = status(False, T0), status(True, T0 + timedelta(seconds=1))
    assert store.ingest(online) is True
    assert store.athletes()[0].online is True
    assert store.ingest(will) is True
    assert store.athletes()[0].online is False
    assert store.ingest(will) is False  # the retained will again: nothing new


def test_reopening_gives_everything_back(store_url: str, simulated: Simulate) -> None:
    with Store.open(store_url) as store:
        for message in simulated("anna", 3):  # one commit per message, as live
            store.ingest(message)
        before = snapshot(store)
    with Store.open(store_url) as store:
        assert snapshot(store) == before
        again = durable(simulated("anna", 3))
        assert store.ingest_many(again) == [False] * len(again)


def test_two_athletes_are_kept_apart(store: Store, simulated: Simulate) -> None:
    anna, ben = simulated("anna", 3), simulated("ben", 4)
    mixed = [m for pair in zip(anna, ben, strict=False) for m in pair]
    mixed += anna[len(ben) :] + ben[len(anna) :]
    assert all(store.ingest_many(mixed))

    assert [a.id for a in store.athletes()] == ["anna", "ben"]
    assert [a.current_session_id for a in store.athletes()] == ["anna-3", "ben-4"]
    for athlete_id, messages in (("anna", anna), ("ben", ben)):
        (session,) = store.sessions(athlete_id)
        assert session.athlete_id == athlete_id
        assert rows(store.cues(session.id)) == [payload(m) for m in of(messages, CueMessage)]
        assert rows(store.reps(session.id)) == [payload(m) for m in of(messages, RepMessage)]
        assert [m.step_count for m in store.metrics(session.id)] == [
            m.step_count for m in of(messages, MetricsMessage)
        ]
    assert len(store.sessions()) == 2


def test_a_new_session_becomes_the_athletes_current_one(store: Store, simulated: Simulate) -> None:
    first = simulated("anna", 3)
    later = [
        m.model_copy(
            update={"session_id": "anna-next", "wall_time": m.wall_time + timedelta(hours=1)}
        )
        for m in first
    ]
    store.ingest_many(later)
    store.ingest_many(first)  # the older session's outbox arrives last
    assert store.athletes()[0].current_session_id == "anna-next"
    assert [s.id for s in store.sessions("anna")] == ["anna-next", "anna-3"]


def test_downsampling_matches_a_hand_computation(store: Store) -> None:
    # Seconds 0..6: two buckets of 5 s (0-4 and 5-6). One cadence and one contact time missing.
    series = [
        (0.0, 180.0, 220.0, 0),
        (1.0, 182.0, None, 3),
        (2.0, None, 210.0, 6),
        (3.0, 190.0, 200.0, 9),
        (4.0, 188.0, 200.0, 12),
        (5.0, 170.0, 240.0, 15),
        (6.0, 172.0, 230.0, 18),
    ]
    # Stored out of order: the series comes back in sensor time.
    assert all(store.ingest_many([metrics_message(*row) for row in reversed(series)]))

    buckets = store.metrics("s1", every_s=5.0)
    assert [b.sensor_time_s for b in buckets] == [0.0, 5.0]
    assert [b.seconds for b in buckets] == [5, 2]
    assert buckets[0].cadence_spm == pytest.approx((180 + 182 + 190 + 188) / 4)  # 185.0
    assert buckets[0].gct_ms == pytest.approx((220 + 210 + 200 + 200) / 4)  # 207.5
    assert buckets[0].intensity_g == pytest.approx((1.80 + 1.82 + 1.90 + 1.88) / 4)
    assert buckets[1].cadence_spm == pytest.approx(171.0)
    assert buckets[1].gct_ms == pytest.approx(235.0)
    assert [b.step_count for b in buckets] == [12, 18]  # the last of each bucket
    assert [b.quality.samples if b.quality else None for b in buckets] == [2400, 3600]
    assert [b.wall_time for b in buckets] == [T0 + timedelta(seconds=4), T0 + timedelta(seconds=6)]
    assert all(b.speed_m_s is None for b in buckets)  # no second had a speed

    # A bucket width that is not a whole number of seconds, and one wider than the session.
    halves = store.metrics("s1", every_s=2.5)
    assert [(b.sensor_time_s, b.seconds) for b in halves] == [(0.0, 3), (2.5, 2), (5.0, 2)]
    assert halves[0].cadence_spm == pytest.approx(181.0)
    (whole,) = store.metrics("s1", every_s=3600.0)
    assert whole.seconds == 7 and whole.step_count == 18
    assert whole.gct_ms == pytest.approx((220 + 210 + 200 + 200 + 240 + 230) / 6)

    raw = store.metrics("s1")
    assert [(r.sensor_time_s, r.cadence_spm, r.gct_ms) for r in raw] == [s[:3] for s in series]
    with pytest.raises(ValueError, match="every_s"):
        store.metrics("s1", every_s=0.0)


def test_downsampling_a_real_session(store: Store, simulated: Simulate) -> None:
    messages = simulated("anna", 3)
    store.ingest_many(messages)
    per_second = store.metrics("anna-3")
    buckets = store.metrics("anna-3", every_s=10.0)
    assert sum(b.seconds for b in buckets) == len(per_second)
    for bucket in buckets:
        inside = [
            r
            for r in per_second
            if bucket.sensor_time_s <= r.sensor_time_s < bucket.sensor_time_s + 10
        ]
        cadences = [r.cadence_spm for r in inside if r.cadence_spm is not None]
        expected = sum(cadences) / len(cadences) if cadences else None
        assert bucket.cadence_spm == pytest.approx(expected)
        assert bucket.step_count == inside[-1].step_count


def test_wall_times_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    message = metrics_message(1.0, 180.0, 200.0, 3).model_copy(
        update={"wall_time": datetime(2025, 5, 1, 9, 30, 0, 250000, tzinfo=paris)}
    )
    store.ingest(message)
    (row,) = store.metrics("s1")
    assert row.wall_time == datetime(2025, 5, 1, 7, 30, 0, 250000, tzinfo=UTC)
    assert row.wall_time.tzinfo == UTC


@pytest.mark.parametrize("how", ["two stores", "threads"])
def test_concurrent_writers_store_everything_once(
    store_url: str, simulated: Simulate, how: str
) -> None:
    anna, ben = simulated("anna", 3), simulated("ben", 4)
    stores = [Store.open(store_url)]
    stores.append(Store.open(store_url) if how == "two stores" else stores[0])
    # Each writer stores one athlete and re-delivers the other's: duplicates race too.
    work = [anna + durable(ben)[::2], ben + durable(anna)[::3]]
    results: list[list[bool]] = [[], []]

    def write(i: int) -> None:
        for message in work[i]:
            results[i].append(stores[i].ingest(message))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert sum(results[0]) + sum(results[1]) == len(anna) + len(ben)  # each new exactly once
        for messages in (anna, ben):
            session_id = messages[0].session_id
            session = stores[1].session(session_id)
            assert session is not None
            assert session.counts.model_dump() == {
                "cues": len(of(messages, CueMessage)),
                "reps": len(of(messages, RepMessage)),
                "metrics": len(of(messages, MetricsMessage)),
                "steps": len(of(messages, StepMessage)),
            }
            assert rows(stores[0].cues(session_id)) == [
                payload(m) for m in of(messages, CueMessage)
            ]
    finally:
        for store in set(stores):
            store.close()


def test_a_url_that_is_not_a_database_is_refused(tmp_path: Any) -> None:
    with pytest.raises(StoreError, match="sqlite:///"):
        Store.open("mysql://db.example.org/companion")
    with pytest.raises(StoreError, match="in-memory"):
        Store.open("sqlite://")


def test_an_unreachable_postgres_is_reported_without_its_password() -> None:
    with pytest.raises(StoreError, match="cannot open the database") as error:
        Store.open("postgresql://coach:s3cret@127.0.0.1:1/companion?connect_timeout=2")
    assert "s3cret" not in str(error.value)
    assert (
        error.value.url == "postgresql+psycopg://coach:***@127.0.0.1:1/companion?connect_timeout=2"
    )


def test_metric_rows_are_json_friendly(store: Store) -> None:
    store.ingest(metrics_message(1.0, 180.0, None, 3))
    (row,) = store.metrics("s1")
    assert MetricRow.model_validate_json(row.model_dump_json()) == row


@pytest.mark.postgres
def test_a_database_gone_away_raises_a_store_error(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    name = sa.make_url(postgres_url).database
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    with pytest.raises(StoreError, match="the database failed"):
        store.ingest(metrics_message(1.0, 180.0, 200.0, 3))
    with pytest.raises(StoreError, match="the database failed"):
        store.sessions()
    store.close()


def test_signal_trust_round_trips(store: Store) -> None:
    messages = cleo_messages()
    assert all(store.ingest_many(messages))
    sent = {m.sensor_time_s: m for m in messages if isinstance(m, MetricsMessage)}
    stored = store.metrics(CLEO_SESSION)
    assert len(stored) == len(sent)
    for row in stored:
        m = sent[row.sensor_time_s]
        assert (row.activity, row.cadence_source, row.cadence_confidence) == (
            m.activity,
            m.cadence_source,
            m.cadence_confidence,
        )
        assert (row.lost_fraction, row.clipped_fraction, row.trusted) == (
            m.lost_fraction,
            m.clipped_fraction,
            m.trusted,
        )
        assert row.cadence_spm == m.cadence_spm  # an untrusted cadence is kept, flagged
    untrusted = {row.sensor_time_s for row in stored if not row.trusted}
    assert untrusted == CLEO_LOST_S | CLEO_PERIODIC_S
    assert [(r.rep, r.missing_s, r.complete) for r in store.reps(CLEO_SESSION)] == [
        (1, 0.0, True),
        (2, 20.0, False),
    ]
    # A bucket is trusted only when all its seconds are; it keeps the mean lost fraction.
    buckets = store.metrics(CLEO_SESSION, every_s=10.0)
    assert [b.trusted for b in buckets] == [True, True, False, False, False, False, False]
    assert [b.lost_fraction for b in buckets][1:5] == [0.0, 0.45, 0.5, 0.05]
    assert buckets[-1].activity == "walking"
