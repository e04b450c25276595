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


class Activity(StrEnum):
    """What the athlete is doing over the last seconds."""

    STILL = "still"
    WALKING = "walking"
    RUNNING = "running"


class CadenceSource(StrEnum):
    """Where a published cadence comes from."""

    CONTACTS = "contacts"  # the detected contacts, confirmed by the signal's periodicity
    PERIODICITY = "periodicity"  # the stride periodicity of the signal (contacts disagree or fail)
    SENSOR = "sensor"  # the sensor's own reading (a standard RSC footpod)


# A cadence is trusted when its confidence reaches this and at most this share of the second's
# samples were lost.
TRUSTED_CONFIDENCE = 0.5
TRUSTED_MAX_LOST = 0.2


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

    ``cadence_source`` says where the cadence comes from and ``cadence_confidence`` (0–1, ``None``
    when nothing could check it) how well the signal's own periodicity supports it. When the
    contacts disagree with the periodicity, the cadence is the periodicity's and ``gct_ms`` is
    ``None``: unavailable rather than wrong. ``activity`` is ``None`` until it is known.
    ``lost_fraction`` and ``clipped_fraction`` describe the samples of the second just ended.
    """

    t_s: float
    cadence_spm: float | None
    gct_ms: float | None
    step_count: int
    intensity_g: float | None
    speed_m_s: float | None
    quality: SignalQuality
    activity: Activity | None = None
    cadence_source: CadenceSource | None = None
    cadence_confidence: float | None = None
    lost_fraction: float = 0.0
    clipped_fraction: float = 0.0

    @property
    def trusted(self) -> bool:
        """The cadence can be shown as fact: present, supported by the signal, few samples lost."""
        return (
            self.cadence_spm is not None
            and self.lost_fraction <= TRUSTED_MAX_LOST
            and (self.cadence_confidence is None or self.cadence_confidence >= TRUSTED_CONFIDENCE)
        )


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
    """One finished rep, measured from the data between its detected start and end.

    ``missing_s`` is how long the rep went without trusted data (a hole in the stream, or
    seconds whose cadence the signal did not support). A rep that missed more than
    ``MAX_MISSING_S`` is flagged, not summarised: its means, drift and CV are ``None``.
    """

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
    missing_s: float = 0.0

    @property
    def complete(self) -> bool:
        """The rep was measured throughout (no hole long enough to bias its figures)."""
        return self.missing_s <= MAX_MISSING_S


MAX_MISSING_S = 2.0

Event = StepEvent | Metrics | Gap | Cue | RepSummary


def event_time_s(event: Event) -> float:
    """When ``event`` happened in stream time: a step's confirmation, a gap's end, a rep's end."""
    if isinstance(event, StepEvent):
        return event.emitted_s
    if isinstance(event, Gap | RepSummary):
        return event.end_s
    return event.t_s
