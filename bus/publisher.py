"""Publish one athlete's session to an MQTT broker, surviving broker restarts and network loss.

Cues and rep summaries are durable: they go through the on-disk :class:`Outbox` and leave it only
when the broker acknowledged them (QoS 1), so after a broker restart or a crash of this process
they are sent again with the same ``id`` and ``seq`` (at least once; consumers de-duplicate by
``id``). Metrics and steps are "latest wins" (QoS 0): while disconnected they are dropped and
counted in ``metrics_dropped`` / ``steps_dropped``. The retained ``status`` message says whether
the publisher is online; the broker's last will turns it to ``online: false`` when the connection
dies without a goodbye.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel

from bus.convert import MessageFactory
from bus.messages import KIND_OF, SessionMessage
from bus.outbox import Outbox
from bus.settings import BrokerConfig, BusError
from bus.topics import DELIVERY, Kind, topic
from dsp.events import Cue, Event, Gap, Metrics, RepSummary, SignalQuality, StepEvent

log = logging.getLogger(__name__)

# CONNACK refusals that retrying cannot fix: MQTT 3.1.1 return codes and their MQTT 5 reason codes.
_AUTH_CAUSES = {4: "bad user name or password", 5: "not authorised"}
_AUTH_CAUSES |= {134: _AUTH_CAUSES[4], 135: _AUTH_CAUSES[5]}


class BrokerAuthError(BusError):
    """The broker refused our credentials: retrying cannot help."""

    def __init__(self, broker: BrokerConfig, cause: str) -> None:
        super().__init__(
            f"MQTT broker {broker.url} refused the connection: {cause} "
            "(check the user name and password in the broker URL, and the broker's ACL)"
        )
        self.url = broker.url
        self.cause = cause


class BrokerUnreachableError(BusError):
    """The first connection did not succeed within the allowed time."""

    def __init__(self, broker: BrokerConfig, cause: str, waited_s: float) -> None:
        super().__init__(
            f"cannot reach the MQTT broker {broker.url} after {waited_s:.1f} s: {cause} "
            "(is it running, and is the host and port right?)"
        )
        self.url = broker.url
        self.cause = cause


def _auth_cause(error: aiomqtt.MqttError) -> str | None:
    if not isinstance(error, MqttConnectError):
        return None
    code = error.rc.value if isinstance(error.rc, ReasonCode) else error.rc
    return None if code is None else _AUTH_CAUSES.get(int(code))


def _first_error(group: BaseExceptionGroup[aiomqtt.MqttError]) -> aiomqtt.MqttError:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, aiomqtt.MqttError)
    return error


def client_options(
    broker: BrokerConfig,
    *,
    identifier: str,
    keepalive_s: int,
    timeout_s: float,
    will: aiomqtt.Will | None,
) -> dict[str, Any]:
    """The ``aiomqtt.Client`` keyword arguments for ``broker`` (TLS for ``mqtts://``)."""
    tls = None
    if broker.tls:
        tls = aiomqtt.TLSParameters(
            ca_certs=None if broker.ca_file is None else str(broker.ca_file)
        )
    return {
        "hostname": broker.host,
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "identifier": identifier,
        "keepalive": keepalive_s,
        "timeout": timeout_s,
        "will": will,
        "tls_params": tls,
        "clean_session": True,  # durability lives in our outbox, not in a broker session
    }


class Publisher:
    """One athlete's session on the bus; use as ``async with Publisher(...) as pub``.

    ``__aenter__`` returns once the first connection is up; it raises :class:`BrokerAuthError`
    at once when the broker refuses the credentials and :class:`BrokerUnreachableError` after
    ``first_connect_timeout_s`` of failed attempts. Later losses are retried forever with
    exponential backoff (``backoff_min_s`` doubling to ``backoff_max_s``, with jitter): the
    session goes on. :meth:`handle` and :meth:`session_state` never block and never raise on
    broker trouble. Leaving the context publishes ``status`` with ``online: false`` and
    disconnects; call :meth:`drain` first to wait for what is still queued.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        factory: MessageFactory,
        *,
        outbox: Outbox,
        device: str,
        placement: str,
        sample_rate_hz: float | None,
        steps: bool = False,
        client_id: str | None = None,
        keepalive_s: int = 30,
        first_connect_timeout_s: float = 5.0,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
        timeout_s: float = 5.0,
        queue_size: int = 64,
    ) -> None:
        self.broker = broker
        self.factory = factory
        self.outbox = outbox
        self.device = device
        self.placement = placement
        self.sample_rate_hz = sample_rate_hz
        self.steps = steps
        self.client_id = client_id or f"stridecue-{factory.athlete_id}-{uuid.uuid4().hex[:8]}"
        self.keepalive_s = keepalive_s
        self.first_connect_timeout_s = first_connect_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.metrics_dropped = 0
        self.steps_dropped = 0
        self.resent = 0
        self.connects = 0
        self.connected = False
        self._queue: asyncio.Queue[BaseModel] = asyncio.Queue(maxsize=queue_size)
        self._quality: SignalQuality | None = None
        self._sensor_time_s = 0.0
        self._session: SessionMessage | None = None  # the latest, not yet published
        self._session_key: tuple[str, int] | None = None
        self._tried: set[int] = set()  # outbox ids already handed to a broker (maybe received)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closing = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._stack: AsyncExitStack | None = None
        self._rng = random.Random()

    # -- what the session runner calls -------------------------------------------------------

    @property
    def outbox_pending(self) -> int:
        return len(self.outbox)

    def handle(self, events: Sequence[Event]) -> None:
        """Queue ``events``: cues and reps durably, metrics (and steps) only while connected."""
        for event in events:
            if isinstance(event, Gap):
                continue
            if isinstance(event, StepEvent) and not self.steps:
                continue
            message = self.factory.message(event)
            assert message is not None
            self._sensor_time_s = message.sensor_time_s
            if isinstance(event, Cue | RepSummary):
                self._put_durable(message)
                continue
            if isinstance(event, Metrics):
                self._quality = event.quality
            if not self.connected:
                self._count_drop(message)
                continue
            if self._queue.full():
                self._count_drop(self._queue.get_nowait())
            self._queue.put_nowait(message)
            self._kick()

    def session_state(
        self,
        sensor_time_s: float,
        *,
        template: str | None,
        state: str,
        rep: int,
        reps: int | None,
        recovery_remaining_s: float | None,
    ) -> None:
        """Publish the retained ``session`` message when the state or the rep changed."""
        if (state, rep) == self._session_key:
            return
        self._session_key = (state, rep)
        self._session = self.factory.session(
            sensor_time_s,
            template=template,
            state=state,
            rep=rep,
            reps=reps,
            recovery_remaining_s=recovery_remaining_s,
        )
        self._kick()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty and everything queued is sent; ``False`` on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # -- the context -------------------------------------------------------------------------

    async def __aenter__(self) -> Publisher:
        self._tried = {entry.id for entry in self.outbox.pending()}  # a previous run's leftovers
        self._first = asyncio.get_running_loop().create_future()
        first = self._first
        async with AsyncExitStack() as stack:
            group = await stack.enter_async_context(asyncio.TaskGroup())
            group.create_task(self._run(), name=f"mqtt-publisher-{self.factory.athlete_id}")
            try:
                await asyncio.wait([first])
            finally:
                if not first.done() or first.exception() is not None:
                    self._closing.set()
                    self._wake.set()
            if first.exception() is None:
                self._stack = stack.pop_all()
                return self
        # Raised outside the task group, which would wrap it in an ExceptionGroup.
        error = first.exception()
        assert error is not None
        raise error

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        self._wake.set()
        assert self._stack is not None
        await self._stack.aclose()

    # -- internals ---------------------------------------------------------------------------

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    def _count_drop(self, message: BaseModel) -> None:
        if KIND_OF[type(message)] is Kind.STEPS:
            self.steps_dropped += 1
        else:
            self.metrics_dropped += 1

    def _put_durable(self, message: BaseModel) -> None:
        kind = KIND_OF[type(message)]
        self.outbox.put(
            topic(self.factory.athlete_id, kind),
            message.model_dump_json().encode(),
            DELIVERY[kind].qos,
        )
        self._kick()

    def _status(self, *, online: bool) -> tuple[str, bytes]:
        message = self.factory.status(
            self._sensor_time_s,
            online=online,
            device=self.device,
            placement=self.placement,
            sample_rate_hz=self.sample_rate_hz,
            quality=self._quality,
            metrics_dropped=self.metrics_dropped,
            outbox_pending=len(self.outbox),
        )
        return topic(self.factory.athlete_id, Kind.STATUS), message.model_dump_json().encode()

    def _client(self) -> aiomqtt.Client:
        will_topic, will_payload = self._status(online=False)
        will = aiomqtt.Will(will_topic, will_payload, qos=1, retain=True)
        options = client_options(
            self.broker,
            identifier=self.client_id,
            keepalive_s=self.keepalive_s,
            timeout_s=self.timeout_s,
            will=will,
        )
        return aiomqtt.Client(**options)

    async def _run(self) -> None:
        """Connect, serve, reconnect, until closing."""
        assert self._first is not None
        loop = asyncio.get_running_loop()
        started_s = loop.time()
        delay_s = self.backoff_min_s
        while not self._closing.is_set():
            error = await self._connection()
            if error is None:
                return
            if not self.connects:
                cause = _auth_cause(error)
                remaining_s = started_s + self.first_connect_timeout_s - loop.time()
                if cause is not None or remaining_s <= 0:
                    waited_s = loop.time() - started_s
                    self._first.set_exception(
                        BrokerAuthError(self.broker, cause)
                        if cause is not None
                        else BrokerUnreachableError(self.broker, str(error), waited_s)
                    )
                    return
                delay_s = min(delay_s, remaining_s)
            if self.connected:
                log.warning("lost MQTT broker %s: %s; reconnecting", self.broker.url, error)
                self.connected = False
                delay_s = self.backoff_min_s
                while not self._queue.empty():  # stale by the time we are back: latest wins
                    self._count_drop(self._queue.get_nowait())
            with contextlib.suppress(TimeoutError):
                jittered_s = delay_s * self._rng.uniform(0.5, 1.0)
                await asyncio.wait_for(self._closing.wait(), jittered_s)
            delay_s = min(2.0 * delay_s, self.backoff_max_s)

    async def _connection(self) -> aiomqtt.MqttError | None:
        """One connection's life: ``None`` after a clean goodbye, else the error that ended it."""
        assert self._first is not None
        error: aiomqtt.MqttError | None = None
        try:
            async with self._client() as client, asyncio.TaskGroup() as group:
                self.connects += 1
                self.connected = True
                log.info("connected to MQTT broker %s as %s", self.broker.url, self.client_id)
                watcher = group.create_task(self._watch(client), name="mqtt-publisher-watch")
                await self._publish(client, *self._status(online=True), qos=1, retain=True)
                if not self._first.done():
                    self._first.set_result(None)
                await self._send(client)
                await self._publish(client, *self._status(online=False), qos=1, retain=True)
                watcher.cancel()
            log.info("disconnected from MQTT broker %s", self.broker.url)
        except* aiomqtt.MqttError as group:
            error = _first_error(group)
        return error

    async def _watch(self, client: aiomqtt.Client) -> None:
        # We subscribe to nothing: the iterator only wakes to raise MqttError when the connection
        # drops, which cancels a publish that would otherwise wait for its timeout.
        async for _ in client.messages:
            pass

    async def _publish(
        self, client: aiomqtt.Client, name: str, payload: bytes, *, qos: int, retain: bool = False
    ) -> None:
        await client.publish(name, payload, qos=qos, retain=retain, timeout=self.timeout_s)

    async def _send(self, client: aiomqtt.Client) -> None:
        """Send the outbox (in order), then the session state, then the queued stream, until
        closing."""
        while True:
            self._wake.clear()
            pending = self.outbox.pending()
            self._tried &= {entry.id for entry in pending}
            for entry in pending:
                if entry.id in self._tried:
                    self.resent += 1
                self._tried.add(entry.id)
                await self._publish(client, entry.topic, entry.payload, qos=entry.qos)
                self.outbox.ack(entry.id)
                self._tried.discard(entry.id)
            if self._session is not None:
                session, self._session = self._session, None
                try:
                    await self._publish(
                        client,
                        topic(self.factory.athlete_id, Kind.SESSION),
                        session.model_dump_json().encode(),
                        qos=1,
                        retain=True,
                    )
                except BaseException:
                    if self._session is None:
                        self._session = session
                    raise
            while not self._queue.empty():
                message = self._queue.get_nowait()
                kind = KIND_OF[type(message)]
                await self._publish(
                    client,
                    topic(self.factory.athlete_id, kind),
                    message.model_dump_json().encode(),
                    qos=DELIVERY[kind].qos,
                )
            if self._wake.is_set():
                continue
            if not len(self.outbox):
                self._idle.set()
            if self._closing.is_set():
                return
            await self._wake.wait()
