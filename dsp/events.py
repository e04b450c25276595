"""What the streaming core emits: steps, per-second metrics, gaps, cues and rep summaries.

All times are stream seconds (the sensor's timestamps, float64). Events are frozen, slotted
dataclasses; conversion to JSON lives at the edges (CLI, MQTT, HTTP), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Placement(StrEnum):
    """Where the sensor is worn.

    ``ankle`` is an alias of ``shank``; ``sacrum``, ``waist`` and ``chest`` of ``trunk``.
    """

    FOOT = "foot"
    SHANK = "shank"
    TRUNK = "trunk"

    @classmethod
    def parse(cls, name: str) -> Placement:
        aliases = {"ankle": "shank", "sacrum": "trunk", "waist": "trunk", "chest": "trunk"}
        key = name.strip().lower()
        return cls(aliases.get(key, key))

    @property
    def one_leg(self) -> bool:
        """A foot or shank sensor sees only its own leg's contacts (one per stride)."""
        return self is not Placement.TRUNK


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One ground contact.

    ``foot`` is the sensor's leg for a foot or shank sensor, ``None`` for a trunk sensor
    (it sees every step, left and right alike). ``emitted_s`` is the stream time of the
    sample that confirmed the step: ``emitted_s - to_s`` is the detection latency.
    ``impact_g`` is the landmark's peak acceleration (impact for foot and shank, vertical
    peak for trunk), the raw material of the impact-intensity metric.
    """

    ic_s: float
    to_s: float
    gct_ms: float
    foot: str | None
    confidence: float
    emitted_s: float
    impact_g: float | None = None


@dataclass(frozen=True, slots=True)
class SignalQuality:
    """Counts since the start of the stream."""

    samples: int
    saturated_samples: int
    gaps: int
    lost_samples: int


@dataclass(frozen=True, slots=True)
class Metrics:
    """Once per stream second.

    ``cadence_spm`` counts both feet (steps/min) whatever the placement; ``gct_ms`` is the
    rolling median contact time of recent steps (``None`` for cadence-only input);
    ``intensity_g`` is the rolling mean impact peak above 1 g (``None`` for cadence-only input).
    """

    t_s: float
    cadence_spm: float | None
    gct_ms: float | None
    step_count: int
    intensity_g: float | None
    speed_m_s: float | None
    quality: SignalQuality


@dataclass(frozen=True, slots=True)
class Gap:
    """A hole in the sample stream: nothing is detected across it."""

    start_s: float
    end_s: float
    lost_samples: int


class CueKind(StrEnum):
    READINESS = "readiness"
    GET_READY = "get_ready"
    COUNTDOWN = "countdown"
    GO = "go"
    REP_START = "rep_start"
    EASE = "ease"
    REP_END = "rep_end"
    SET_DONE = "set_done"
    SESSION_DONE = "session_done"


@dataclass(frozen=True, slots=True)
class Cue:
    """Something the runner hears.

    ``t_s`` is when it is issued; ``at_s`` is the moment it refers to when that differs
    (the detected real start or end of a rep lies a little before the cue announcing it).
    ``rep`` is 1-based; ``reps`` is the planned count, ``None`` in auto mode.
    """

    t_s: float
    kind: CueKind
    text: str
    rep: int | None = None
    reps: int | None = None
    at_s: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RepSummary:
    """One finished rep, measured from the data between its detected start and end."""

    rep: int
    start_s: float
    end_s: float
    duration_s: float
    mean_cadence_spm: float | None  # None: no cadence sample fell inside the rep
    mean_gct_ms: float | None
    gct_drift_ms: float | None
    cadence_cv_pct: float | None
    time_to_stride_cadence_s: float | None
    fatigue_flag: bool
    fatigue_reason: str | None


Event = StepEvent | Metrics | Gap | Cue | RepSummary


def event_time_s(event: Event) -> float:
    """When ``event`` happened in stream time: a step's confirmation, a gap's end, a rep's end."""
    if isinstance(event, StepEvent):
        return event.emitted_s
    if isinstance(event, Gap | RepSummary):
        return event.end_s
    return event.t_s
