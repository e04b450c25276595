"""Engine events to MQTT messages, for one athlete's session."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bus.messages import (
    CueMessage,
    MetricsMessage,
    Quality,
    RepMessage,
    SessionMessage,
    StatusMessage,
    StepMessage,
    now,
)
from bus.topics import check_athlete_id
from dsp.events import Cue, Event, Gap, Metrics, RepSummary, SignalQuality, StepEvent


def new_session_id() -> str:
    return uuid.uuid4().hex


def _quality(q: SignalQuality) -> Quality:
    return Quality(
        samples=q.samples,
        saturated_samples=q.saturated_samples,
        gaps=q.gaps,
        lost_samples=q.lost_samples,
    )


@dataclass
class MessageFactory:
    """Builds the messages of one session, numbering cues and reps (``seq``) as they come.

    ``clock`` gives the wall-clock time of each message (UTC).
    """

    athlete_id: str
    session_id: str = field(default_factory=new_session_id)
    clock: Callable[[], datetime] = now
    cue_seq: int = 0
    rep_seq: int = 0

    def __post_init__(self) -> None:
        check_athlete_id(self.athlete_id)

    def _envelope(self, sensor_time_s: float) -> dict[str, Any]:
        return {
            "athlete_id": self.athlete_id,
            "session_id": self.session_id,
            "sensor_time_s": sensor_time_s,
            "wall_time": self.clock(),
        }

    def message(
        self, event: Event
    ) -> MetricsMessage | StepMessage | CueMessage | RepMessage | None:
        """The message for ``event`` (``None`` for a gap: gaps travel in the status message)."""
        if isinstance(event, Metrics):
            return MetricsMessage(
                **self._envelope(event.t_s),
                cadence_spm=event.cadence_spm,
                gct_ms=event.gct_ms,
                step_count=event.step_count,
                intensity_g=event.intensity_g,
                speed_m_s=event.speed_m_s,
                quality=_quality(event.quality),
                activity=None if event.activity is None else event.activity.value,
                cadence_source=None if event.cadence_source is None else event.cadence_source.value,
                cadence_confidence=event.cadence_confidence,
                lost_fraction=event.lost_fraction,
                clipped_fraction=event.clipped_fraction,
                trusted=event.trusted,
            )
        if isinstance(event, StepEvent):
            return StepMessage(
                **self._envelope(event.emitted_s),
                ic_s=event.ic_s,
                to_s=event.to_s,
                gct_ms=event.gct_ms,
                foot=event.foot,
                confidence=event.confidence,
                impact_g=event.impact_g,
            )
        if isinstance(event, Cue):
            self.cue_seq += 1
            return CueMessage(
                **self._envelope(event.t_s),
                id=uuid.uuid4().hex,
                seq=self.cue_seq,
                kind=event.kind.value,
                text=event.text,
                rep=event.rep,
                reps=event.reps,
                at_s=event.at_s,
                reason=event.reason,
            )
        if isinstance(event, RepSummary):
            self.rep_seq += 1
            return RepMessage(
                **self._envelope(event.end_s),
                id=uuid.uuid4().hex,
                seq=self.rep_seq,
                rep=event.rep,
                start_s=event.start_s,
                end_s=event.end_s,
                duration_s=event.duration_s,
                mean_cadence_spm=event.mean_cadence_spm,
                mean_gct_ms=event.mean_gct_ms,
                gct_drift_ms=event.gct_drift_ms,
                cadence_cv_pct=event.cadence_cv_pct,
                time_to_stride_cadence_s=event.time_to_stride_cadence_s,
                fatigue_flag=event.fatigue_flag,
                fatigue_reason=event.fatigue_reason,
                missing_s=event.missing_s,
                complete=event.complete,
            )
        assert isinstance(event, Gap)
        return None

    def session(
        self,
        sensor_time_s: float,
        *,
        template: str | None,
        state: str,
        rep: int,
        reps: int | None,
        recovery_remaining_s: float | None,
    ) -> SessionMessage:
        return SessionMessage(
            **self._envelope(sensor_time_s),
            template=template,
            state=state,
            rep=rep,
            reps=reps,
            recovery_remaining_s=recovery_remaining_s,
        )

    def status(
        self,
        sensor_time_s: float,
        *,
        online: bool,
        device: str,
        placement: str,
        sample_rate_hz: float | None,
        quality: SignalQuality | None,
        metrics_dropped: int,
        outbox_pending: int,
    ) -> StatusMessage:
        return StatusMessage(
            **self._envelope(sensor_time_s),
            online=online,
            device=device,
            placement=placement,
            sample_rate_hz=sample_rate_hz,
            quality=None if quality is None else _quality(quality),
            metrics_dropped=metrics_dropped,
            outbox_pending=outbox_pending,
        )
