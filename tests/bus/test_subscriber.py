"""The consumer: validation, de-duplication and gap detection, offline and against Mosquitto."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from datetime import UTC, datetime

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.convert import MessageFactory
from bus.messages import KIND_OF, CueMessage, Message, RepMessage
from bus.subscriber import MAX_PAYLOAD_BYTES, Decoder, Malformed, Subscriber
from bus.topics import Kind, topic
from dsp.events import Placement
from dsp.plan import SessionPlan
from firmware_sim.runner import SimulatedAthlete
from recordings.runner import build_engine, run_session
from recordings.sources import SimulatedSource

ATHLETE = "anna"
PLAN = SessionPlan(
    name="nrr", warmup_s=30, reps=2, rep_s=15, min_recovery_s=20, cooldown_s=10, baseline_hold_s=10
)
T0 = datetime(2025, 5, 1, 7, 30, tzinfo=UTC)


def session_messages(athlete_id: str = ATHLETE, seed: int = 3) -> list[Message]:
    """Every message type, built by the factory from a real simulated session's events."""
    source = SimulatedSource(
        SimulatedAthlete(PLAN, Placement.FOOT, seed=seed, closed_loop=True), block_s=1.0
    )
    factory = MessageFactory(athlete_id, clock=lambda: T0)
    messages: list[Message] = []

    def sink(events: object) -> None:
        assert isinstance(events, list)
        messages.extend(m for m in map(factory.message, events) if m is not None)

    asyncio.run(run_session(source, build_engine(source, PLAN), [sink]))
    messages.append(
        factory.session(
            70.0, template="nrr", state="done", rep=2, reps=2, recovery_remaining_s=None
        )
    )
    messages.append(
        factory.status(
            70.0,
            online=True,
            device="sim",
            placement="foot",
            sample_rate_hz=200.0,
            quality=None,
            metrics_dropped=0,
            outbox_pending=0,
        )
    )
    return messages


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    return session_messages()


def wire(message: Message) -> tuple[str, bytes]:
    return topic(message.athlete_id, KIND_OF[type(message)]), message.model_dump_json().encode()


def of_type(messages: list[Message], cls: type[CueMessage] | type[RepMessage]) -> list:
    return [m for m in messages if isinstance(m, cls)]


def test_every_message_type_decodes_to_itself(messages: list[Message]) -> None:
    decoder = Decoder()
    decoded = [decoder.decode(*wire(m)) for m in messages]
    assert decoded == [(ATHLETE, KIND_OF[type(m)], m) for m in messages]
    assert {type(m).__name__ for m in messages} == {c.__name__ for c in KIND_OF}
    assert sum(decoder.accepted.values()) == len(messages)
    assert not decoder.malformed and decoder.duplicates == decoder.gaps == 0
    streams = decoder.missing
    session_id = messages[0].session_id
    assert streams == {(ATHLETE, session_id, "cue"): [], (ATHLETE, session_id, "rep"): []}


def _cue(messages: list[Message]) -> CueMessage:
    return of_type(messages, CueMessage)[0]


GARBAGE = {
    "not json": (Kind.CUES, lambda cue: b"GO!", Malformed.NOT_JSON),
    "not utf-8": (Kind.CUES, lambda cue: b'{"type": "cue\xff"}', Malformed.NOT_JSON),
    "truncated": (Kind.CUES, lambda cue: cue.model_dump_json().encode()[:-1], Malformed.NOT_JSON),
    "empty cue": (Kind.CUES, lambda cue: b"", Malformed.NOT_JSON),
    "a list": (Kind.CUES, lambda cue: b"[]", Malformed.SCHEMA),
    "no type": (Kind.CUES, lambda cue: b'{"athlete_id": "anna"}', Malformed.SCHEMA),
    "missing field": (
        Kind.CUES,
        lambda cue: json.dumps(cue.model_dump(mode="json", exclude={"seq"})).encode(),
        Malformed.SCHEMA,
    ),
    "extra field": (
        Kind.CUES,
        lambda cue: json.dumps({**cue.model_dump(mode="json"), "x": 1}).encode(),
        Malformed.SCHEMA,
    ),
    "seq zero": (
        Kind.CUES,
        lambda cue: cue.model_copy(update={"seq": 0}).model_dump_json().encode(),
        Malformed.SCHEMA,
    ),
    "schema v2": (
        Kind.CUES,
        lambda cue: json.dumps({**cue.model_dump(mode="json"), "schema_version": 2}).encode(),
        Malformed.SCHEMA,
    ),
    "cue on reps": (Kind.REPS, lambda cue: cue.model_dump_json().encode(), Malformed.KIND_MISMATCH),
    "cue on status": (
        Kind.STATUS,
        lambda cue: cue.model_dump_json().encode(),
        Malformed.KIND_MISMATCH,
    ),
    "huge": (
        Kind.CUES,
        lambda cue: (
            cue.model_copy(update={"text": "x" * MAX_PAYLOAD_BYTES}).model_dump_json().encode()
        ),
        Malformed.OVERSIZE,
    ),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_is_counted_by_reason_and_logged_on_one_line(
    case: str, messages: list[Message], caplog: pytest.LogCaptureFixture
) -> None:
    kind, make, reason = GARBAGE[case]
    decoder = Decoder()
    name = topic(ATHLETE, kind)
    with caplog.at_level(logging.WARNING, logger="bus.subscriber"):
        assert decoder.decode(name, make(_cue(messages))) is None
    assert decoder.malformed == {reason: 1}
    assert not decoder.accepted
    [record] = caplog.records
    line = record.getMessage()
    assert name in line and reason.value in line
    assert "\n" not in line and len(line) < 600  # a huge payload does not flood the log


def test_another_athletes_payload_on_my_topic_is_malformed(messages: list[Message]) -> None:
    decoder = Decoder()
    _, payload = wire(_cue(messages))
    assert decoder.decode(topic("ben", Kind.CUES), payload) is None
    assert decoder.malformed == {Malformed.ATHLETE_MISMATCH: 1}


def test_other_topics_are_ignored_not_counted_malformed() -> None:
    decoder = Decoder()
    for name in ("stridecue/v2/athletes/anna/cues", "home/kitchen/temp", "stridecue/v1/x"):
        assert decoder.decode(name, b"garbage") is None
    assert decoder.ignored == 3 and not decoder.malformed


def test_an_empty_retained_payload_clears_and_is_not_malformed() -> None:
    decoder = Decoder()
    assert decoder.decode(topic(ATHLETE, Kind.STATUS), b"") is None
    assert decoder.decode(topic(ATHLETE, Kind.SESSION), b"") is None
    assert decoder.cleared == 2 and not decoder.malformed


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(Kind)), payload=st.binary(max_size=2048))
def test_arbitrary_bytes_on_our_topics_never_raise(kind: Kind, payload: bytes) -> None:
    decoder = Decoder()
    assert decoder.decode(topic(ATHLETE, kind), payload) is None
    assert sum(decoder.malformed.values()) + decoder.cleared == 1


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_arbitrary_json_objects_never_raise(data: st.DataObject) -> None:
    leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
    keys = st.sampled_from(["type", "athlete_id", "seq", "id", "kind", "schema_version", "x"])
    body = data.draw(st.dictionaries(keys, value | st.sampled_from(["cue", "anna", "go"])))
    decoder = Decoder()
    assert decoder.decode(topic(ATHLETE, Kind.CUES), json.dumps(body).encode()) is None
    assert sum(decoder.malformed.values()) == 1


def test_duplicates_are_dropped_and_counted(messages: list[Message]) -> None:
    cues = of_type(messages, CueMessage)
    reps = of_type(messages, RepMessage)
    decoder = Decoder()
    # A publisher re-sends what it was not sure about: the same ids, again and out of order.
    stream = [*cues, *reps, *cues[-3:], reps[0], *cues[:2]]
    delivered = [d[2] for d in (decoder.decode(*wire(m)) for m in stream) if d is not None]
    assert delivered == [*cues, *reps]
    assert decoder.duplicates == 6
    assert decoder.gaps == 0 and all(not m for m in decoder.missing.values())


def test_a_seq_jump_reports_the_missing_numbers(messages: list[Message]) -> None:
    cues = of_type(messages, CueMessage)
    assert [c.seq for c in cues] == list(range(1, len(cues) + 1)) and len(cues) >= 8
    decoder = Decoder()
    key = (ATHLETE, cues[0].session_id, "cue")
    for cue in (cues[0], cues[1], cues[3], cues[6]):  # seq 1, 2, 4, 7
        assert decoder.decode(*wire(cue)) is not None
    assert decoder.missing[key] == [3, 5, 6]
    assert decoder.gaps == 2
    # A lost one that comes late (QoS 1 redelivery can reorder) is no longer missing.
    assert decoder.decode(*wire(cues[4])) is not None
    assert decoder.missing[key] == [3, 6]
    # Reps are numbered on their own: no rep is missing.
    rep = of_type(messages, RepMessage)[0]
    assert decoder.decode(*wire(rep)) is not None
    assert decoder.missing[(ATHLETE, rep.session_id, "rep")] == []


def test_a_consumer_joining_mid_session_sees_the_earlier_ones_as_missing(
    messages: list[Message],
) -> None:
    cues = of_type(messages, CueMessage)
    decoder = Decoder()
    decoder.decode(*wire(cues[3]))
    assert decoder.missing[(ATHLETE, cues[0].session_id, "cue")] == [1, 2, 3]


def test_memory_is_bounded(messages: list[Message]) -> None:
    cue = _cue(messages)
    decoder = Decoder(recent_ids=4, max_streams=2)
    copies = [cue.model_copy(update={"id": f"c{i}", "seq": i}) for i in range(1, 7)]
    for c in copies:
        decoder.decode(*wire(c))
    # c1 and c2 fell out of the 4 recent ids: a very late copy is accepted again.
    assert decoder.decode(*wire(copies[0])) is not None
    assert decoder.decode(*wire(copies[5])) is None
    # A corrupt seq does not allocate a billion numbers.
    decoder.decode(*wire(cue.model_copy(update={"id": "far", "seq": 10**9})))
    key = (ATHLETE, cue.session_id, "cue")
    assert decoder.missing[key] == list(range(10**9 - 4, 10**9))
    # Streams of other sessions push the least recent one out.
    for session in ("s2", "s3"):
        decoder.decode(*wire(cue.model_copy(update={"session_id": session})))
    assert key not in decoder.missing and len(decoder.missing) == 2


# --- against the system Mosquitto -------------------------------------------------------------

HOST, PORT = "127.0.0.1", 1883


def _mosquitto_listening() -> bool:
    try:
        socket.create_connection((HOST, PORT), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.mosquitto
@pytest.mark.skipif(not _mosquitto_listening(), reason="no Mosquitto on 127.0.0.1:1883")
def test_subscriber_yields_only_the_good_messages() -> None:
    athlete = f"test-{uuid.uuid4().hex[:12]}"  # the broker is shared: a topic tree of our own
    every = session_messages(athlete)
    cues = of_type(every, CueMessage)
    good = [
        *(next(m for m in every if isinstance(m, cls)) for cls in KIND_OF if cls is not CueMessage),
        *cues[:3],
    ]
    cue_topic = topic(athlete, Kind.CUES)
    garbage = [
        (cue_topic, b"not json"),
        (cue_topic, b'{"type": "cue"}'),
        (topic(athlete, Kind.REPS), wire(cues[0])[1]),
        (cue_topic, wire(cues[0].model_copy(update={"athlete_id": "someone-else"}))[1]),
        (cue_topic, b"x" * (MAX_PAYLOAD_BYTES + 1)),
    ]
    # One publisher, QoS 1, in order: garbage, good ones, two duplicates, the last good one.
    outgoing = [*garbage, *map(wire, good[:-1]), wire(cues[1]), wire(cues[0]), wire(good[-1])]

    async def scenario() -> tuple[list[Message], Subscriber]:
        async with (
            aiomqtt.Client(HOST, PORT) as consumer,
            aiomqtt.Client(HOST, PORT) as producer,
        ):
            sub = Subscriber(consumer, athlete_id=athlete)
            await sub.subscribe()
            for name, payload in outgoing:
                await producer.publish(name, payload, qos=1)
            received: list[Message] = []
            async with asyncio.timeout(10):
                async for athlete_id, _kind, message in sub.messages():
                    assert athlete_id == athlete
                    received.append(message)
                    if len(received) == len(good):
                        break
            return received, sub

    received, sub = asyncio.run(scenario())
    assert received == good
    assert sub.malformed == {
        Malformed.NOT_JSON: 1,
        Malformed.SCHEMA: 1,
        Malformed.KIND_MISMATCH: 1,
        Malformed.ATHLETE_MISMATCH: 1,
        Malformed.OVERSIZE: 1,
    }
    assert sub.duplicates == 2 and sub.gaps == 0
