"""MQTT payloads: pydantic models, the single source of the JSON Schemas in ``docs/schemas/``.

Every message carries the schema version, its type, the athlete and session ids, the sensor
time (stream seconds) and the wall-clock time (UTC). Cues and rep summaries also carry a unique
``id`` and a per-session, per-type sequence number ``seq`` (1, 2, 3, …), so that a consumer can
drop duplicates (a re-sent message keeps its id) and see gaps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from bus.topics import ATHLETE_ID, Kind

AthleteId = Annotated[str, Field(pattern=ATHLETE_ID.pattern, description="Topic-safe athlete id.")]
SessionId = Annotated[str, Field(min_length=1, max_length=64, description="One session's id.")]


class Envelope(BaseModel):
    """Fields every message has."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields added within v1: a publisher sends them, a reader accepts their absence (a
    # publisher older than the field) and reads them as their default.
    added_in_v1: ClassVar[frozenset[str]] = frozenset()

    schema_version: Literal[1] = 1
    athlete_id: AthleteId
    session_id: SessionId
    sensor_time_s: float = Field(description="Stream time of the event, sensor clock (s).")
    wall_time: datetime = Field(description="When the publisher emitted it (UTC).")


class Quality(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: int = Field(ge=0)
    saturated_samples: int = Field(ge=0)
    gaps: int = Field(ge=0)
    lost_samples: int = Field(ge=0)


class MetricsMessage(Envelope):
    """About once per second, QoS 0: the latest wins, none is re-sent.

    ``trusted`` is the publisher's verdict on the cadence (present, supported by the signal's
    periodicity, few samples lost): a consumer shows an untrusted cadence as uncertain and never
    recomputes the verdict. A publisher older than the field sent none: its cadence is trusted
    when it has one.
    """

    added_in_v1: ClassVar[frozenset[str]] = frozenset(
        {
            "activity",
            "cadence_source",
            "cadence_confidence",
            "lost_fraction",
            "clipped_fraction",
            "trusted",
        }
    )

    type: Literal["metrics"] = "metrics"
    cadence_spm: float | None = Field(description="Steps per minute, both feet.")
    gct_ms: float | None = Field(
        description="Rolling ground contact time; null when unavailable (cadence from the "
        "signal's periodicity, cadence-only sensor)."
    )
    step_count: int = Field(ge=0)
    intensity_g: float | None = Field(description="Mean impact peak above 1 g.")
    speed_m_s: float | None
    quality: Quality
    activity: Literal["still", "walking", "running"] | None = Field(
        default=None, description="What the athlete is doing; null when not known."
    )
    cadence_source: Literal["contacts", "periodicity", "sensor"] | None = Field(
        default=None,
        description="contacts (confirmed by the periodicity), periodicity (the contacts "
        "disagreed or failed: no contact time), sensor (the sensor's own reading).",
    )
    cadence_confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="How well the signal's periodicity supports the cadence; null: unchecked.",
    )
    lost_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of this second's samples lost."
    )
    clipped_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of this second's samples clipped."
    )
    trusted: bool = Field(
        description="The cadence can be shown as fact. Absent (older publishers): true "
        "exactly when cadence_spm is not null."
    )

    @model_validator(mode="before")
    @classmethod
    def _trusted_of_older_publishers(cls, data: Any) -> Any:
        if isinstance(data, dict) and "trusted" not in data:
            return {**data, "trusted": data.get("cadence_spm") is not None}
        return data


class StepMessage(Envelope):
    """One ground contact (optional stream, QoS 0)."""

    type: Literal["step"] = "step"
    ic_s: float = Field(description="Initial contact, stream time (s).")
    to_s: float = Field(description="Toe-off, stream time (s).")
    gct_ms: float
    foot: Literal["left", "right"] | None
    confidence: float = Field(ge=0.0, le=1.0)
    impact_g: float | None


class CueMessage(Envelope):
    """Something the runner hears. QoS 1, held in the publisher's outbox until acknowledged."""

    type: Literal["cue"] = "cue"
    id: str = Field(min_length=1, max_length=64, description="Unique; kept when re-sent.")
    seq: int = Field(ge=1, description="1, 2, 3, … per session: a jump is a lost cue.")
    kind: Literal[
        "readiness",
        "get_ready",
        "countdown",
        "go",
        "rep_start",
        "ease",
        "rep_end",
        "set_done",
        "session_done",
    ]
    text: str
    rep: int | None = Field(ge=1)
    reps: int | None = Field(ge=1)
    at_s: float | None = Field(description="The moment the cue refers to (a rep's real start).")
    reason: str | None


class RepMessage(Envelope):
    """A finished rep's summary. QoS 1, held in the outbox until acknowledged."""

    type: Literal["rep"] = "rep"
    id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1)
    rep: int = Field(ge=1)
    start_s: float
    end_s: float
    duration_s: float = Field(ge=0.0)
    mean_cadence_spm: float | None = Field(
        description="Null when no step fell inside the rep, or the rep is not complete."
    )
    mean_gct_ms: float | None
    gct_drift_ms: float | None
    cadence_cv_pct: float | None = Field(ge=0.0)
    time_to_stride_cadence_s: float | None
    fatigue_flag: bool
    fatigue_reason: str | None
    missing_s: float = Field(
        default=0.0, ge=0.0, description="Seconds of the rep without trusted data."
    )
    complete: bool = Field(
        default=True,
        description="Measured throughout; false: a hole in the data, the rep is flagged and "
        "its means, drift and CV are null.",
    )

    added_in_v1: ClassVar[frozenset[str]] = frozenset({"missing_s", "complete"})


class SessionMessage(Envelope):
    """The session's state, retained: a new subscriber learns it at once."""

    type: Literal["session"] = "session"
    template: str | None = Field(description="Plan name, or null in auto mode.")
    state: str = Field(description="warmup, get_ready, rep, recovery, cooldown, done; easy/rep.")
    rep: int = Field(ge=0)
    reps: int | None = Field(ge=1)
    recovery_remaining_s: float | None


class StatusMessage(Envelope):
    """The publisher and its sensor, retained. The last will sets ``online`` to false."""

    type: Literal["status"] = "status"
    online: bool
    device: str
    placement: str
    sample_rate_hz: float | None
    quality: Quality | None
    metrics_dropped: int = Field(ge=0, description="Metrics not sent while disconnected.")
    outbox_pending: int = Field(ge=0, description="Cues and reps waiting for the broker.")


Message = Annotated[
    MetricsMessage | StepMessage | CueMessage | RepMessage | SessionMessage | StatusMessage,
    Field(discriminator="type"),
]
MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)  # type: ignore[arg-type, unused-ignore]

KIND_OF: dict[type[BaseModel], Kind] = {
    MetricsMessage: Kind.METRICS,
    StepMessage: Kind.STEPS,
    CueMessage: Kind.CUES,
    RepMessage: Kind.REPS,
    SessionMessage: Kind.SESSION,
    StatusMessage: Kind.STATUS,
}


def now() -> datetime:
    return datetime.now(UTC)
