"""Stores for the server tests: a SQLite file in the test's folder, or a fresh PostgreSQL database.

``postgres_url`` creates a database of its own on the local PostgreSQL (``127.0.0.1:5432``,
user ``postgres``) and drops it afterwards; tests using it carry the ``postgres`` marker and skip
when nothing listens there. ``store_url`` runs a test on both. ``simulated`` gives
every message a real closed-loop session publishes, built from the engine's events.
"""

from __future__ import annotations

import functools
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from bus.messages import Message
from bus.session_messages import SessionMessages
from dsp.engine import StrideEngine
from dsp.events import Cue, Placement
from dsp.plan import SessionPlan
from firmware_sim.runner import SimulatedAthlete
from server.store import Store

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PLAN = SessionPlan(
    name="nrr", warmup_s=30, reps=2, rep_s=15, min_recovery_s=20, cooldown_s=10, baseline_hold_s=10
)
ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
T0 = datetime(2025, 5, 1, 7, 30, tzinfo=UTC)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards); skips when no server listens."""
    if not _listening(PG_HOST, PG_PORT):
        pytest.skip(f"no PostgreSQL on {PG_HOST}:{PG_PORT}")
    name = f"stridecue_{uuid.uuid4().hex}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (dropped afterwards)."""
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'companion.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database: a SQLite file, then a PostgreSQL database."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    with Store.open(sqlite_url) as store:
        yield store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as store:
        yield store


@functools.cache
def _simulate(athlete_id: str, seed: int, session_id: str) -> tuple[Message, ...]:
    athlete = SimulatedAthlete(PLAN, Placement.FOOT, seed=seed, closed_loop=True)
    engine = StrideEngine(Placement.FOOT, athlete.fs_hz, plan=PLAN)
    # Wall clock = T0 + stream time: deterministic, and ordered like a real run.
    session = SessionMessages(athlete_id, session_id, T0, engine, template=PLAN.name)
    messages: list[Message] = [session.status(online=True, device="footpod-sim")]
    while not athlete.done:
        events = engine.process(athlete.read(1.0))
        for event in events:
            if isinstance(event, Cue):
                athlete.on_cue(event)
        messages += session.convert(events)
    messages += session.convert(engine.finish())
    messages.append(session.status(online=False, device="footpod-sim"))
    return tuple(messages)


@pytest.fixture(scope="session")
def simulated() -> Callable[..., list[Message]]:
    """``simulated(athlete_id="anna", seed=3)``: the messages of one closed-loop session.

    Every kind: status (online, then offline), metrics, steps, cues, reps and each change of
    the session's state, in publication order; the session id is derived from the arguments.
    """

    def make(athlete_id: str = "anna", seed: int = 3) -> list[Message]:
        return list(_simulate(athlete_id, seed, f"{athlete_id}-{seed}"))

    return make
