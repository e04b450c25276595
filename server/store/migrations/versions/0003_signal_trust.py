"""Signal trust: what each second's cadence rests on, and the holes in each rep.

Metrics gain the athlete's activity, the cadence's source and confidence, the share of the
second's samples lost and clipped, and whether the cadence can be shown as fact (``trusted``);
reps gain the seconds without trusted data (``missing_s``) and whether the rep was measured
throughout (``complete``). Rows stored before this revision get what the contract reads into a
message of a publisher that predates these fields: nothing lost or clipped, a cadence trusted
when there is one, a rep complete with nothing missing. Activity, source and confidence stay
NULL there (not known).

Revision ID: 0003
Revises: 0002
Create Date: 2025-06-10
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

METRICS_UNKNOWN: tuple[tuple[str, Any], ...] = (
    ("activity", sa.String(16)),
    ("cadence_source", sa.String(16)),
    ("cadence_confidence", sa.Double()),
)
# Each column with the value of the rows stored before this revision.
Filled = tuple[tuple[str, Any, Any], ...]
METRICS_FILLED: Filled = (
    ("lost_fraction", sa.Double(), sa.literal(0.0)),
    ("clipped_fraction", sa.Double(), sa.literal(0.0)),
    ("trusted", sa.Boolean(), sa.column("cadence_spm").is_not(None)),
)
REPS_FILLED: Filled = (
    ("missing_s", sa.Double(), sa.literal(0.0)),
    ("complete", sa.Boolean(), sa.true()),
)


def _add_filled(table: str, columns: Filled) -> None:
    """Add ``columns`` as NULL, fill the old rows, then make them NOT NULL."""
    with op.batch_alter_table(table) as batch:
        for name, type_, _ in columns:
            batch.add_column(sa.Column(name, type_, nullable=True))
    target = sa.table(table, *(sa.column(name) for name, _, _ in columns))
    op.execute(sa.update(target).values({name: value for name, _, value in columns}))
    with op.batch_alter_table(table) as batch:
        for name, type_, _ in columns:
            batch.alter_column(name, existing_type=type_, nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        for name, type_ in METRICS_UNKNOWN:
            batch.add_column(sa.Column(name, type_, nullable=True))
    _add_filled("metrics", METRICS_FILLED)
    _add_filled("reps", REPS_FILLED)


def downgrade() -> None:
    with op.batch_alter_table("reps") as batch:
        for name, *_ in reversed(REPS_FILLED):
            batch.drop_column(name)
    with op.batch_alter_table("metrics") as batch:
        for name, *_ in reversed(METRICS_FILLED):
            batch.drop_column(name)
        for name, _ in reversed(METRICS_UNKNOWN):
            batch.drop_column(name)
