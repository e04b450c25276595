"""The MQTT consumer: every athlete's validated messages into the store, the new ones to the hub.

One long-lived task. ``stridecue.mqtt.subscriber`` validates and de-duplicates (its counters
survive reconnections, so ``/api/health`` reports them for the server's whole life); the store
writes in a worker thread (the event loop keeps serving HTTP) and says whether a message was
new; only new ones go live, so a re-delivered cue is neither stored nor shown twice.

With a fixed client id the broker keeps a persistent session (``clean_session=False``, QoS 1
subscription): cues and reps published while the server restarts wait at the broker. paho
acknowledges a message when it arrives, before the store commits it: a crash in between loses
that message unless the publisher re-sends it, so the window is one message in flight.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import aiomqtt
import numpy as np

from server.live import LiveHub
from stridecue.mqtt.messages import Message
from stridecue.mqtt.publisher import client_options
from stridecue.mqtt.settings import BrokerConfig
from stridecue.mqtt.subscriber import Decoder, Subscriber
from stridecue.mqtt.topics import Kind

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
TIMEOUT_S = 10.0


class Ingest:
    """Subscribe to every athlete on ``broker``, ``save`` each message, fan new ones out.

    ``save(message) -> bool`` runs in a worker thread and returns ``True`` for a new message.
    A failing ``save`` is logged and counted (``store_errors``), never fatal. A lost broker is
    retried forever with exponential backoff (``backoff_min_s`` doubling to ``backoff_max_s``,
    with jitter so that replicas do not reconnect in step). ``subscribed`` is set while the
    subscription is active.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        save: Callable[[Message], bool],
        hub: LiveHub,
        client_id: str | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        seed: int | None = None,
    ) -> None:
        if not 0 < backoff_min_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_min_s <= backoff_max_s")
        self.broker = broker
        self.save = save
        self.hub = hub
        self.persistent = client_id is not None
        self.client_id = client_id or f"stridecue-server-{uuid.uuid4().hex[:12]}"
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.decoder = Decoder()
        self.subscribed = asyncio.Event()
        self.connects = 0
        self.stored = 0
        self.store_errors = 0
        self._rng = np.random.default_rng(seed)

    async def run(self) -> None:
        """Consume until cancelled."""
        delay_s = self.backoff_min_s
        while True:
            try:
                async with self._client() as client:
                    self.connects += 1
                    delay_s = self.backoff_min_s
                    subscriber = Subscriber(client, decoder=self.decoder)
                    await subscriber.subscribe()
                    self.subscribed.set()
                    log.info("subscribed to %s on %s", subscriber.filter, self.broker.url)
                    async for athlete_id, kind, message in subscriber.messages():
                        await self._handle(athlete_id, kind, message)
            except aiomqtt.MqttError as error:
                log.warning(
                    "MQTT broker %s: %s; retrying in %.1f s", self.broker.url, error, delay_s
                )
            finally:
                self.subscribed.clear()
            await asyncio.sleep(delay_s * self._rng.uniform(0.5, 1.0))
            delay_s = min(2.0 * delay_s, self.backoff_max_s)

    def _client(self) -> aiomqtt.Client:
        options = client_options(
            self.broker,
            identifier=self.client_id,
            keepalive_s=KEEPALIVE_S,
            timeout_s=TIMEOUT_S,
            will=None,
        )
        options["clean_session"] = not self.persistent
        return aiomqtt.Client(**options)

    async def _handle(self, athlete_id: str, kind: Kind, message: Message) -> None:
        try:
            new = await asyncio.to_thread(self.save, message)
        except Exception:
            # One message the store refuses (or a database hiccup) must not stop the stream of
            # every other athlete: count it, log it once, go on.
            self.store_errors += 1
            log.exception("could not store a %s message of %s", kind.value, athlete_id)
            return
        if new:
            self.stored += 1
            self.hub.publish(athlete_id, kind, message)
