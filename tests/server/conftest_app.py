"""Fixtures of the app tests: settings, a database with a known team, a real uvicorn server.

``seeded_url`` is a SQLite database holding two athletes whose every stored value is known
(``ANNA_*`` below), ingested through the real store from messages built by ``MessageFactory``.
``serving(app)`` runs the app under uvicorn on a free port in a thread, as ``stridecue serve``
does, so that WebSockets, the access log and MQTT ingest are the real ones.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from bus.broker import free_port
from bus.convert import MessageFactory
from bus.messages import KIND_OF, Message
from bus.settings import BrokerConfig
from bus.topics import topic
from dsp.events import Activity, CadenceSource, Cue, CueKind, Metrics, RepSummary, SignalQuality
from server.app import create_app
from server.settings import ServerSettings
from server.store import Store

TOKEN = "coach-token-for-the-tests-0123456789"
T0 = datetime(2025, 5, 1, 7, 0, tzinfo=UTC)
DEADLINE_S = 10.0
FloatOrArray = TypeVar("FloatOrArray", float, np.ndarray)

ANNA_SESSION = "anna-session-1"
BEN_SESSION = "ben-session-1"
ANNA_METRICS_S = tuple(float(t) for t in range(1, 121))  # 120 points, one per second
ANNA_CUES = (
    Cue(60.0, CueKind.GET_READY, "Get ready", rep=1, reps=6),
    Cue(65.0, CueKind.GO, "Go! Rep 1 of 6", rep=1, reps=6),
    Cue(96.0, CueKind.EASE, "Ease off", rep=1, reps=6),
    Cue(180.0, CueKind.GO, "Go! Rep 2 of 6", rep=2, reps=6),
)
ANNA_REPS = (
    RepSummary(1, 65.4, 96.0, 30.6, 190.0, 205.0, 1.0, 1.1, 0.9, False, None),
    RepSummary(2, 180.2, 212.0, 31.8, 194.0, 215.0, 9.5, 1.4, 1.2, True, "contacts lengthen"),
)


CLEO_SESSION = "cleo-session-1"
CLEO_METRICS_S = tuple(float(t) for t in range(1, 61))
# Seconds the engine did not trust: 20 s of lost samples, then the last 5 s, whose contacts
# disagreed with the signal's periodicity (cadence from the periodicity, no contact time).
CLEO_LOST_S = frozenset(float(t) for t in range(21, 41))
CLEO_PERIODIC_S = frozenset(float(t) for t in range(56, 61))
CLEO_READY_REASON = "recovery time reached; cadence still high (168 spm, easy is 158)"
CLEO_REPS = (
    RepSummary(1, 5.0, 19.0, 14.0, 176.0, 221.0, 1.5, 1.2, 2.0, False, None),
    # The 20 s hole: flagged by the engine, not summarised.
    RepSummary(2, 25.0, 50.0, 25.0, None, None, None, None, 1.0, False, None, missing_s=20.0),
)


def cleo_metrics(t_s: float) -> Metrics:
    quality = SignalQuality(samples=int(200 * t_s), saturated_samples=0, gaps=0, lost_samples=0)
    if t_s in CLEO_PERIODIC_S:
        return Metrics(
            t_s,
            150.0 + t_s,
            None,
            int(3 * t_s),
            1.5,
            None,
            quality,
            activity=Activity.WALKING,
            cadence_source=CadenceSource.PERIODICITY,
            cadence_confidence=0.3,
        )
    return Metrics(
        t_s,
        cadence_spm(t_s),
        gct_ms(t_s),
        int(3 * t_s),
        5.0,
        None,
        quality,
        activity=Activity.RUNNING,
        cadence_source=CadenceSource.CONTACTS,
        cadence_confidence=0.9,
        lost_fraction=0.5 if t_s in CLEO_LOST_S else 0.0,
    )


def _online(factory: MessageFactory) -> Message:
    """The athlete's status as its session begins: a simulated footpod on the foot."""
    return factory.status(
        0.0,
        online=True,
        device="footpod-sim",
        placement="foot",
        sample_rate_hz=200.0,
        quality=None,
        metrics_dropped=0,
        outbox_pending=0,
    )


def cleo_messages() -> list[Message]:
    """A session whose signal fails: lost samples in rep 2 (a hole), and walking at the end
    with a cadence the signal does not support; every second's values known."""
    factory = MessageFactory("cleo", session_id=CLEO_SESSION, clock=lambda: T0)
    messages: list[Message] = [
        _online(factory),
    ]
    messages += [_made(factory.message(cleo_metrics(t_s))) for t_s in CLEO_METRICS_S]
    messages += [_made(factory.message(rep)) for rep in CLEO_REPS]
    ready = Cue(58.0, CueKind.GET_READY, "Get ready", rep=3, reps=6, reason=CLEO_READY_REASON)
    messages.append(_made(factory.message(ready)))
    messages.append(
        factory.session(
            60.0, template="nrr", state="get_ready", rep=2, reps=6, recovery_remaining_s=None
        )
    )
    return messages


def cadence_spm(t_s: FloatOrArray) -> FloatOrArray:
    return 160.0 + 0.25 * t_s


def gct_ms(t_s: FloatOrArray) -> FloatOrArray:
    return 260.0 - 0.2 * t_s


def settings(tmp_path: Path, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "coach_token": TOKEN,
        "database_url": f"sqlite:///{tmp_path / 'companion.sqlite'}",
        "mqtt_client_id": None,  # clean sessions: nothing left behind on a shared broker
    }
    return ServerSettings(**(values | overrides))


def anna_messages() -> list[Message]:
    factory = MessageFactory("anna", session_id=ANNA_SESSION, clock=lambda: T0)
    quality = SignalQuality(samples=0, saturated_samples=0, gaps=0, lost_samples=0)
    messages: list[Message] = [
        _online(factory),
    ]
    for t_s in ANNA_METRICS_S:
        metrics = Metrics(t_s, cadence_spm(t_s), gct_ms(t_s), int(3 * t_s), 5.0, None, quality)
        messages.append(_made(factory.message(metrics)))
    messages += [_made(factory.message(cue)) for cue in ANNA_CUES]
    messages += [_made(factory.message(rep)) for rep in ANNA_REPS]
    messages.append(
        factory.session(
            213.0, template="nrr", state="recovery", rep=2, reps=6, recovery_remaining_s=42.0
        )
    )
    return messages


def ben_messages() -> list[Message]:
    factory = MessageFactory("ben", session_id=BEN_SESSION, clock=lambda: T0)
    return [
        factory.session(
            1.0, template=None, state="easy", rep=0, reps=None, recovery_remaining_s=None
        )
    ]


def _made(message: Message | None) -> Message:
    assert message is not None
    return message


def seed(url: str, messages: Iterable[Message]) -> None:
    store = Store.open(url)
    try:
        assert all(store.ingest_many(list(messages)))
    finally:
        store.close()


@pytest.fixture
def seeded(tmp_path: Path, store_url: str) -> ServerSettings:
    """Settings (no broker) on a database (SQLite, then PostgreSQL) holding the known team."""
    config = settings(tmp_path, database_url=store_url)
    seed(config.database, [*anna_messages(), *ben_messages()])
    return config


@pytest.fixture
def served(seeded: ServerSettings) -> Iterator[httpx.Client]:
    """An HTTP client, with the coach token, of the app served on the seeded database."""
    with (
        serving(create_app(seeded)) as address,
        httpx.Client(base_url=f"http://{address}", headers=auth()) as client,
    ):
        yield client


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free port (lifespan included); yields ``host:port``."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), "uvicorn to start")
        assert server.started, "uvicorn did not start (see the log)"
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=DEADLINE_S)


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it is true, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling with a deadline


def health(address: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"http://{address}/api/health").json()
    return body


def wait_subscribed(address: str) -> None:
    wait_for(lambda: (health(address)["mqtt"] or {}).get("subscribed"), "the MQTT subscription")


def publish(broker: BrokerConfig, *messages: Message | tuple[str, bytes]) -> None:
    """Publish messages (or raw ``(topic, payload)`` pairs) with QoS 1, in order."""

    async def main() -> None:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            for item in messages:
                if isinstance(item, tuple):
                    name, payload = item
                else:
                    name = topic(item.athlete_id, KIND_OF[type(item)])
                    payload = item.model_dump_json().encode()
                await client.publish(name, payload, qos=1)

    asyncio.run(main())
