"""The MQTT topic layout (see ``docs/mqtt.md``): one versioned root, one subtree per athlete.

``stridecue/v1/athletes/{athlete_id}/{kind}`` with kind one of ``metrics`` (about 1 Hz, QoS 0),
``steps`` (optional, QoS 0), ``cues`` (QoS 1), ``reps`` (QoS 1), ``session`` (retained, QoS 1) and
``status`` (retained, QoS 1, the publisher's last will marks the athlete offline).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

ROOT = "stridecue/v1"
ATHLETE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Kind(StrEnum):
    METRICS = "metrics"
    STEPS = "steps"
    CUES = "cues"
    REPS = "reps"
    SESSION = "session"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a kind of message travels."""

    qos: int
    retain: bool
    durable: bool  # held in the publisher's outbox until the broker acknowledged it


DELIVERY: dict[Kind, Delivery] = {
    Kind.METRICS: Delivery(qos=0, retain=False, durable=False),
    Kind.STEPS: Delivery(qos=0, retain=False, durable=False),
    Kind.CUES: Delivery(qos=1, retain=False, durable=True),
    Kind.REPS: Delivery(qos=1, retain=False, durable=True),
    Kind.SESSION: Delivery(qos=1, retain=True, durable=False),
    Kind.STATUS: Delivery(qos=1, retain=True, durable=False),
}


def check_athlete_id(athlete_id: str) -> str:
    """``athlete_id`` if it is a valid topic level (lower-case letters, digits, ``-``, ``_``)."""
    if not ATHLETE_ID.fullmatch(athlete_id):
        raise ValueError(
            f"athlete id {athlete_id!r} must be 1-64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit (it is an MQTT topic level and a broker user name)"
        )
    return athlete_id


def topic(athlete_id: str, kind: Kind) -> str:
    return f"{ROOT}/athletes/{check_athlete_id(athlete_id)}/{kind.value}"


def subscription(athlete_id: str = "+", kind: Kind | str = "#") -> str:
    """A filter: every athlete and kind by default, e.g. ``stridecue/v1/athletes/+/#``."""
    level = kind.value if isinstance(kind, Kind) else kind
    return f"{ROOT}/athletes/{athlete_id}/{level}"


def parse(name: str) -> tuple[str, Kind] | None:
    """``(athlete_id, kind)`` of one of our topics, ``None`` for any other topic."""
    parts = name.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{ROOT}/athletes":
        return None
    athlete_id, kind = parts[3], parts[4]
    if not ATHLETE_ID.fullmatch(athlete_id) or kind not in Kind.__members__.values():
        return None
    return athlete_id, Kind(kind)
