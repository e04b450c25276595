"""Open the bus for one session: embedded broker if asked, outbox, publisher, and a session sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from bus.broker import EmbeddedBroker
from bus.convert import MessageFactory
from bus.outbox import Outbox
from bus.publisher import Publisher
from bus.settings import BrokerConfig, Settings
from dsp.engine import StrideEngine
from dsp.events import Event, event_time_s


class SessionSink:
    """A session-runner sink: events to the publisher, then the session state if it changed."""

    def __init__(self, publisher: Publisher, engine: StrideEngine, template: str | None) -> None:
        self.publisher = publisher
        self.engine = engine
        self.template = template

    def __call__(self, events: Sequence[Event]) -> None:
        self.publisher.handle(events)
        if not events:
            return
        reps = self.engine.reps
        self.publisher.session_state(
            event_time_s(events[-1]),
            template=self.template,
            state=reps.state,
            rep=reps.rep,
            reps=reps.reps,
            recovery_remaining_s=reps.recovery_remaining_s,
        )


@asynccontextmanager
async def open_bus(
    settings: Settings,
    engine: StrideEngine,
    *,
    device: str,
    template: str | None,
    announce: Callable[[str], None] = print,
) -> AsyncIterator[SessionSink | None]:
    """A sink publishing the session, or ``None`` when no broker is configured.

    With ``mqtt_url = "embedded"`` an in-process broker is started on 127.0.0.1 and its address
    announced. On exit, durable messages still in the outbox get a few seconds to leave.
    """
    if settings.mqtt_url is None:
        yield None
        return
    async with AsyncExitStack() as stack:
        broker = settings.broker()
        if broker is None:
            embedded = await stack.enter_async_context(EmbeddedBroker())
            broker = BrokerConfig("127.0.0.1", embedded.port)
            announce(f"embedded MQTT broker listening on {embedded.url} (127.0.0.1 only)")
        data = settings.data_path
        data.mkdir(parents=True, exist_ok=True)
        outbox = Outbox(data / f"outbox-{settings.athlete_id}.sqlite")
        stack.callback(outbox.close)
        factory = MessageFactory(settings.athlete_id)
        publisher = await stack.enter_async_context(
            Publisher(
                broker,
                factory,
                outbox=outbox,
                device=device,
                placement=engine.placement.value,
                sample_rate_hz=engine.fs_hz,
                steps=settings.mqtt_steps,
            )
        )
        announce(
            f"publishing athlete {settings.athlete_id!r}, session {factory.session_id} "
            f"to {broker.url}"
        )
        yield SessionSink(publisher, engine, template)
        await publisher.drain(10.0)
