"""Athletes, sessions, cues, reps, steps and per-second metrics.

Revision ID: 0001
Revises:
Create Date: 2025-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the types of this revision: later changes to schema.py must not alter it.
ID = sa.String(64)
UTC_TIME = sa.DateTime(timezone=True)


def _session_fk(table: str) -> sa.Column[str]:
    return sa.Column(
        "session_id",
        ID,
        sa.ForeignKey("sessions.id", name=f"fk_{table}_session_id_sessions", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "athletes",
        sa.Column("id", ID, nullable=False),
        sa.Column("first_seen_at", UTC_TIME, nullable=False),
        sa.Column("last_seen_at", UTC_TIME, nullable=False),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("device", sa.String(), nullable=True),
        sa.Column("placement", sa.String(), nullable=True),
        sa.Column("sample_rate_hz", sa.Double(), nullable=True),
        sa.Column("metrics_dropped", sa.Integer(), nullable=True),
        sa.Column("outbox_pending", sa.Integer(), nullable=True),
        sa.Column("status_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_athletes"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column(
            "athlete_id",
            ID,
            sa.ForeignKey(
                "athletes.id", name="fk_sessions_athlete_id_athletes", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("last_at", UTC_TIME, nullable=False),
        sa.Column("template", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("rep", sa.Integer(), nullable=True),
        sa.Column("reps", sa.Integer(), nullable=True),
        sa.Column("recovery_remaining_s", sa.Double(), nullable=True),
        sa.Column("state_s", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_athlete_id_started_at", "sessions", ["athlete_id", "started_at"])
    op.create_table(
        "cues",
        _session_fk("cues"),
        sa.Column("id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sensor_time_s", sa.Double(), nullable=False),
        sa.Column("wall_time", UTC_TIME, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("rep", sa.Integer(), nullable=True),
        sa.Column("reps", sa.Integer(), nullable=True),
        sa.Column("at_s", sa.Double(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "id", name="pk_cues"),
        sa.UniqueConstraint("session_id", "seq", name="uq_cues_session_id_seq"),
    )
    op.create_table(
        "reps",
        _session_fk("reps"),
        sa.Column("id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sensor_time_s", sa.Double(), nullable=False),
        sa.Column("wall_time", UTC_TIME, nullable=False),
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
        sa.PrimaryKeyConstraint("session_id", "id", name="pk_reps"),
        sa.UniqueConstraint("session_id", "seq", name="uq_reps_session_id_seq"),
    )
    op.create_table(
        "metrics",
        _session_fk("metrics"),
        sa.Column("sensor_time_s", sa.Double(), nullable=False),
        sa.Column("wall_time", UTC_TIME, nullable=False),
        sa.Column("cadence_spm", sa.Double(), nullable=True),
        sa.Column("gct_ms", sa.Double(), nullable=True),
        sa.Column("step_count", sa.Integer(), nullable=False),
        sa.Column("intensity_g", sa.Double(), nullable=True),
        sa.Column("speed_m_s", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "sensor_time_s", name="pk_metrics"),
    )
    op.create_table(
        "steps",
        _session_fk("steps"),
        sa.Column("ic_s", sa.Double(), nullable=False),
        sa.Column("to_s", sa.Double(), nullable=False),
        sa.Column("sensor_time_s", sa.Double(), nullable=False),
        sa.Column("gct_ms", sa.Double(), nullable=False),
        sa.Column("foot", sa.String(8), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("impact_g", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("session_id", "ic_s", name="pk_steps"),
    )


def downgrade() -> None:
    for table in ("steps", "metrics", "reps", "cues", "sessions", "athletes"):
        op.drop_table(table)
