"""The publisher against real brokers: full sessions, last will, broker restart, crash, errors.

Every cue and rep the engine emits is compared with what a subscriber received (after
de-duplication by ``id``): the same messages, field for field, ``seq`` 1..N without gaps.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from bus.broker import EmbeddedBroker, free_port
from bus.convert import MessageFactory
from bus.messages import (
    MESSAGE,
    CueMessage,
    Message,
    MetricsMessage,
    RepMessage,
    SessionMessage,
    StatusMessage,
)
from bus.outbox import Outbox
from bus.publisher import (
    BrokerAuthError,
    BrokerUnreachableError,
    Publisher,
    client_options,
)
from bus.settings import BrokerConfig
from bus.topics import Kind, subscription, topic
from dsp.events import Cue, CueKind, Event, Metrics, Placement, RepSummary, SignalQuality
from dsp.plan import SessionPlan
from firmware_sim.runner import SimulatedAthlete
from recordings.runner import build_engine, run_session
from recordings.sources import SimulatedSource
from tests.brokers import Mosquitto

pytestmark = pytest.mark.mosquitto

REPO = Path(__file__).resolve().parents[2]
PLAN = SessionPlan(name="nrr", warmup_s=60, reps=3, rep_s=20, min_recovery_s=40, cooldown_s=20)
DEADLINE_S = 15.0
QUALITY = SignalQuality(samples=100, saturated_samples=0, gaps=0, lost_samples=0)


@dataclass
class RecordingFactory(MessageFactory):
    """A factory that remembers the durable messages it built (what the subscriber must get)."""

    durable: list[CueMessage | RepMessage] = field(default_factory=list)

    def message(self, event: Event) -> Message | None:  # type: ignore[override]
        message = super().message(event)
        if isinstance(message, CueMessage | RepMessage):
            self.durable.append(message)
        return message


def athlete_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def publisher(
    broker: BrokerConfig, factory: MessageFactory, outbox: Outbox, **kw: object
) -> Publisher:
    return Publisher(
        broker,
        factory,
        outbox=outbox,
        device="sim",
        placement="foot",
        sample_rate_hz=200.0,
        **kw,  # type: ignore[arg-type]
    )


def metrics(t_s: float) -> Metrics:
    return Metrics(t_s, 170.0, 210.0, int(t_s * 3), 2.0, 3.5, QUALITY)


async def until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds (fails the test after ``timeout_s``)."""
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


class Inbox:
    """A subscriber's received messages (validated), reconnecting when the broker goes away."""

    def __init__(self, broker: BrokerConfig, athlete: str, identifier: str | None = None) -> None:
        self.broker = broker
        self.filter = subscription(athlete)
        self.identifier = identifier or f"sub-{uuid.uuid4().hex[:8]}"
        self.persistent = identifier is not None
        self.messages: list[tuple[Message, bool]] = []
        self.subscribed = asyncio.Event()
        self.connections = 0

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=self.identifier,
                    clean_session=not self.persistent,
                ) as client:
                    self.connections += 1
                    await client.subscribe(self.filter, qos=1)
                    self.subscribed.set()
                    async for m in client.messages:
                        assert isinstance(m.payload, bytes)
                        self.messages.append((MESSAGE.validate_json(m.payload), m.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.02)  # the broker is restarting: try again

    def durable(self) -> list[CueMessage | RepMessage]:
        """Cues and reps, de-duplicated by id, in arrival order."""
        seen: dict[str, CueMessage | RepMessage] = {}
        for message, _ in self.messages:
            if isinstance(message, CueMessage | RepMessage):
                seen.setdefault(message.id, message)
        return list(seen.values())

    def of(self, kind: type[Message]) -> list[tuple[Message, bool]]:
        return [(m, r) for m, r in self.messages if isinstance(m, kind)]


def assert_delivered(
    expected: Sequence[CueMessage | RepMessage], got: Sequence[CueMessage | RepMessage]
) -> None:
    """Exactly the expected messages, each type in seq order 1..N."""
    for kind in (CueMessage, RepMessage):
        want = [m for m in expected if isinstance(m, kind)]
        have = [m for m in got if isinstance(m, kind)]
        assert [m.seq for m in want] == list(range(1, len(want) + 1))
        assert have == want


def session_source(seed: int) -> SimulatedSource:
    return SimulatedSource(
        SimulatedAthlete(PLAN, Placement.FOOT, seed=seed, closed_loop=True), block_s=1.0
    )


class Sink:
    """The session runner's sink: the engine's events to the publisher, plus the session state."""

    def __init__(self, pub: Publisher, source: SimulatedSource) -> None:
        self.pub = pub
        self.engine = build_engine(source, PLAN)
        self.emitted: list[Cue | RepSummary] = []
        self.hooks: list[Callable[[Sequence[Event]], None]] = []

    def __call__(self, events: Sequence[Event]) -> None:
        for hook in self.hooks:
            hook(events)
        self.emitted.extend(e for e in events if isinstance(e, Cue | RepSummary))
        self.pub.handle(events)
        reps = self.engine.reps
        if events:
            self.pub.session_state(
                0.0,
                template="nrr",
                state=reps.state,
                rep=reps.rep,
                reps=reps.reps,
                recovery_remaining_s=reps.recovery_remaining_s,
            )


def check_engine_match(sink: Sink, factory: RecordingFactory) -> None:
    assert len(sink.emitted) == len(factory.durable) > 0
    for event, message in zip(sink.emitted, factory.durable, strict=True):
        if isinstance(event, Cue):
            assert isinstance(message, CueMessage)
            assert (message.kind, message.rep, message.sensor_time_s) == (
                event.kind.value,
                event.rep,
                event.t_s,
            )
        else:
            assert isinstance(message, RepMessage)
            assert (message.rep, message.end_s) == (event.rep, event.end_s)
    assert sum(isinstance(e, RepSummary) for e in sink.emitted) == PLAN.reps


# -- TLS ------------------------------------------------------------------------------------


def test_mqtts_configures_tls_with_the_ca_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    broker = BrokerConfig.from_url("mqtts://anna:secret@bus.example.org", ca_file=ca)
    options = client_options(broker, identifier="x", keepalive_s=10, timeout_s=1.0, will=None)
    assert options["tls_params"] == aiomqtt.TLSParameters(ca_certs=str(ca))
    assert (options["hostname"], options["port"]) == ("bus.example.org", 8883)
    plain = client_options(
        BrokerConfig.from_url("mqtt://h"), identifier="x", keepalive_s=10, timeout_s=1.0, will=None
    )
    assert plain["tls_params"] is None


# -- a whole session --------------------------------------------------------------------------


async def full_session(broker: BrokerConfig, tmp_path: Path) -> None:
    athlete = athlete_id()
    factory = RecordingFactory(athlete)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    inbox = Inbox(broker, athlete)
    try:
        async with asyncio.TaskGroup() as group:
            listener = group.create_task(inbox.run())
            await inbox.subscribed.wait()
            source = session_source(seed=3)
            async with publisher(broker, factory, outbox) as pub:
                sink = Sink(pub, source)
                await run_session(source, sink.engine, [sink])
                assert await pub.drain(DEADLINE_S)
                assert pub.outbox_pending == 0
                await until(
                    lambda: len(inbox.durable()) >= len(factory.durable), "every cue and rep"
                )
                check_engine_match(sink, factory)
                assert_delivered(factory.durable, inbox.durable())
                late = Inbox(broker, athlete)
                late_task = group.create_task(late.run())
                await until(
                    lambda: bool(late.of(StatusMessage) and late.of(SessionMessage)), "retained"
                )
                late_task.cancel()
                # amqtt hands a new subscriber each retained message twice: identical copies
                [(status, status_retained)] = set(late.of(StatusMessage))
                [(session, session_retained)] = set(late.of(SessionMessage))
                assert status_retained and session_retained
                assert isinstance(status, StatusMessage) and status.online
                assert isinstance(session, SessionMessage)
                assert (session.state, session.rep, session.reps) == ("done", PLAN.reps, PLAN.reps)
                assert pub.connects == 1 and pub.resent == 0
            listener.cancel()
    finally:
        outbox.close()
        async with aiomqtt.Client(broker.host, broker.port) as cleaner:  # leave no retained junk
            for kind in (Kind.STATUS, Kind.SESSION):
                await cleaner.publish(topic(athlete, kind), b"", qos=1, retain=True)


def test_full_session_through_the_system_mosquitto(
    system_mosquitto: BrokerConfig, tmp_path: Path
) -> None:
    asyncio.run(full_session(system_mosquitto, tmp_path))


def test_full_session_through_the_embedded_broker(
    embedded_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    asyncio.run(full_session(embedded_broker.config, tmp_path))


# -- failures --------------------------------------------------------------------------------

PUBLISHER_SCRIPT = """
import asyncio, sys
from dsp.events import Cue, CueKind, RepSummary
from bus.convert import MessageFactory
from bus.outbox import Outbox
from bus.publisher import Publisher
from bus.settings import BrokerConfig

port, athlete, path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
pub = Publisher(BrokerConfig("127.0.0.1", port), MessageFactory(athlete), outbox=Outbox(path),
                device="sim", placement="foot", sample_rate_hz=200.0, keepalive_s=2)

async def online():
    async with pub:
        print("up", flush=True)
        await asyncio.Event().wait()

if mode == "online":
    asyncio.run(online())
else:  # no broker yet: cues and a rep go to the outbox
    go = Cue(1.0, CueKind.GO, "Go", rep=1, reps=3)
    ease = Cue(21.0, CueKind.EASE, "Ease", rep=1, reps=3)
    pub.handle([go, ease, RepSummary(1, 1.2, 21.1, 19.9, 180.0, 200.0, 3.0, 1.5, 2.0, False, None)])
    print("stored", flush=True)
    sys.stdin.read()
"""


def run_publisher_process(
    port: int, athlete: str, outbox: Path, mode: str
) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER_SCRIPT, str(port), athlete, str(outbox), mode],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line in ("up", "stored"), line
    return child


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL


def test_last_will_marks_a_killed_publisher_offline(
    mosquitto_process: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    mosquitto = mosquitto_process()
    athlete = athlete_id()

    async def scenario() -> None:
        inbox = Inbox(mosquitto.broker, athlete)
        listener = asyncio.create_task(inbox.run())
        await inbox.subscribed.wait()
        child = run_publisher_process(mosquitto.port, athlete, tmp_path / "o.sqlite", "online")
        await until(lambda: bool(inbox.of(StatusMessage)), "status online")
        kill(child)
        await until(lambda: len(inbox.of(StatusMessage)) == 2, "the last will")
        listener.cancel()
        online, offline = (m for m, _ in inbox.of(StatusMessage))
        assert isinstance(online, StatusMessage) and isinstance(offline, StatusMessage)
        assert online.online and not offline.online
        assert offline.session_id == online.session_id
        late = Inbox(mosquitto.broker, athlete)
        late_task = asyncio.create_task(late.run())
        await until(lambda: bool(late.of(StatusMessage)), "retained status")
        late_task.cancel()
        [(retained, flag)] = late.of(StatusMessage)
        assert flag and isinstance(retained, StatusMessage) and not retained.online

    asyncio.run(scenario())


def test_broker_restart_mid_rep_loses_and_duplicates_nothing(
    mosquitto_process: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    mosquitto = mosquitto_process("persistence true\nautosave_interval 0")
    athlete = athlete_id()
    factory = RecordingFactory(athlete)
    outbox = Outbox(tmp_path / "o.sqlite")
    absorbed = []

    async def scenario() -> Publisher:
        inbox = Inbox(mosquitto.broker, athlete, identifier=f"coach-{athlete}")
        listener = asyncio.create_task(inbox.run())
        await inbox.subscribed.wait()
        source = session_source(seed=5)
        async with publisher(mosquitto.broker, factory, outbox, backoff_max_s=0.5) as pub:
            sink = Sink(pub, source)

            def outage(events: Sequence[Event]) -> None:
                for e in events:
                    if isinstance(e, Cue) and e.rep == 2 and e.kind is CueKind.GO:
                        mosquitto.stop()  # SIGTERM in the middle of rep 2 ...
                    if isinstance(e, RepSummary) and e.rep == 2:
                        absorbed.append(len(outbox))
                        mosquitto.start()  # ... back on the same port after its EASE and summary

            sink.hooks.append(outage)
            await run_session(source, sink.engine, [sink], speed=50)
            assert await pub.drain(DEADLINE_S)
            await until(lambda: len(inbox.durable()) >= len(factory.durable), "every cue and rep")
            check_engine_match(sink, factory)
        listener.cancel()
        assert inbox.connections >= 2  # the subscriber lived through the restart too
        assert_delivered(factory.durable, inbox.durable())
        return pub

    pub = asyncio.run(scenario())
    outbox.close()
    assert pub.connects >= 2
    assert absorbed and absorbed[0] >= 2  # EASE and the rep summary waited in the outbox


def test_a_killed_publishers_outbox_is_sent_by_the_next_one(
    mosquitto_process: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    mosquitto = mosquitto_process(start=False)
    athlete = athlete_id()
    path = tmp_path / "o.sqlite"
    kill(run_publisher_process(mosquitto.port, athlete, path, "offline"))
    box = Outbox(path)
    stored = [MESSAGE.validate_json(e.payload) for e in box.pending()]
    assert [type(m) for m in stored] == [CueMessage, CueMessage, RepMessage]
    mosquitto.start()

    async def scenario() -> Publisher:
        inbox = Inbox(mosquitto.broker, athlete)
        listener = asyncio.create_task(inbox.run())
        await inbox.subscribed.wait()
        async with publisher(mosquitto.broker, MessageFactory(athlete), box) as pub:
            assert await pub.drain(DEADLINE_S)
            await until(lambda: len(inbox.durable()) == 3, "the stored cues and rep")
        listener.cancel()
        assert inbox.durable() == stored  # same ids, seqs and payloads
        return pub

    pub = asyncio.run(scenario())
    assert pub.resent == 3 and len(box) == 0
    box.close()


def test_metrics_are_dropped_and_counted_while_disconnected(
    mosquitto_process: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    mosquitto = mosquitto_process()
    athlete = athlete_id()
    outbox = Outbox(tmp_path / "o.sqlite")

    async def scenario() -> None:
        async with publisher(mosquitto.broker, MessageFactory(athlete), outbox) as pub:
            mosquitto.stop()
            await until(lambda: not pub.connected, "the publisher to notice")
            pub.handle([metrics(float(t)) for t in range(5)])
            assert pub.metrics_dropped == 5
            mosquitto.start()
            await until(lambda: pub.connected, "the reconnection")
            inbox = Inbox(mosquitto.broker, athlete)
            listener = asyncio.create_task(inbox.run())
            await inbox.subscribed.wait()
            pub.handle([metrics(5.0)])
            await until(
                lambda: bool(inbox.of(MetricsMessage)) and bool(inbox.of(StatusMessage)), "metrics"
            )
            listener.cancel()
            [(status, _)] = inbox.of(StatusMessage)
            assert isinstance(status, StatusMessage) and status.online
            assert status.metrics_dropped == 5
            assert [m.sensor_time_s for m, _ in inbox.of(MetricsMessage)] == [5.0]
            assert pub.connects == 2 and pub.metrics_dropped == 5

    asyncio.run(scenario())
    outbox.close()


def test_wrong_password_raises_broker_auth_error(
    mosquitto_process: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    passwords = tmp_path / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwords), "anna", "right-secret"], check=True
    )
    passwords.chmod(0o600)
    mosquitto = mosquitto_process(f"allow_anonymous false\npassword_file {passwords}")
    outbox = Outbox(tmp_path / "o.sqlite")

    async def connect(password: str) -> int:
        broker = BrokerConfig("127.0.0.1", mosquitto.port, username="anna", password=password)
        async with publisher(broker, MessageFactory("anna"), outbox) as pub:
            return pub.connects

    with pytest.raises(BrokerAuthError) as info:
        asyncio.run(connect("wrong-secret"))
    text = str(info.value)
    assert f"mqtt://anna@127.0.0.1:{mosquitto.port}" in text
    assert "password" in text or "not authorised" in text
    assert "secret" not in text
    assert asyncio.run(connect("right-secret")) == 1  # the same setup with the right password
    outbox.close()


def test_unreachable_broker_raises_after_the_first_connect_timeout(tmp_path: Path) -> None:
    broker = BrokerConfig("127.0.0.1", free_port())
    outbox = Outbox(tmp_path / "o.sqlite")

    async def connect() -> None:
        async with publisher(broker, MessageFactory("anna"), outbox, first_connect_timeout_s=0.3):
            pass

    with pytest.raises(BrokerUnreachableError, match="refused") as info:
        asyncio.run(connect())
    assert broker.url in str(info.value)
    outbox.close()
