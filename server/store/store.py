"""Durable storage of the bus: every validated message in, athletes and sessions out.

``Store.ingest`` is idempotent, so that the at-least-once delivery of MQTT costs nothing: cues
and reps are keyed by their message ``id`` within a session (``INSERT … ON CONFLICT DO
NOTHING``), metrics and steps by their sensor time, and the retained session and status
messages only change a row when they say something new. Each call commits before it returns:
what the server acknowledged survives its restart.

SQLite (one file, WAL, the default) and PostgreSQL (several servers sharing one database) run
the same statements; the schema is brought to the newest migration on :meth:`Store.open`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

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
from server.errors import ServerError
from server.store.schema import (
    AthleteRow,
    CueRow,
    MetricRow,
    RepRow,
    SessionCounts,
    SessionRow,
    StepRow,
    athletes,
    cues,
    metrics,
    reps,
    sessions,
    steps,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_S = 30.0  # how long a SQLite writer waits for another one before giving up
# Any constant: replicas starting together take turns to migrate one PostgreSQL database.
_MIGRATION_LOCK_KEY = 0x5743_0E5E
# A bucket boundary computed as t / every_s may land a hair below an integer (0.3 / 0.1).
_BUCKET_EPS = 1e-9


class StoreError(ServerError):
    """The database cannot be opened or used; ``url`` is shown without its password."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"{problem} (database {url})")
        self.url = url
        self.problem = problem


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for our migrations, run on ``connection`` (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision``, one transaction, one migrator at a time."""
    with engine.connect() as connection:
        connection.execution_options(write=True)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            command.upgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The database's migration revision (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def create_engine(url: str) -> Engine:
    """An engine for a ``sqlite:///file`` or ``postgresql[+psycopg]://`` URL, set up for us."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        problem = "not a database URL: give sqlite:///file.db or postgresql://…"
        raise StoreError("(hidden)", problem) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend == "postgresql" or parsed.drivername == "postgres":
        # psycopg 3 is the driver we ship; the bare scheme would ask for psycopg2.
        return sa.create_engine(parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True)
    if backend != "sqlite":
        raise StoreError(shown, "use sqlite:///path/to/file.db or postgresql://user@host/db")
    database = parsed.database or ":memory:"
    if database == ":memory:" or parsed.query.get("mode") == "memory":
        raise StoreError(shown, "an in-memory SQLite database is lost on restart: name a file")
    try:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(shown, f"cannot create the folder of the database: {exc}") from None
    engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own implicit transactions
    # start late, after reads, and make DDL non-transactional).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    # WAL: readers never block the writer. FULL: a commit is on disk before ingest returns,
    # so what the server acknowledged survives a power cut too, not only a crash.
    _write_ahead_log(cursor)
    for pragma in ("synchronous=FULL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _write_ahead_log(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL. The switch needs the file to itself, and SQLite answers "locked"
    at once rather than through the busy handler: servers opening a new file together retry."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(connection: Connection) -> None:
    # A writer takes the write lock up front: upgrading a read transaction to a write one
    # fails at once with SQLITE_BUSY when another writer got there first (no waiting).
    write = connection.get_execution_options().get("write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


_STATE = ("template", "state", "rep", "reps", "recovery_remaining_s")
_STATUS = ("online", "device", "placement", "sample_rate_hz", "metrics_dropped", "outbox_pending")


class _Writes:
    """The write statements, built once per store: building one costs more than running it."""

    def __init__(self, dialect: str) -> None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        new_athlete = insert(athletes)
        self.touch_athlete = new_athlete.on_conflict_do_update(
            index_elements=[athletes.c.id],
            set_={
                "first_seen_at": _earlier(
                    new_athlete.excluded.first_seen_at, athletes.c.first_seen_at
                ),
                "last_seen_at": _later(new_athlete.excluded.last_seen_at, athletes.c.last_seen_at),
            },
        )
        new_session = insert(sessions)
        self.touch_session = new_session.on_conflict_do_update(
            index_elements=[sessions.c.id],
            set_={
                "started_at": _earlier(new_session.excluded.started_at, sessions.c.started_at),
                "last_at": _later(new_session.excluded.last_at, sessions.c.last_at),
            },
            # No update, so no row counted, when the session belongs to another athlete.
            where=sessions.c.athlete_id == new_session.excluded.athlete_id,
        )
        self.insert_new = {
            t.name: insert(t).on_conflict_do_nothing() for t in (metrics, steps, cues, reps)
        }
        self.known_id = {
            t.name: sa.select(sa.literal(True)).where(
                t.c.session_id == sa.bindparam("b_session_id"), t.c.id == sa.bindparam("b_id")
            )
            for t in (cues, reps)
        }
        # Sensor times order one session's states; a late re-delivery of an older one loses.
        self.session_state = (
            sa.update(sessions)
            .where(
                sessions.c.id == sa.bindparam("b_id"),
                sa.or_(
                    sessions.c.state_s.is_(None), sessions.c.state_s <= sa.bindparam("b_state_s")
                ),
                _changes(sessions, _STATE),
            )
            .values({k: sa.bindparam(f"b_{k}") for k in (*_STATE, "state_s")})
        )
        # Arrival order, not wall time: the last will is built at connect time, before the
        # "online" status it must override when the publisher dies.
        self.status = (
            sa.update(athletes)
            .where(athletes.c.id == sa.bindparam("b_id"), _changes(athletes, _STATUS))
            .values({k: sa.bindparam(f"b_{k}") for k in (*_STATUS, "status_at")})
        )


def _later(new: Any, old: Any) -> Any:
    return sa.case((new > old, new), else_=old)


def _earlier(new: Any, old: Any) -> Any:
    return sa.case((new < old, new), else_=old)


def _changes(table: sa.Table, columns: Sequence[str]) -> sa.ColumnElement[bool]:
    """True where one of ``columns`` differs from its parameter ``b_<column>`` (NULL-safe)."""
    same = (table.c[k].is_not_distinct_from(sa.bindparam(f"b_{k}")) for k in columns)
    return sa.not_(sa.and_(*same))


class Store:
    """Athletes, sessions, cues, reps, steps and per-second metrics in one database.

    Open it with :meth:`open`; every method is synchronous and thread-safe (a connection from
    the pool per call), so that an async server calls it from a thread pool.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        self._writes = _Writes(engine.dialect.name)

    @classmethod
    def open(cls, url: str) -> Self:
        """Connect to ``url`` and migrate its schema to the newest revision."""
        engine = create_engine(url)
        try:
            migrate(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            shown = engine.url.render_as_string(hide_password=True)
            raise StoreError(shown, f"cannot open the database: {exc.orig}") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # Writing

    def ingest(self, message: Message) -> bool:
        """Store ``message``; ``True`` when it was new (to pass on live), ``False`` if known."""
        return self.ingest_many([message])[0]

    def ingest_many(self, messages: Sequence[Message]) -> list[bool]:
        """:meth:`ingest` for several messages in one transaction (one disk flush)."""
        with self._failing_as_store_error(), self.engine.connect() as connection:
            # Without preserve_rowcount an INSERT's rowcount may be -1: it tells new from known.
            connection.execution_options(write=True, preserve_rowcount=True)
            with connection.begin():
                return [self._ingest(connection, m) for m in messages]

    @contextlib.contextmanager
    def _failing_as_store_error(self) -> Iterator[None]:
        """A database that went away (restart, network, full disk) raises :class:`StoreError`."""
        try:
            yield
        except sa.exc.OperationalError as exc:
            raise StoreError(self.url, f"the database failed: {exc.orig}") from exc

    def _ingest(self, connection: Connection, message: Message) -> bool:
        if not self._touch(connection, message):
            return False
        if isinstance(message, MetricsMessage):
            return self._insert_new(connection, metrics, _metrics_values(message))
        if isinstance(message, StepMessage):
            return self._insert_new(connection, steps, _step_values(message))
        if isinstance(message, CueMessage | RepMessage):
            return self._insert_numbered(connection, message)
        if isinstance(message, SessionMessage):
            return self._session_state(connection, message)
        return self._status(connection, message)

    def _touch(self, connection: Connection, message: Message) -> bool:
        """Create or widen the athlete and session rows; ``False`` if the session is not its."""
        at = message.wall_time
        athlete = {"id": message.athlete_id, "first_seen_at": at, "last_seen_at": at}
        connection.execute(self._writes.touch_athlete, athlete)
        session = {
            "id": message.session_id,
            "athlete_id": message.athlete_id,
            "started_at": at,
            "last_at": at,
        }
        if connection.execute(self._writes.touch_session, session).rowcount == 0:
            log.warning(
                "ignored a %s message from %s: session %s belongs to another athlete",
                message.type,
                message.athlete_id,
                message.session_id,
            )
            return False
        return True

    def _insert_new(self, connection: Connection, table: sa.Table, values: dict[str, Any]) -> bool:
        return connection.execute(self._writes.insert_new[table.name], values).rowcount == 1

    def _insert_numbered(self, connection: Connection, message: CueMessage | RepMessage) -> bool:
        table = cues if isinstance(message, CueMessage) else reps
        values = _cue_values(message) if isinstance(message, CueMessage) else _rep_values(message)
        if self._insert_new(connection, table, values):
            return True
        known = {"b_session_id": message.session_id, "b_id": message.id}
        if connection.scalar(self._writes.known_id[table.name], known) is None:
            # Same (session, seq) under a new id: a publisher that lost its outbox and counts
            # again, or a forged message. The first one stored stays.
            log.warning(
                "ignored %s %s of session %s: seq %d is already stored under another id",
                message.type,
                message.id,
                message.session_id,
                message.seq,
            )
        return False

    def _session_state(self, connection: Connection, message: SessionMessage) -> bool:
        values = message.model_dump(include=set(_STATE))
        values |= {"id": message.session_id, "state_s": message.sensor_time_s}
        params = {f"b_{k}": v for k, v in values.items()}
        return connection.execute(self._writes.session_state, params).rowcount == 1

    def _status(self, connection: Connection, message: StatusMessage) -> bool:
        values = message.model_dump(include=set(_STATUS))
        values |= {"id": message.athlete_id, "status_at": message.wall_time}
        params = {f"b_{k}": v for k, v in values.items()}
        return connection.execute(self._writes.status, params).rowcount == 1

    # Reading

    def athletes(self) -> list[AthleteRow]:
        """Every athlete, by id."""
        newest = (
            sa.select(sessions.c.id)
            .where(sessions.c.athlete_id == athletes.c.id)
            .order_by(sessions.c.started_at.desc(), sessions.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = sa.select(
            *(c for c in athletes.c if c.name != "status_at"),
            newest.label("current_session_id"),
        ).order_by(athletes.c.id)
        return [AthleteRow.model_validate(row) for row in self._rows(query)]

    def sessions(self, athlete_id: str | None = None) -> list[SessionRow]:
        """Every session (or one athlete's), the newest first."""
        query = self._sessions_query().order_by(sessions.c.started_at.desc(), sessions.c.id)
        if athlete_id is not None:
            query = query.where(sessions.c.athlete_id == athlete_id)
        return [_session_row(row) for row in self._rows(query)]

    def session(self, session_id: str) -> SessionRow | None:
        rows = self._rows(self._sessions_query().where(sessions.c.id == session_id))
        return _session_row(rows[0]) if rows else None

    def cues(self, session_id: str) -> list[CueRow]:
        """A session's cues in ``seq`` order."""
        return [CueRow.model_validate(r) for r in self._series(cues, session_id, cues.c.seq)]

    def reps(self, session_id: str) -> list[RepRow]:
        """A session's rep summaries in ``seq`` order."""
        return [RepRow.model_validate(r) for r in self._series(reps, session_id, reps.c.seq)]

    def steps(self, session_id: str) -> list[StepRow]:
        """A session's steps in time order (only publishers with steps enabled send them)."""
        return [StepRow.model_validate(r) for r in self._series(steps, session_id, steps.c.ic_s)]

    def metrics(self, session_id: str, *, every_s: float | None = None) -> list[MetricRow]:
        """A session's per-second metrics; with ``every_s``, buckets of that many sensor seconds.

        Bucket ``k`` holds the seconds ``k·every_s <= t < (k + 1)·every_s``.
        """
        if every_s is not None and not (math.isfinite(every_s) and every_s > 0):
            raise ValueError(f"every_s must be a positive number of seconds, got {every_s}")
        rows = self._series(metrics, session_id, metrics.c.sensor_time_s)
        if every_s is None or not rows:
            return [_metric_row(row, 1) for row in rows]
        return _downsample(rows, every_s)

    def _sessions_query(self) -> sa.Select[Any]:
        def count(table: sa.Table) -> sa.ScalarSelect[int]:
            return (
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.session_id == sessions.c.id)
                .scalar_subquery()
            )

        columns = (c for c in sessions.c if c.name != "state_s")
        return sa.select(
            *columns,
            count(cues).label("n_cues"),
            count(reps).label("n_reps"),
            count(metrics).label("n_metrics"),
            count(steps).label("n_steps"),
        )

    def _series(self, table: sa.Table, session_id: str, order: Any) -> list[dict[str, Any]]:
        columns = (c for c in table.c if c.name != "session_id")
        return self._rows(
            sa.select(*columns).where(table.c.session_id == session_id).order_by(order)
        )

    def _rows(self, query: sa.Select[Any]) -> list[dict[str, Any]]:
        with (
            self._failing_as_store_error(),
            self.engine.connect() as connection,
            connection.begin(),
        ):
            return [dict(row) for row in connection.execute(query).mappings()]


def _envelope(message: Message) -> dict[str, Any]:
    return {"session_id": message.session_id, "sensor_time_s": message.sensor_time_s}


_METRIC_FIELDS = {
    "cadence_spm",
    "gct_ms",
    "step_count",
    "intensity_g",
    "speed_m_s",
    "activity",
    "cadence_source",
    "cadence_confidence",
    "lost_fraction",
    "clipped_fraction",
    "trusted",
}


def _metrics_values(m: MetricsMessage) -> dict[str, Any]:
    return {
        **_envelope(m),
        "wall_time": m.wall_time,
        **m.model_dump(include=_METRIC_FIELDS),
        **m.quality.model_dump(),
    }


def _step_values(m: StepMessage) -> dict[str, Any]:
    fields = {"ic_s", "to_s", "gct_ms", "foot", "confidence", "impact_g"}
    return {**_envelope(m), **m.model_dump(include=fields)}


def _cue_values(m: CueMessage) -> dict[str, Any]:
    fields = {"id", "seq", "wall_time", "kind", "text", "rep", "reps", "at_s", "reason"}
    return {**_envelope(m), **m.model_dump(include=fields)}


def _rep_values(m: RepMessage) -> dict[str, Any]:
    return {**_envelope(m), **m.model_dump(exclude={"schema_version", "type", "athlete_id"})}


def _session_row(row: dict[str, Any]) -> SessionRow:
    counts = SessionCounts(
        cues=row.pop("n_cues"),
        reps=row.pop("n_reps"),
        metrics=row.pop("n_metrics"),
        steps=row.pop("n_steps"),
    )
    return SessionRow(**row, counts=counts)


_QUALITY = ("samples", "saturated_samples", "gaps", "lost_samples")


def _metric_row(row: dict[str, Any], seconds: int) -> MetricRow:
    counters = {k: row.pop(k) for k in _QUALITY}
    quality = None if counters["samples"] is None else Quality(**counters)
    return MetricRow(**row, quality=quality, seconds=seconds)


_BUCKET_MEANS = (
    "cadence_spm",
    "gct_ms",
    "intensity_g",
    "speed_m_s",
    "cadence_confidence",
    "lost_fraction",
    "clipped_fraction",
)


def _downsample(rows: list[dict[str, Any]], every_s: float) -> list[MetricRow]:
    """Rows (sorted by sensor time) merged into buckets of ``every_s`` seconds."""
    t_s = np.array([r["sensor_time_s"] for r in rows])
    bucket = np.floor(t_s / every_s + _BUCKET_EPS)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    lasts = np.r_[starts[1:], len(rows)] - 1
    means = {
        name: _bucket_means(np.array([r[name] for r in rows], dtype=float), starts)
        for name in _BUCKET_MEANS
    }
    trusted = np.logical_and.reduceat(np.array([r["trusted"] for r in rows], dtype=bool), starts)
    out = []
    for i, (first, last) in enumerate(zip(starts, lasts, strict=True)):
        merged = dict(rows[last])  # the last second's wall time, step count and quality
        merged["sensor_time_s"] = float(bucket[first] * every_s)
        merged.update({name: _none_if_nan(values[i]) for name, values in means.items()})
        merged["trusted"] = bool(trusted[i])
        out.append(_metric_row(merged, int(last - first + 1)))
    return out


def _bucket_means(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Mean of the non-missing (NaN: ``None``) values of each bucket; NaN for none."""
    present = ~np.isnan(values)
    sums = np.add.reduceat(np.where(present, values, 0.0), starts)
    counts = np.add.reduceat(present.astype(float), starts)
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
