"""Per-second signal quality on metrics: the sensor stream's counters at each second.

The contract's metrics message always carried them; revision 0001 dropped them. Rows stored
before this revision keep NULL there (their counters are not known).

Revision ID: 0002
Revises: 0001
Create Date: 2025-05-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (
    ("samples", sa.BigInteger()),
    ("saturated_samples", sa.BigInteger()),
    ("gaps", sa.Integer()),
    ("lost_samples", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
