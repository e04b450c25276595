"""The consumer side of the bus: validated messages, duplicates dropped, lost ones reported.

Cues and reps arrive at least once (QoS 1, re-sent from the publisher's outbox with the same
``id``), so a consumer drops the ones it has already seen; each session numbers them per type
(``seq`` 1, 2, 3, …), so a jump shows what was lost. Anything malformed on our topics is logged
and counted, never raised: one bad publisher must not stop a coach's dashboard.

``Decoder`` holds that logic without any network; ``Subscriber`` feeds it from an aiomqtt client,
optionally through an MQTT 5 shared subscription (``$share/<group>/…``: the broker gives each
message to one member of the group, see ``docs/scaling.md``).
"""

from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from bus.messages import KIND_OF, MESSAGE, CueMessage, Message, RepMessage
from bus.settings import BusError
from bus.topics import DELIVERY, Kind, parse, subscription

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 64 * 1024  # the production broker's message_size_limit (deploy/)
RECENT_IDS = 4096  # per stream: far more than one session's cues and reps
MAX_STREAMS = 1024  # (athlete, session, type) streams tracked at once, least recent forgotten
_LOG_CHARS = 200
# MQTT 5 forbids "/", "+" and "#" in a share name; we also keep it short and printable.
SHARE_GROUP = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SUBACK_FAILURE = 0x80  # a SUBACK code from 0x80 up refuses the subscription (3.1.1 and 5)

StreamKey = tuple[str, str, str]  # (athlete_id, session_id, message type: "cue" or "rep")


class Malformed(StrEnum):
    """Why a payload on one of our topics was refused."""

    OVERSIZE = "oversize"  # more than MAX_PAYLOAD_BYTES
    NOT_JSON = "not_json"  # not UTF-8 JSON at all
    SCHEMA = "schema"  # JSON, but no valid message
    KIND_MISMATCH = "kind_mismatch"  # e.g. a rep on a cues topic
    ATHLETE_MISMATCH = "athlete_mismatch"  # the payload's athlete_id is not the topic's


@dataclass(slots=True)
class _Stream:
    """One session's cues (or reps): recent ids, the highest seq, and the seqs not seen."""

    ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    last_seq: int = 0
    missing: set[int] = field(default_factory=set)


class Decoder:
    """Turn (topic, payload) into ``(athlete_id, kind, message)``, or ``None`` with a count.

    ``None`` means: not our topic (``ignored``), malformed (``malformed[reason]``), a cue/rep
    already seen (``duplicates``), or a retained session/status cleared (empty payload,
    ``cleared``). Gaps in ``seq`` are counted (``gaps``: one per jump) and the
    lost numbers kept in ``missing[(athlete_id, session_id, "cue" | "rep")]``; a lost number
    that arrives late (out of order) leaves ``missing`` again. ``seq`` starts at 1, so a consumer
    that joins in the middle of a session sees the earlier ones as missing, which they are for it.

    Memory is bounded: ``recent_ids`` ids and as many missing numbers per stream, and at most
    ``max_streams`` streams (the least recently active is forgotten first).
    """

    def __init__(self, *, recent_ids: int = RECENT_IDS, max_streams: int = MAX_STREAMS) -> None:
        if recent_ids < 1 or max_streams < 1:
            raise ValueError("recent_ids and max_streams must be >= 1")
        self.recent_ids = recent_ids
        self.max_streams = max_streams
        self.accepted: Counter[Kind] = Counter()
        self.malformed: Counter[Malformed] = Counter()
        self.ignored = 0
        self.cleared = 0
        self.duplicates = 0
        self.gaps = 0
        self._streams: OrderedDict[StreamKey, _Stream] = OrderedDict()

    @property
    def missing(self) -> dict[StreamKey, list[int]]:
        """The seq numbers not (yet) received, in order, per tracked stream (maybe empty)."""
        return {key: sorted(s.missing) for key, s in self._streams.items()}

    def decode(self, topic: str, payload: bytes) -> tuple[str, Kind, Message] | None:
        parsed = parse(topic)
        if parsed is None:
            self.ignored += 1
            return None
        athlete_id, kind = parsed
        if not payload and DELIVERY[kind].retain:
            # An empty retained payload is how MQTT clears a retained message: not an error.
            self.cleared += 1
            return None
        if len(payload) > MAX_PAYLOAD_BYTES:
            self._refuse(topic, Malformed.OVERSIZE, f"{len(payload)} bytes")
            return None
        try:
            message = MESSAGE.validate_json(payload)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            reason = Malformed.NOT_JSON if errors[0]["type"] == "json_invalid" else Malformed.SCHEMA
            self._refuse(topic, reason, str(errors[0]["msg"]) + _where(errors[0]["loc"]))
            return None
        if KIND_OF[type(message)] is not kind:
            self._refuse(topic, Malformed.KIND_MISMATCH, f"a {message.type} message")
            return None
        if message.athlete_id != athlete_id:
            self._refuse(topic, Malformed.ATHLETE_MISMATCH, f"from {message.athlete_id}")
            return None
        if isinstance(message, CueMessage | RepMessage) and not self._first_time(message):
            self.duplicates += 1
            return None
        self.accepted[kind] += 1
        return athlete_id, kind, message

    def _first_time(self, message: CueMessage | RepMessage) -> bool:
        """Record the message's id and seq; ``False`` if its id was seen recently."""
        key = (message.athlete_id, message.session_id, message.type)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
            if len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
        self._streams.move_to_end(key)
        if message.id in stream.ids:
            stream.ids.move_to_end(message.id)
            return False
        stream.ids[message.id] = None
        if len(stream.ids) > self.recent_ids:
            stream.ids.popitem(last=False)
        seq = message.seq
        if seq > stream.last_seq + 1:
            self.gaps += 1
            # A hostile or corrupt seq (say 10**9) must not allocate 10**9 numbers: keep the
            # latest ``recent_ids``, the same window as the duplicate check.
            stream.missing.update(range(max(stream.last_seq + 1, seq - self.recent_ids), seq))
            if len(stream.missing) > self.recent_ids:
                stream.missing = set(sorted(stream.missing)[-self.recent_ids :])
        stream.missing.discard(seq)
        stream.last_seq = max(stream.last_seq, seq)
        return True

    def _refuse(self, topic: str, reason: Malformed, detail: str) -> None:
        self.malformed[reason] += 1
        log.warning("malformed message on %s: %s (%s)", _cut(topic), reason.value, _cut(detail))


def _where(loc: tuple[int | str, ...]) -> str:
    return f" at {'.'.join(map(str, loc))}" if loc else ""


def _cut(text: str) -> str:
    """One short log line, whatever a client sent: no newlines, at most ``_LOG_CHARS``."""
    flat = text.encode("unicode_escape").decode("ascii")
    return flat if len(flat) <= _LOG_CHARS else flat[: _LOG_CHARS - 1] + "…"


class SubscriptionRefusedError(BusError, aiomqtt.MqttError):
    """The broker answered a subscription with a failure code (not authorised, no shared
    subscriptions, …); also an ``MqttError``, so that a consumer's reconnect loop retries it."""

    def __init__(self, refused: dict[str, int]) -> None:
        shown = ", ".join(f"{name} (reason code {code:#04x})" for name, code in refused.items())
        super().__init__(
            f"the broker refused the subscription to {shown}: check its ACL, and that it "
            "supports MQTT 5 shared subscriptions when a share group is set"
        )
        self.refused = refused


def check_share_group(group: str) -> str:
    """``group`` if it is a valid share name (letters, digits, ``_``, ``.``, ``-``; ≤ 64)."""
    if not SHARE_GROUP.fullmatch(group):
        raise ValueError(
            f"share group {group!r} must be 1-64 letters, digits, '_', '.' or '-' "
            "(MQTT 5 forbids '/', '+' and '#' in a share name)"
        )
    return group


def shared(group: str, topic_filter: str) -> str:
    """The MQTT 5 shared form of ``topic_filter``: ``$share/<group>/<topic_filter>``."""
    return f"$share/{check_share_group(group)}/{topic_filter}"


class Subscriber:
    """Every athlete's messages (or one athlete's) from a connected aiomqtt client.

    >>> async with aiomqtt.Client("localhost") as client:  # doctest: +SKIP
    ...     sub = Subscriber(client)
    ...     async for athlete_id, kind, message in sub.messages():
    ...         print(athlete_id, kind, message)

    Subscribes with QoS 1 (cues and reps keep their guarantee; metrics stay QoS 0). Call
    ``subscribe()`` first when the subscription must exist before something else happens (a
    publisher starting); ``messages()`` subscribes itself otherwise. The counters live in
    ``decoder``; ``missing``, ``malformed``, ``duplicates`` and ``gaps`` are shortcuts.

    ``kinds`` limits the subscription to those kinds (one filter each); ``share_group`` makes
    every filter a shared one, so that each message goes to one member of the group (the client
    must speak MQTT 5 to a broker that supports it). A refused filter raises
    :class:`SubscriptionRefusedError`.
    """

    def __init__(
        self,
        client: aiomqtt.Client,
        *,
        athlete_id: str = "+",
        decoder: Decoder | None = None,
        kinds: Iterable[Kind] | None = None,
        share_group: str | None = None,
    ) -> None:
        self.client = client
        plain = (
            [subscription(athlete_id)]
            if kinds is None
            else [subscription(athlete_id, kind) for kind in kinds]
        )
        if not plain:
            raise ValueError("kinds must name at least one kind of message")
        self.filters = tuple(
            plain if share_group is None else [shared(share_group, f) for f in plain]
        )
        self.decoder = decoder if decoder is not None else Decoder()
        self._subscribed = False

    @property
    def filter(self) -> str:
        """The topic filter, or the filters separated by ``", "`` (for logs)."""
        return ", ".join(self.filters)

    async def subscribe(self) -> None:
        if not self._subscribed:
            granted = await self.client.subscribe([(f, 1) for f in self.filters])
            codes = [c.value if isinstance(c, ReasonCode) else int(c) for c in granted]
            refused = {
                f: c for f, c in zip(self.filters, codes, strict=False) if c >= _SUBACK_FAILURE
            }
            if refused:
                raise SubscriptionRefusedError(refused)
            self._subscribed = True

    async def messages(self) -> AsyncIterator[tuple[str, Kind, Message]]:
        await self.subscribe()
        async for received in self.client.messages:
            payload = received.payload
            if not isinstance(payload, bytes | bytearray):
                # aiomqtt's type also allows str and numbers; what comes off the wire is bytes
                payload = str(payload).encode()
            decoded = self.decoder.decode(received.topic.value, bytes(payload))
            if decoded is not None:
                yield decoded

    @property
    def missing(self) -> dict[StreamKey, list[int]]:
        return self.decoder.missing

    @property
    def malformed(self) -> Counter[Malformed]:
        return self.decoder.malformed

    @property
    def duplicates(self) -> int:
        return self.decoder.duplicates

    @property
    def gaps(self) -> int:
        return self.decoder.gaps
