"""The MQTT consumer on a real Mosquitto: malformed messages counted, store failures survived,
and a broker restart followed by a reconnection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from bus.convert import MessageFactory
from bus.messages import CueMessage, Message
from bus.subscriber import MAX_PAYLOAD_BYTES
from bus.topics import Kind, topic
from server.app import create_app
from server.ingest import Ingest
from server.live import LiveHub
from server.store import Store
from tests.brokers import Mosquitto
from tests.server.conftest_app import (
    ANNA_CUES,
    T0,
    auth,
    health,
    publish,
    serving,
    settings,
    wait_for,
    wait_subscribed,
)

DEADLINE_S = 10.0
pytestmark = pytest.mark.mosquitto


def _cues(athlete_id: str, count: int) -> list[CueMessage]:
    factory = MessageFactory(athlete_id, clock=lambda: T0)
    messages = [factory.message(ANNA_CUES[i]) for i in range(count)]
    assert all(isinstance(m, CueMessage) for m in messages)
    return messages  # type: ignore[return-value]


def test_malformed_messages_are_counted_in_health(tmp_path: Path, mosquitto_process: Any) -> None:
    broker: Mosquitto = mosquitto_process()
    [cue] = _cues("anna", 1)
    good = cue.model_dump(mode="json")
    app = create_app(settings(tmp_path, mqtt_url=f"mqtt://127.0.0.1:{broker.port}"))
    with serving(app) as address:
        wait_subscribed(address)
        publish(
            broker.broker,
            (topic("anna", Kind.CUES), b"{not json"),
            (topic("anna", Kind.CUES), json.dumps(good | {"seq": 0}).encode()),
            (topic("anna", Kind.REPS), json.dumps(good).encode()),
            (topic("ben", Kind.CUES), json.dumps(good).encode()),
            (topic("anna", Kind.METRICS), b" " * (MAX_PAYLOAD_BYTES + 1)),
            cue,  # after the bad ones, on the same connection: once it is stored, all were seen
        )
        wait_for(lambda: health(address)["mqtt"]["stored"] == 1, "the valid cue")
        mqtt = health(address)["mqtt"]
        assert mqtt["malformed"] == {
            "not_json": 1,
            "schema": 1,
            "kind_mismatch": 1,
            "athlete_mismatch": 1,
            "oversize": 1,
        }
        assert mqtt["accepted"] == {"cues": 1}
        assert mqtt["subscribed"] and mqtt["store_errors"] == 0
        stored = httpx.get(f"http://{address}/api/sessions/{cue.session_id}/cues", headers=auth())
        assert [c["id"] for c in stored.json()] == [cue.id]


def test_a_store_failure_is_counted_and_a_lost_broker_is_reconnected(
    tmp_path: Path, mosquitto_process: Any
) -> None:
    broker: Mosquitto = mosquitto_process()
    refused, first, second = _cues("anna", 3)
    store = Store.open(f"sqlite:///{tmp_path / 'ingest.sqlite'}")

    def save(message: Message) -> bool:
        if isinstance(message, CueMessage) and message.id == refused.id:
            raise RuntimeError("the database refused it")
        return store.ingest(message)

    async def until(condition: Callable[[], bool], what: str) -> None:
        async with asyncio.timeout(DEADLINE_S):
            while not condition():
                await asyncio.sleep(0.01)  # polling with a deadline
        assert condition(), what

    async def send(*messages: CueMessage) -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            for m in messages:
                await client.publish(topic("anna", Kind.CUES), m.model_dump_json(), qos=1)

    async def received(next_text: Callable[[], Awaitable[str | None]]) -> str:
        async with asyncio.timeout(DEADLINE_S):
            text = await next_text()
        assert text is not None
        return str(json.loads(text)["message"]["id"])

    async def main() -> None:
        hub = LiveHub()
        follower = hub.connect()
        ingest = Ingest(broker.broker, save=save, hub=hub, backoff_min_s=0.05, seed=1)
        task = asyncio.create_task(ingest.run(), name="ingest")
        try:
            await until(ingest.subscribed.is_set, "the subscription")
            await send(refused, first)
            assert await received(follower.next) == first.id
            assert (ingest.store_errors, ingest.stored) == (1, 1)
            await asyncio.to_thread(broker.restart)
            await until(lambda: ingest.connects == 2 and ingest.subscribed.is_set(), "reconnect")
            await send(second)
            assert await received(follower.next) == second.id
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(main())
        assert [c.id for c in store.cues(first.session_id)] == [first.id, second.id]
    finally:
        store.close()
