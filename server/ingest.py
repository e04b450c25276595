"""The MQTT consumer: every athlete's validated messages into the store, the new ones to the hub.

One long-lived task. ``bus.subscriber`` validates and de-duplicates (its counters
survive reconnections, so ``/api/health`` reports them for the server's whole life); the store
writes in a worker thread (the event loop keeps serving HTTP) and says whether a message was
new; only new ones go live, so a re-delivered cue is neither stored nor shown twice.

With a fixed client id the broker keeps a persistent session (``clean_session=False``, QoS 1
subscription): cues and reps published while the server restarts wait at the broker. paho
acknowledges a message when it arrives, before the store commits it: a crash in between loses
that message unless the publisher re-sends it, so the window is one message in flight.

With a share group the server is one of several replicas on one PostgreSQL database (see
``docs/scaling.md``), and it keeps two MQTT 5 connections, both with clean sessions:

- *share*: ``$share/<group>/…`` for metrics, steps, cues and reps. The broker gives each message
  to one replica of the group, which stores it. Clean, because Mosquitto keeps handing an
  offline persistent member its share (QoS 1 held until it returns, QoS 0 dropped): a replica
  that died would take part of the stream with it.
- *live*: a plain subscription to everything, so that every replica's hub shows every message
  (a coach's browser follows one replica, whichever replica stored it). The retained session
  and status messages arrive here, on every replica, and every replica stores them: the store
  writes them only when they change something, and since each replica sees them in the order
  the broker sent them, the last write is the latest message whatever the replicas' speeds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiomqtt
import numpy as np

from bus.messages import Message
from bus.publisher import client_options
from bus.settings import BrokerConfig
from bus.subscriber import Decoder, Subscriber, check_share_group
from bus.topics import Kind
from server.live import LiveHub

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
TIMEOUT_S = 10.0
DEFAULT_CLIENT_ID = "stridecue-server"
# What a share group splits between its replicas; the retained kinds go to every replica.
SHARED_KINDS = (Kind.METRICS, Kind.STEPS, Kind.CUES, Kind.REPS)
STATE_KINDS = (Kind.SESSION, Kind.STATUS)

Handler = Callable[[str, Kind, Message], Awaitable[None]]


class Ingest:
    """Subscribe to every athlete on ``broker``, ``save`` each message, fan new ones out.

    ``save(message) -> bool`` runs in a worker thread and returns ``True`` for a new message.
    A failing ``save`` is logged and counted (``store_errors``), never fatal. A lost broker is
    retried forever with exponential backoff (``backoff_min_s`` doubling to ``backoff_max_s``,
    with jitter so that replicas do not reconnect in step). ``subscribed`` is set while the
    subscription is active (both of them in a share group).

    With ``share_group`` (a replica, see the module's docstring) ``client_id`` is a prefix made
    unique per process, ``decoder`` counts the live view (every message), ``share_decoder``
    the replica's share, and ``stored`` the messages of its share that were new to the store.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        save: Callable[[Message], bool],
        hub: LiveHub,
        client_id: str | None = None,
        share_group: str | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        seed: int | None = None,
    ) -> None:
        if not 0 < backoff_min_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_min_s <= backoff_max_s")
        self.broker = broker
        self.save = save
        self.hub = hub
        self.share_group = None if share_group is None else check_share_group(share_group)
        if share_group is None:
            self.persistent = client_id is not None
            self.client_id = client_id or f"{DEFAULT_CLIENT_ID}-{uuid.uuid4().hex[:12]}"
        else:
            # Two connections with one id throw each other off the broker: replicas started
            # with the same settings must still differ.
            self.persistent = False
            self.client_id = f"{client_id or DEFAULT_CLIENT_ID}-{uuid.uuid4().hex[:8]}"
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.decoder = Decoder()
        self.share_decoder = None if share_group is None else Decoder()
        self.subscribed = asyncio.Event()
        self.connects = 0
        self.stored = 0
        self.store_errors = 0
        self._links = 1 if share_group is None else 2
        self._up: set[str] = set()
        self._rng = np.random.default_rng(seed)

    async def run(self) -> None:
        """Consume until cancelled."""
        if self.share_group is None or self.share_decoder is None:
            await self._consume("ingest", self.client_id, self._store_and_show, self.decoder)
            return
        async with asyncio.TaskGroup() as tasks:
            share = self._consume(
                "share",
                self.client_id,
                self._store_share,
                self.share_decoder,
                kinds=SHARED_KINDS,
                share_group=self.share_group,
            )
            live = self._consume("live", f"{self.client_id}-live", self._show_live, self.decoder)
            tasks.create_task(share, name="ingest-share")
            tasks.create_task(live, name="ingest-live")

    async def _consume(
        self,
        name: str,
        client_id: str,
        handle: Handler,
        decoder: Decoder,
        *,
        kinds: Iterable[Kind] | None = None,
        share_group: str | None = None,
    ) -> None:
        """One connection's loop: connect, subscribe, hand each message over, reconnect."""
        delay_s = self.backoff_min_s
        while True:
            try:
                async with self._client(client_id) as client:
                    self.connects += 1
                    delay_s = self.backoff_min_s
                    subscriber = Subscriber(
                        client, decoder=decoder, kinds=kinds, share_group=share_group
                    )
                    await subscriber.subscribe()
                    self._link_up(name)
                    log.info("subscribed to %s on %s", subscriber.filter, self.broker.url)
                    async for athlete_id, kind, message in subscriber.messages():
                        await handle(athlete_id, kind, message)
            except aiomqtt.MqttError as error:
                log.warning(
                    "MQTT broker %s (%s): %s; retrying in %.1f s",
                    self.broker.url,
                    name,
                    error,
                    delay_s,
                )
            finally:
                self._link_down(name)
            await asyncio.sleep(delay_s * self._rng.uniform(0.5, 1.0))
            delay_s = min(2.0 * delay_s, self.backoff_max_s)

    def _link_up(self, name: str) -> None:
        self._up.add(name)
        if len(self._up) == self._links:
            self.subscribed.set()

    def _link_down(self, name: str) -> None:
        self._up.discard(name)
        self.subscribed.clear()

    def _client(self, client_id: str) -> aiomqtt.Client:
        options: dict[str, Any] = client_options(
            self.broker,
            identifier=client_id,
            keepalive_s=KEEPALIVE_S,
            timeout_s=TIMEOUT_S,
            will=None,
        )
        if self.share_group is None:
            options["clean_session"] = not self.persistent
            return aiomqtt.Client(**options)
        # MQTT 5 for $share; without a session expiry property the session ends on disconnect.
        del options["clean_session"]
        return aiomqtt.Client(**options, protocol=aiomqtt.ProtocolVersion.V5, clean_start=True)

    async def _save(self, kind: Kind, message: Message) -> bool | None:
        """``save`` in a worker thread: whether the message was new, ``None`` if it failed."""
        try:
            return await asyncio.to_thread(self.save, message)
        except Exception:
            # One message the store refuses (or a database hiccup) must not stop the stream of
            # every other athlete: count it, log it once, go on.
            self.store_errors += 1
            log.exception("could not store a %s message of %s", kind.value, message.athlete_id)
            return None

    async def _store_and_show(self, athlete_id: str, kind: Kind, message: Message) -> None:
        """Alone: store everything, show what was new."""
        if await self._save(kind, message):
            self.stored += 1
            self.hub.publish(athlete_id, kind, message)

    async def _store_share(self, athlete_id: str, kind: Kind, message: Message) -> None:
        """In a group: store this replica's share (the live connection shows it)."""
        if await self._save(kind, message):
            self.stored += 1

    async def _show_live(self, athlete_id: str, kind: Kind, message: Message) -> None:
        """In a group: show everything the decoder let through; store the retained kinds.

        Whether another replica wrote a session or status first says nothing about what this
        replica's followers have seen, so these go live whatever the store answers.
        """
        if kind in STATE_KINDS:
            await self._save(kind, message)
        self.hub.publish(athlete_id, kind, message)
