"""The live fan-out: a message on the broker reaches the WebSocket; a slow client is dropped."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from websockets.sync.client import connect

from bus.convert import MessageFactory
from bus.messages import CueMessage
from bus.settings import BrokerConfig
from bus.topics import Kind
from server.app import create_app
from server.live import LiveHub
from tests.server.conftest_app import (
    ANNA_CUES,
    T0,
    TOKEN,
    publish,
    serving,
    settings,
    wait_subscribed,
)

LATENCY_LIMIT_S = 2.0


def _cue(athlete_id: str, index: int = 0) -> CueMessage:
    message = MessageFactory(athlete_id, clock=lambda: T0).message(ANNA_CUES[index])
    assert isinstance(message, CueMessage)
    return message


def test_the_hub_sends_each_follower_its_athletes() -> None:
    async def main() -> None:
        hub = LiveHub(queue_size=4)
        team, anna, ben = hub.connect(), hub.connect("anna"), hub.connect("ben")
        cue = _cue("anna")
        hub.publish("anna", Kind.CUES, cue)
        sent = json.loads(await team.next() or "")
        expected = {"athlete_id": "anna", "kind": "cues", "message": cue.model_dump(mode="json")}
        assert sent == expected
        assert await anna.next() == json.dumps(sent, separators=(",", ":"))
        assert ben.queue.empty()
        hub.disconnect(ben)
        assert hub.clients == 2

    asyncio.run(main())


def test_a_slow_client_is_dropped_and_never_slows_the_others() -> None:
    async def main() -> None:
        hub = LiveHub(queue_size=3)
        slow, fast = hub.connect(), hub.connect()
        received = []
        for i in range(10):
            hub.publish(f"a{i}", Kind.CUES, _cue(f"a{i}"))
            received.append(json.loads(await fast.next() or "")["athlete_id"])
        assert received == [f"a{i}" for i in range(10)]
        assert slow.dropped and not fast.dropped
        assert (hub.dropped_clients, hub.clients, hub.published) == (1, 1, 10)
        # The slow one gets what fitted in its queue, then the end of its stream.
        backlog = [json.loads(await slow.next() or "")["athlete_id"] for _ in range(3)]
        assert backlog == ["a0", "a1", "a2"]
        assert await slow.next() is None

    asyncio.run(main())


@pytest.mark.mosquitto
def test_a_cue_on_the_broker_reaches_the_websocket_within_2_s(
    tmp_path: Path, system_mosquitto: BrokerConfig
) -> None:
    athlete, other = f"live-{uuid.uuid4().hex[:12]}", f"other-{uuid.uuid4().hex[:12]}"
    app = create_app(settings(tmp_path, mqtt_url=f"mqtt://127.0.0.1:{system_mosquitto.port}"))
    with serving(app) as address:
        wait_subscribed(address)
        base = f"ws://{address}/api/live"
        with (
            connect(f"{base}?token={TOKEN}") as team,
            connect(f"{base}/{athlete}?token={TOKEN}") as one,
        ):
            noise, cue = _cue(other), _cue(athlete, 1)
            published_s = time.monotonic()
            publish(system_mosquitto, noise, cue)
            got = json.loads(one.recv(timeout=LATENCY_LIMIT_S))
            latency_s = time.monotonic() - published_s
            assert latency_s < LATENCY_LIMIT_S
            assert got == {
                "athlete_id": athlete,
                "kind": "cues",
                "message": cue.model_dump(mode="json"),
            }
            # The team stream has both athletes, in publication order (others may publish on
            # a shared broker: keep only ours).
            seen: list[str] = []
            while len(seen) < 2:
                item = json.loads(team.recv(timeout=LATENCY_LIMIT_S))
                if item["athlete_id"] in (athlete, other):
                    seen.append(item["athlete_id"])
            assert seen == [other, athlete]
