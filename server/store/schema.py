"""The tables, as of the newest migration (SQLAlchemy Core), and the rows queries return.

One row per athlete and per session; cues and reps keyed by their message ``id`` within a
session, with ``seq`` unique per session; per-second metrics and steps keyed by their sensor
time within a session, so that a re-delivered message lands on the row it already has.
Times named ``*_s`` are the sensor's stream seconds; ``*_at`` and ``wall_time`` are UTC
wall-clock times from the publisher. The migrations in ``migrations/versions`` build exactly
these tables (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Dialect

from bus.messages import Quality

ID_LENGTH = 64  # athlete ids, session ids and message ids are at most 64 characters


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC ``datetime`` in and out, on SQLite (no time zones) as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # A payload without an offset is taken as UTC, like the contract's examples.
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite stores the text without the offset: all values UTC keeps them comparable.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id(name: str, *args: Any, **kwargs: Any) -> sa.Column[str]:
    return sa.Column(name, sa.String(ID_LENGTH), *args, **kwargs)


def _session_fk() -> sa.Column[str]:
    return _id("session_id", sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

athletes = sa.Table(
    "athletes",
    metadata,
    _id("id", primary_key=True),
    sa.Column("first_seen_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    # The latest status message, in arrival order (the broker's last will is built at
    # connect time, so its wall time is older than the "online" it overrides).
    sa.Column("online", sa.Boolean(), nullable=True),
    sa.Column("device", sa.String(), nullable=True),
    sa.Column("placement", sa.String(), nullable=True),
    sa.Column("sample_rate_hz", sa.Double(), nullable=True),
    sa.Column("metrics_dropped", sa.Integer(), nullable=True),
    sa.Column("outbox_pending", sa.Integer(), nullable=True),
    sa.Column("status_at", UtcDateTime(), nullable=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    _id("id", primary_key=True),
    _id("athlete_id", sa.ForeignKey("athletes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("last_at", UtcDateTime(), nullable=False),
    # The latest session message (retained), newest sensor time wins.
    sa.Column("template", sa.String(), nullable=True),
    sa.Column("state", sa.String(), nullable=True),
    sa.Column("rep", sa.Integer(), nullable=True),
    sa.Column("reps", sa.Integer(), nullable=True),
    sa.Column("recovery_remaining_s", sa.Double(), nullable=True),
    sa.Column("state_s", sa.Double(), nullable=True),
    sa.Index(None, "athlete_id", "started_at"),
)

cues = sa.Table(
    "cues",
    metadata,
    _session_fk(),
    _id("id"),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("sensor_time_s", sa.Double(), nullable=False),
    sa.Column("wall_time", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("rep", sa.Integer(), nullable=True),
    sa.Column("reps", sa.Integer(), nullable=True),
    sa.Column("at_s", sa.Double(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("session_id", "id"),
    sa.UniqueConstraint("session_id", "seq"),
)

reps = sa.Table(
    "reps",
    metadata,
    _session_fk(),
    _id("id"),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("sensor_time_s", sa.Double(), nullable=False),
    sa.Column("wall_time", UtcDateTime(), nullable=False),
    sa.Column("rep", sa.Integer(), nullable=False),
    sa.Column("start_s", sa.Double(), nullable=False),
    sa.Column("end_s", sa.Double(), nullable=False),
    sa.Column("duration_s", sa.Double(), nullable=False),
    sa.Column("mean_cadence_spm", sa.Double(), nullable=True),
    sa.Column("mean_gct_ms", sa.Double(), nullable=True),
    sa.Column("gct_drift_ms", sa.Double(), nullable=True),
    sa.Column("cadence_cv_pct", sa.Double(), nullable=True),
    sa.Column("time_to_stride_cadence_s", sa.Double(), nullable=True),
    sa.Column("fatigue_flag", sa.Boolean(), nullable=False),
    sa.Column("fatigue_reason", sa.Text(), nullable=True),
    # Added by revision 0003 (rows stored before it: 0 and true, as older publishers meant).
    sa.Column("missing_s", sa.Double(), nullable=False),
    sa.Column("complete", sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint("session_id", "id"),
    sa.UniqueConstraint("session_id", "seq"),
)

metrics = sa.Table(
    "metrics",
    metadata,
    _session_fk(),
    sa.Column("sensor_time_s", sa.Double(), nullable=False),
    sa.Column("wall_time", UtcDateTime(), nullable=False),
    sa.Column("cadence_spm", sa.Double(), nullable=True),
    sa.Column("gct_ms", sa.Double(), nullable=True),
    sa.Column("step_count", sa.Integer(), nullable=False),
    sa.Column("intensity_g", sa.Double(), nullable=True),
    sa.Column("speed_m_s", sa.Double(), nullable=True),
    # Added by revision 0002: NULL on rows stored before it.
    sa.Column("samples", sa.BigInteger(), nullable=True),
    sa.Column("saturated_samples", sa.BigInteger(), nullable=True),
    sa.Column("gaps", sa.Integer(), nullable=True),
    sa.Column("lost_samples", sa.BigInteger(), nullable=True),
    # Added by revision 0003: activity, source and confidence NULL on rows stored before it
    # (not known), the fractions 0 and trusted when a cadence is there (as older publishers
    # meant).
    sa.Column("activity", sa.String(16), nullable=True),
    sa.Column("cadence_source", sa.String(16), nullable=True),
    sa.Column("cadence_confidence", sa.Double(), nullable=True),
    sa.Column("lost_fraction", sa.Double(), nullable=False),
    sa.Column("clipped_fraction", sa.Double(), nullable=False),
    sa.Column("trusted", sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint("session_id", "sensor_time_s"),
)

steps = sa.Table(
    "steps",
    metadata,
    _session_fk(),
    sa.Column("ic_s", sa.Double(), nullable=False),
    sa.Column("to_s", sa.Double(), nullable=False),
    sa.Column("sensor_time_s", sa.Double(), nullable=False),
    sa.Column("gct_ms", sa.Double(), nullable=False),
    sa.Column("foot", sa.String(8), nullable=True),
    sa.Column("confidence", sa.Double(), nullable=False),
    sa.Column("impact_g", sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint("session_id", "ic_s"),
)


# What the queries return: JSON-friendly, ready for the HTTP layer.


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class AthleteRow(_Row):
    """An athlete, the publisher's latest status and the newest session."""

    id: str
    first_seen_at: datetime
    last_seen_at: datetime
    online: bool | None  # None until a status message arrives
    device: str | None
    placement: str | None
    sample_rate_hz: float | None
    metrics_dropped: int | None
    outbox_pending: int | None
    current_session_id: str | None


class SessionCounts(_Row):
    cues: int
    reps: int
    metrics: int
    steps: int


class SessionRow(_Row):
    """A session: first and last wall time seen, the latest state, what it holds."""

    id: str
    athlete_id: str
    started_at: datetime
    last_at: datetime
    template: str | None
    state: str | None  # None until a session message arrives
    rep: int | None
    reps: int | None
    recovery_remaining_s: float | None
    counts: SessionCounts


class CueRow(_Row):
    id: str
    seq: int
    sensor_time_s: float
    wall_time: datetime
    kind: str
    text: str
    rep: int | None
    reps: int | None
    at_s: float | None
    reason: str | None


class RepRow(_Row):
    id: str
    seq: int
    sensor_time_s: float
    wall_time: datetime
    rep: int
    start_s: float
    end_s: float
    duration_s: float
    mean_cadence_spm: float | None
    mean_gct_ms: float | None
    gct_drift_ms: float | None
    cadence_cv_pct: float | None
    time_to_stride_cadence_s: float | None
    fatigue_flag: bool
    fatigue_reason: str | None
    missing_s: float  # seconds of the rep without trusted data
    complete: bool  # false: a hole in the data; the rep is flagged, not summarised


class StepRow(_Row):
    ic_s: float
    to_s: float
    sensor_time_s: float
    gct_ms: float
    foot: str | None
    confidence: float
    impact_g: float | None


class MetricRow(_Row):
    """One second of metrics, or a bucket of ``seconds`` of them (downsampled).

    A bucket starts at ``sensor_time_s``; it holds the mean cadence, contact time, intensity,
    speed, cadence confidence and lost and clipped fractions of its seconds (``None`` where none
    had one), the last step count, quality counters, activity, cadence source and wall time, and
    is ``trusted`` only when every one of its seconds was.
    """

    sensor_time_s: float
    wall_time: datetime
    cadence_spm: float | None
    gct_ms: float | None
    step_count: int
    intensity_g: float | None
    speed_m_s: float | None
    quality: Quality | None  # None on rows stored before migration 0002
    activity: str | None
    cadence_source: str | None
    cadence_confidence: float | None
    lost_fraction: float
    clipped_fraction: float
    trusted: bool
    seconds: int
