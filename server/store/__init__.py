"""Durable storage of everything the bus carries: SQLite by default, PostgreSQL on request."""

from server.store.schema import (
    AthleteRow,
    CueRow,
    MetricRow,
    RepRow,
    SessionCounts,
    SessionRow,
    StepRow,
)
from server.store.store import Store, StoreError, current_revision, migrate

__all__ = [
    "AthleteRow",
    "CueRow",
    "MetricRow",
    "RepRow",
    "SessionCounts",
    "SessionRow",
    "StepRow",
    "Store",
    "StoreError",
    "current_revision",
    "migrate",
]
