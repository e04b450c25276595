"""Migrations: an upgrade keeps old data, and the newest revision is exactly ``schema.py``.

Run on a SQLite file and on a fresh PostgreSQL database (``store_url``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bus.messages import MetricsMessage, Quality
from server.store import Store, current_revision, migrate
from server.store.schema import metadata
from server.store.store import MIGRATIONS, alembic_config, create_engine

WALL = datetime(2025, 5, 1, 7, 30, 1, 500000, tzinfo=UTC)

# Rows as revision 0001 stored them, written with that revision's columns only.
OLD_ROWS = {
    "athletes": [
        {"id": "anna", "first_seen_at": WALL, "last_seen_at": WALL, "online": True},
    ],
    "sessions": [
        {
            "id": "s1",
            "athlete_id": "anna",
            "started_at": WALL,
            "last_at": WALL,
            "template": "nrr",
            "state": "rep",
            "rep": 1,
            "reps": 2,
            "state_s": 61.0,
        }
    ],
    "cues": [
        {
            "session_id": "s1",
            "id": "c1",
            "seq": 1,
            "sensor_time_s": 60.5,
            "wall_time": WALL,
            "kind": "go",
            "text": "Go! Rep 1 of 2",
            "rep": 1,
            "reps": 2,
        }
    ],
    "reps": [
        {
            "session_id": "s1",
            "id": "r1",
            "seq": 1,
            "sensor_time_s": 97.39,
            "wall_time": WALL,
            "rep": 1,
            "start_s": 66.26,
            "end_s": 97.39,
            "duration_s": 31.13,
            "mean_cadence_spm": 191.7,
            "fatigue_flag": False,
        }
    ],
    "metrics": [
        {
            "session_id": "s1",
            "sensor_time_s": float(t),
            "wall_time": WALL,
            "cadence_spm": 180.0 + t,
            "gct_ms": 220.0 - t,
            "step_count": 3 * t,
        }
        for t in range(1, 4)
    ],
    "steps": [
        {
            "session_id": "s1",
            "ic_s": 1.2,
            "to_s": 1.42,
            "sensor_time_s": 1.5,
            "gct_ms": 220.0,
            "foot": "left",
            "confidence": 0.9,
        }
    ],
}


def write_old_rows(engine: sa.Engine) -> None:
    old = sa.MetaData()
    old.reflect(engine)
    with engine.begin() as connection:
        for table, rows in OLD_ROWS.items():
            # Reflected SQLite tables know no time zones: hand them naive UTC, as the store does.
            if engine.dialect.name == "sqlite":
                rows = [{k: _naive(v) for k, v in row.items()} for row in rows]
            connection.execute(sa.insert(old.tables[table]), rows)


def _naive(value: object) -> object:
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


def test_there_are_three_revisions_in_a_line() -> None:
    script = ScriptDirectory(str(MIGRATIONS))
    assert [r.revision for r in script.walk_revisions()] == ["0003", "0002", "0001"]
    assert script.get_heads() == ["0003"]


def test_an_upgrade_keeps_the_data_of_revision_1(store_url: str) -> None:
    engine = create_engine(store_url)
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "samples" not in {c["name"] for c in sa.inspect(engine).get_columns("metrics")}
    write_old_rows(engine)
    engine.dispose()

    with Store.open(store_url) as store:  # upgrades to the newest revision
        assert current_revision(store.engine) == "0003"
        (athlete,) = store.athletes()
        assert (athlete.id, athlete.online, athlete.first_seen_at) == ("anna", True, WALL)
        assert athlete.current_session_id == "s1"
        session = store.session("s1")
        assert session is not None
        assert (session.template, session.state, session.rep, session.reps) == ("nrr", "rep", 1, 2)
        assert session.counts.model_dump() == {"cues": 1, "reps": 1, "metrics": 3, "steps": 1}
        (cue,) = store.cues("s1")
        assert (cue.id, cue.seq, cue.kind, cue.text, cue.wall_time) == (
            "c1",
            1,
            "go",
            "Go! Rep 1 of 2",
            WALL,
        )
        (rep,) = store.reps("s1")
        assert (rep.id, rep.start_s, rep.end_s, rep.mean_cadence_spm, rep.mean_gct_ms) == (
            "r1",
            66.26,
            97.39,
            191.7,
            None,
        )
        (step,) = store.steps("s1")
        assert (step.ic_s, step.to_s, step.foot) == (1.2, 1.42, "left")
        old_metrics = store.metrics("s1")
        assert [(m.sensor_time_s, m.cadence_spm, m.gct_ms, m.step_count) for m in old_metrics] == [
            (1.0, 181.0, 219.0, 3),
            (2.0, 182.0, 218.0, 6),
            (3.0, 183.0, 217.0, 9),
        ]
        assert all(m.quality is None for m in old_metrics)  # not known before 0002
        # Before 0003 no publisher measured trust: what the contract reads into their messages.
        assert [(m.trusted, m.lost_fraction, m.clipped_fraction) for m in old_metrics] == [
            (True, 0.0, 0.0)
        ] * 3
        assert {(m.activity, m.cadence_source, m.cadence_confidence) for m in old_metrics} == {
            (None, None, None)
        }
        assert (rep.missing_s, rep.complete) == (0.0, True)

        # New rows carry what revisions 0002 and 0003 added, beside the old ones.
        quality = Quality(samples=800, saturated_samples=2, gaps=1, lost_samples=5)
        new = MetricsMessage(
            athlete_id="anna",
            session_id="s1",
            sensor_time_s=4.0,
            wall_time=WALL,
            cadence_spm=184.0,
            gct_ms=216.0,
            step_count=12,
            intensity_g=None,
            speed_m_s=None,
            quality=quality,
            activity="running",
            cadence_source="periodicity",
            cadence_confidence=0.3,
            lost_fraction=0.25,
            clipped_fraction=0.125,
            trusted=False,
        )
        assert store.ingest(new) is True
        newest = store.metrics("s1")[-1]
        assert newest.quality == quality
        assert (newest.activity, newest.cadence_source, newest.trusted) == (
            "running",
            "periodicity",
            False,
        )
        assert (newest.cadence_confidence, newest.lost_fraction) == (0.3, 0.25)
        (bucket,) = store.metrics("s1", every_s=10.0)
        assert bucket.quality == quality
        assert bucket.trusted is False  # one untrusted second in it


def test_an_upgrade_from_revision_2_reads_old_seconds_as_older_publishers_meant(
    store_url: str,
) -> None:
    """A second stored without a cadence was never trusted; one with a cadence was."""
    engine = create_engine(store_url)
    migrate(engine, "0002")
    write_old_rows(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE metrics SET cadence_spm = NULL WHERE sensor_time_s = 2.0")
        )
    engine.dispose()
    with Store.open(store_url) as store:
        assert [(m.sensor_time_s, m.trusted) for m in store.metrics("s1")] == [
            (1.0, True),
            (2.0, False),
            (3.0, True),
        ]


def test_the_newest_revision_is_exactly_the_schema(store_url: str) -> None:
    engine = create_engine(store_url)
    migrate(engine, "0001")
    with engine.connect() as connection:
        missing = compare_metadata(MigrationContext.configure(connection), metadata)
    # The comparison sees what 0002 and 0003 add (so an empty one below means something).
    assert sorted(d[3].name for d in missing) == [
        "activity",
        "cadence_confidence",
        "cadence_source",
        "clipped_fraction",
        "complete",
        "gaps",
        "lost_fraction",
        "lost_samples",
        "missing_s",
        "samples",
        "saturated_samples",
        "trusted",
    ]
    migrate(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    engine.dispose()


def test_a_downgrade_and_upgrade_round_trip(store_url: str) -> None:
    engine = create_engine(store_url)
    migrate(engine, "0001")
    write_old_rows(engine)
    migrate(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0002")
    assert current_revision(engine) == "0002"
    assert "trusted" not in {c["name"] for c in sa.inspect(engine).get_columns("metrics")}
    assert "complete" not in {c["name"] for c in sa.inspect(engine).get_columns("reps")}
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0001")
    assert current_revision(engine) == "0001"
    assert "samples" not in {c["name"] for c in sa.inspect(engine).get_columns("metrics")}
    migrate(engine)
    with engine.connect() as connection:
        step_counts = connection.scalars(sa.text("SELECT step_count FROM metrics ORDER BY 1"))
        assert list(step_counts) == [3, 6, 9]
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()


def test_servers_starting_together_migrate_once(store_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[Store] = []

    def start() -> None:
        try:
            stores.append(Store.open(store_url))
        except BaseException as exc:  # collected: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(stores) == 3
    assert current_revision(stores[0].engine) == "0003"
    for store in stores:
        store.close()
