"""Replicas: two `stridecue serve` processes in one share group, one Mosquitto, one PostgreSQL.

Every message of the stream is stored once, by one replica or the other (their ``share_accepted``
counters add up to what was published, kind by kind); each replica still shows every message
live; when one replica dies, the other stores everything that follows. Also the settings that
guard a group (a broker that can share, one coach token for all).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError
from typer.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bus.broker import free_port
from bus.messages import (
    KIND_OF,
    CueMessage,
    Message,
    MetricsMessage,
    RepMessage,
    SessionMessage,
    StatusMessage,
    StepMessage,
)
from bus.subscriber import Subscriber, SubscriptionRefusedError
from bus.topics import Kind
from server.auth import BEARER_SUBPROTOCOL
from server.ingest import SHARED_KINDS
from server.settings import ServerSettings
from server.store import Store
from stridecue.cli import app
from tests.brokers import Mosquitto
from tests.server.conftest_app import TOKEN, publish, wait_for

STRIDECUE = Path(sys.executable).parent / "stridecue"
GROUP = "coaches"
START_S = 30.0  # two interpreters importing the server at once on a small machine
DEADLINE_S = 10.0
ATHLETES = (("anna", 3), ("ben", 4), ("cara", 5))


@dataclass
class Replica:
    """One ``stridecue serve`` process of the group."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any]:
        """The ``mqtt`` part of ``/api/health``."""
        body = httpx.get(f"http://{self.address}/api/health", timeout=DEADLINE_S).json()
        mqtt: dict[str, Any] = body["mqtt"]
        return mqtt

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"replica {self.name} exited:\n{self.log_path.read_text()}")
        try:
            return bool(self.health()["subscribed"])
        except httpx.TransportError:
            return False  # not listening yet

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _start(name: str, broker: Mosquitto, database: str, folder: Path) -> Replica:
    port = free_port()
    env = os.environ | {
        "STRIDECUE_COACH_TOKEN": TOKEN,
        "STRIDECUE_MQTT_CLIENT_ID": f"replica-{name}",
        "STRIDECUE_DATA_DIR": str(folder / name),
    }
    command = [str(STRIDECUE), "serve", "--port", str(port), "--database", database]
    command += ["--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--share-group", GROUP]
    log_path = folder / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return Replica(name, port, process, log_path)


@pytest.fixture
def replicas(
    mosquitto_process: Callable[..., Mosquitto], postgres_url: str, tmp_path: Path
) -> Iterator[tuple[Mosquitto, Replica, Replica]]:
    """A Mosquitto of the test's own and two replicas on one fresh PostgreSQL database."""
    if not STRIDECUE.is_file():
        pytest.skip("the stridecue console script is not installed")
    broker = mosquitto_process()
    started = [_start(name, broker, postgres_url, tmp_path) for name in ("a", "b")]
    try:
        for replica in started:
            wait_for(replica.ready, f"replica {replica.name} to subscribe", timeout_s=START_S)
        yield broker, started[0], started[1]
    finally:
        for replica in started:
            replica.stop()


@dataclass
class LiveFollower:
    """The team's live stream of one replica, read by a thread; waiters wake on each message."""

    received: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def cue_ids(self, athlete_id: str) -> list[str]:
        with self.changed:
            return [
                m["message"]["id"]
                for m in self.received
                if m["kind"] == "cues" and m["athlete_id"] == athlete_id
            ]

    def wait_cues(self, athlete_id: str, count: int) -> list[str]:
        """The athlete's cue ids once ``count`` of them arrived (fails after the deadline)."""
        with self.changed:
            arrived = self.changed.wait_for(
                lambda: len(self.cue_ids(athlete_id)) >= count, timeout=DEADLINE_S
            )
        assert arrived, f"{athlete_id}: {len(self.cue_ids(athlete_id))} of {count} cues live"
        return self.cue_ids(athlete_id)


@contextmanager
def following(replica: Replica) -> Iterator[LiveFollower]:
    follower = LiveFollower()
    url = f"ws://{replica.address}/api/live"
    with connect(url, subprotocols=[BEARER_SUBPROTOCOL, TOKEN], open_timeout=5) as ws:  # type: ignore[list-item]

        def read() -> None:
            try:
                for text in ws:
                    with follower.changed:
                        follower.received.append(json.loads(text))
                        follower.changed.notify_all()
            except ConnectionClosed:
                pass

        reader = threading.Thread(target=read, name="live-follower", daemon=True)
        reader.start()
        try:
            yield follower
        finally:
            ws.close()
            reader.join(timeout=DEADLINE_S)


def _kinds(messages: Sequence[Message]) -> Counter[str]:
    return Counter(KIND_OF[type(m)].value for m in messages)


def _shared(messages: Sequence[Message]) -> int:
    counts = _kinds(messages)
    return sum(counts[kind.value] for kind in SHARED_KINDS)


def _stored_everywhere(replicas: Sequence[Replica]) -> int:
    return sum(r.health()["stored"] for r in replicas)


@pytest.mark.mosquitto
@pytest.mark.postgres
def test_two_replicas_store_each_message_once_and_show_every_message(
    replicas: tuple[Mosquitto, Replica, Replica], simulated: Callable[..., list[Message]]
) -> None:
    broker, a, b = replicas
    sessions = {athlete: simulated(athlete, seed) for athlete, seed in ATHLETES}
    cara = sessions["cara"]
    # Cara's session goes on while replica A dies: the second half is published after.
    before = [*sessions["anna"], *sessions["ben"], *cara[: len(cara) // 2]]
    after = cara[len(cara) // 2 :]
    with following(b) as live:
        publish(broker.broker, *before)
        wait_for(lambda: _stored_everywhere((a, b)) == _shared(before), "the first messages")
        share_a, share_b = a.health(), b.health()
        # The broker gave each message of the stream to one replica, and each took a share.
        published = _kinds(before)
        for kind in SHARED_KINDS:
            taken = Counter(share_a["share_accepted"]) + Counter(share_b["share_accepted"])
            assert taken[kind.value] == published[kind.value], kind
        assert share_a["share_accepted"]["cues"] > 0 and share_b["share_accepted"]["cues"] > 0
        assert share_a["stored"] + share_b["stored"] == _shared(before)
        # Each replica still sees the whole stream: B shows the cues A stored too.
        for replica in (share_a, share_b):
            assert replica["accepted"] == dict(published)
            assert replica["store_errors"] == 0 and replica["malformed"] == {}
        for athlete in ("anna", "ben"):
            cue_ids = [m.id for m in sessions[athlete] if isinstance(m, CueMessage)]
            assert live.wait_cues(athlete, len(cue_ids)) == cue_ids

        a.stop(signal.SIGKILL)
        publish(broker.broker, *after)
        wait_for(
            lambda: b.health()["stored"] == share_b["stored"] + _shared(after),
            "replica B to store everything after A died",
        )
        cara_cues = [m.id for m in cara if isinstance(m, CueMessage)]
        assert live.wait_cues("cara", len(cara_cues)) == cara_cues

    with Store.open(_database(b)) as store:
        for athlete, messages in sessions.items():
            _assert_stored(store, athlete, messages)


def _database(replica: Replica) -> str:
    """The database URL the replica was started with."""
    args = replica.process.args
    assert isinstance(args, list)
    return str(args[args.index("--database") + 1])


def _assert_stored(store: Store, athlete_id: str, messages: Sequence[Message]) -> None:
    """The store holds exactly what was published: every row once, the latest state and status."""
    [session_id] = {m.session_id for m in messages}

    def of(kind: type[Any]) -> list[Any]:
        return [m for m in messages if isinstance(m, kind)]

    cues = [(c.id, c.seq, c.text) for c in store.cues(session_id)]
    assert cues == [(c.id, c.seq, c.text) for c in of(CueMessage)], athlete_id
    reps = [(r.id, r.seq, r.mean_gct_ms) for r in store.reps(session_id)]
    assert reps == [(r.id, r.seq, r.mean_gct_ms) for r in of(RepMessage)], athlete_id
    metrics = [(m.sensor_time_s, m.step_count) for m in store.metrics(session_id)]
    assert metrics == [(m.sensor_time_s, m.step_count) for m in of(MetricsMessage)], athlete_id
    steps = [(s.ic_s, s.to_s) for s in store.steps(session_id)]
    assert steps == sorted((s.ic_s, s.to_s) for s in of(StepMessage)), athlete_id
    final = of(SessionMessage)[-1]
    row = store.session(session_id)
    assert row is not None and (row.state, row.rep) == (final.state, final.rep)
    [athlete] = [x for x in store.athletes() if x.id == athlete_id]
    assert of(StatusMessage)[-1].online is False
    assert athlete.online is False, athlete_id


# --- what guards a group ---------------------------------------------------------------------


def test_a_share_group_needs_a_broker_that_can_share_and_one_database() -> None:
    postgres = "postgresql://stridecue@db.example/stridecue"

    def settings(url: str | None, group: str, database: str | None = postgres) -> ServerSettings:
        return ServerSettings(
            coach_token=TOKEN, mqtt_url=url, mqtt_share_group=group, database_url=database
        )

    for url in (None, "embedded"):
        with pytest.raises(ValidationError, match="MQTT 5 shared subscriptions"):
            settings(url, GROUP)
    for database in (None, "sqlite:///companion.sqlite"):
        with pytest.raises(ValidationError, match="store into one database"):
            settings("mqtt://broker", GROUP, database)
    with pytest.raises(ValidationError, match="forbids '/', '\\+' and '#'"):
        settings("mqtt://broker", "a/b")
    assert settings("mqtt://broker", GROUP).mqtt_share_group == GROUP
    assert settings("mqtt://broker", GROUP, "postgres://db/x").mqtt_share_group == GROUP


def test_replicas_do_not_make_up_tokens_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIDECUE_COACH_TOKEN", raising=False)
    args = ["serve", "--mqtt", "mqtt://127.0.0.1:1", "--share-group", GROUP]
    args += ["--database", "postgresql://stridecue@db.example/stridecue"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "share one coach token" in result.output


class _Refusing:
    """A connected client whose broker refuses the second filter (no shared subscriptions)."""

    async def subscribe(self, topics: list[tuple[str, int]]) -> list[ReasonCode]:
        granted = ReasonCode(PacketTypes.SUBACK, identifier=1)
        refused = ReasonCode(PacketTypes.SUBACK, identifier=0x9E)  # shared subs not supported
        return [granted, refused][: len(topics)]


def test_a_refused_subscription_is_an_error_saying_which_filter() -> None:
    subscriber = Subscriber(_Refusing(), kinds=[Kind.METRICS, Kind.CUES], share_group=GROUP)  # type: ignore[arg-type]
    assert subscriber.filters == (
        f"$share/{GROUP}/stridecue/v1/athletes/+/metrics",
        f"$share/{GROUP}/stridecue/v1/athletes/+/cues",
    )
    with pytest.raises(SubscriptionRefusedError) as refused:
        asyncio.run(subscriber.subscribe())
    assert refused.value.refused == {subscriber.filters[1]: 0x9E}
    assert "reason code 0x9e" in str(refused.value)
