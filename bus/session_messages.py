"""A whole session's bus messages from its engine events, stamped on the sensor's clock.

The live publisher (:mod:`bus.publisher`) stamps each message with the moment it
leaves. A session converted after the fact (an uploaded recording, a test's simulated run) has
no such moment, so here a message's wall time is the session's start plus its sensor time: the
stored session sits at the time it was run, and its messages keep the order they were run in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bus.convert import MessageFactory
from bus.messages import Message, SessionMessage, StatusMessage
from dsp.engine import StrideEngine
from dsp.events import Event, Metrics, SignalQuality, event_time_s


class SensorClock:
    """A :class:`MessageFactory` clock: ``start`` + ``t_s``, where ``t_s`` is set per message."""

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError(f"the session start must carry a time zone, got {start!r}")
        self.start = start
        self.t_s = 0.0

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=self.t_s)


class SessionMessages:
    """The messages a publisher sends for one session, from the engine's events as they come.

    Feed :meth:`convert` every batch of events the engine returns (a session-runner sink), and
    the :meth:`status` messages around them if the athlete's status should change too. Every
    kind is converted (steps included: nothing is dropped after the fact); a ``session`` message
    follows a batch that changed the rep engine's state or rep, like the publisher's retained
    state. ``stream_s`` only moves forward (a rep summary refers back to the rep's end), so the
    session messages' sensor times keep their order, which the store relies on.
    """

    def __init__(
        self,
        athlete_id: str,
        session_id: str,
        start: datetime,
        engine: StrideEngine,
        *,
        template: str | None,
    ) -> None:
        self.clock = SensorClock(start)
        self.factory = MessageFactory(athlete_id, session_id, clock=self.clock)
        self.engine = engine
        self.template = template
        self.stream_s = 0.0
        self.quality: SignalQuality | None = None  # of the latest metrics
        self._state: tuple[str, int] | None = None

    def convert(self, events: Sequence[Event]) -> list[Message]:
        """The messages of ``events`` (gaps travel in the status), then the state if it changed."""
        out: list[Message] = []
        for event in events:
            self.stream_s = max(self.stream_s, event_time_s(event))
            if isinstance(event, Metrics):
                self.quality = event.quality
            self.clock.t_s = event_time_s(event)
            message = self.factory.message(event)
            if message is not None:
                out.append(message)
        state = self._session_state()
        if state is not None:
            out.append(state)
        return out

    def status(self, *, online: bool, device: str) -> StatusMessage:
        """The athlete's status at the current stream time: nothing dropped, nothing pending."""
        self.clock.t_s = self.stream_s
        return self.factory.status(
            self.stream_s,
            online=online,
            device=device,
            placement=self.engine.placement.value,
            sample_rate_hz=self.engine.fs_hz,
            quality=self.quality,
            metrics_dropped=0,
            outbox_pending=0,
        )

    def _session_state(self) -> SessionMessage | None:
        reps = self.engine.reps
        if (reps.state, reps.rep) == self._state:
            return None
        self._state = (reps.state, reps.rep)
        self.clock.t_s = self.stream_s
        return self.factory.session(
            self.stream_s,
            template=self.template,
            state=reps.state,
            rep=reps.rep,
            reps=reps.reps,
            recovery_remaining_s=reps.recovery_remaining_s,
        )
