"""Replay of an uploaded recording: checked up front, then run through the engine into the store.

:func:`survey` reads a log once before it is accepted: its header must parse the way
``stridecue replay`` opens it, it must hold sensor data, and the damage the reader skips (a
record cut short by a killed recorder, corrupted stretches, unknown record types) is counted
for the upload's report. :func:`replay` then runs the very path of ``stridecue replay``
(``RecordedSource`` → ``StrideEngine`` through ``run_session``), converts the events with
:class:`SessionMessages` on the recording's own clock and stores them in batches. Both block:
the server runs them in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from bus.messages import Message
from bus.session_messages import SessionMessages
from device.errors import DeviceError
from dsp.events import Event
from dsp.plan import SessionPlan
from dsp.samples import CadenceReading, SampleBlock
from recordings import logfile
from recordings.logfile import LogError, LogFormatError, LogHeader, LogReader, Notification
from recordings.runner import build_engine, run_session
from recordings.sources import RecordedSource
from recordings.trials import TrialError
from server.errors import ServerError
from server.store import Store

log = logging.getLogger(__name__)

# A batch is one transaction (one disk flush) and one progress step: big enough to be cheap,
# small enough that the coach sees the session grow and the progress move.
BATCH_MESSAGES: Final = 2000
BATCH_STREAM_S: Final = 30.0


class ReplayError(ServerError):
    """An uploaded log cannot be replayed; ``reason`` says why, for the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplayCancelledError(ReplayError):
    """The server is stopping: the replay ended early (what was stored stays)."""


@dataclass(frozen=True, slots=True)
class Survey:
    """What a log holds, read once before its replay.

    ``first_s``/``last_s`` bound its sensor times (stream seconds since ``start``);
    ``truncated`` (0 or 1), ``corrupted`` and ``skipped`` are :class:`LogReader`'s counts of the
    records the replay will drop.
    """

    header: LogHeader
    start: datetime
    first_s: float
    last_s: float
    truncated: int
    corrupted: int
    skipped: int

    @property
    def duration_s(self) -> float:
        return self.last_s - self.first_s

    def fraction(self, stream_s: float) -> float:
        """How far into the log ``stream_s`` is, 0 to 1."""
        if self.duration_s <= 0:
            return 0.0
        return min(1.0, max(0.0, (stream_s - self.first_s) / self.duration_s))


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Mute ``logger`` for this thread: the replay logs each dropped record, the survey need not."""
    thread = threading.get_ident()

    def other_threads(record: logging.LogRecord) -> bool:
        return record.thread != thread

    logger.addFilter(other_threads)
    try:
        yield
    finally:
        logger.removeFilter(other_threads)


def _times(record: object) -> tuple[float, float] | None:
    if isinstance(record, SampleBlock):
        return (float(record.t_s[0]), float(record.t_s[-1])) if len(record) else None
    if isinstance(record, CadenceReading):
        return record.t_s, record.t_s
    if isinstance(record, Notification):
        return record.host_t_s, record.host_t_s
    return None  # a note annotates, it carries no sensor data


def _start(header: LogHeader) -> datetime:
    try:
        start = datetime.fromisoformat(header.start_time)
    except ValueError:
        start = None
    if start is None or start.utcoffset() is None:
        raise ReplayError(
            f"the log's header has no valid start_time ({header.start_time!r}); it needs an "
            "ISO 8601 UTC time such as 2024-05-01T06:30:00Z to place the session in time"
        )
    return start


def survey(path: Path, plan: SessionPlan | None) -> Survey:
    """Check that ``path`` is a log the engine can replay; :class:`ReplayError` says why not."""
    try:
        with _quiet(logging.getLogger(logfile.__name__)):
            reader = LogReader(path)
            first_s, last_s = math.inf, -math.inf
            for record in reader:
                times = _times(record)
                if times is not None and all(map(math.isfinite, times)):
                    first_s, last_s = min(first_s, times[0]), max(last_s, times[1])
        header, damage = reader.header, (reader.truncated, reader.corrupted, reader.skipped)
        del reader  # the reader holds the whole file: one copy in memory at a time
        source = RecordedSource.open(path)  # exactly as the replay will
        build_engine(source, plan)
    except (LogFormatError, TrialError) as e:
        raise ReplayError(e.reason) from None
    except (LogError, DeviceError) as e:
        raise ReplayError(f"the log cannot be replayed: {e}") from None
    except ValueError as e:  # a placement or sample rate the engine does not know
        raise ReplayError(f"the log's header cannot be used: {e}") from None
    if not math.isfinite(first_s):
        raise ReplayError("the log holds no intact record of sensor data: nothing to replay")
    return Survey(header, _start(header), first_s, last_s, *damage)


@dataclass(slots=True)
class Outcome:
    """What a replay stored, and the packets its decoder refused (BLE recordings only)."""

    messages: int = 0
    stream_s: float = 0.0
    malformed_packets: int = 0


def replay(
    path: Path,
    *,
    athlete_id: str,
    session_id: str,
    plan: SessionPlan | None,
    survey: Survey,
    store: Store,
    on_stored: Callable[[Sequence[Message], Sequence[bool], Outcome], None],
    stop: threading.Event,
) -> Outcome:
    """Replay ``path`` as session ``session_id`` of ``athlete_id`` into ``store``; blocking.

    After each batch is committed, ``on_stored(messages, new, outcome)`` says what was stored
    (``new[i]`` as :meth:`Store.ingest_many` returns it) and how far the replay got. Setting
    ``stop`` ends the replay after the current block (:class:`ReplayCancelledError`).
    """
    source = RecordedSource.open(path)
    engine = build_engine(source, plan)
    session = SessionMessages(
        athlete_id, session_id, survey.start, engine, template=None if plan is None else plan.name
    )
    outcome = Outcome()
    batch: list[Message] = []
    flushed_s = survey.first_s

    def flush() -> None:
        nonlocal flushed_s
        new = store.ingest_many(batch) if batch else []
        outcome.messages += sum(new)
        outcome.stream_s = flushed_s = session.stream_s
        if source.decoder is not None:
            outcome.malformed_packets = source.decoder.malformed
        on_stored(list(batch), new, outcome)
        batch.clear()

    def sink(events: Sequence[Event]) -> None:
        if stop.is_set():
            raise ReplayCancelledError("the server stopped during the replay")
        batch.extend(session.convert(events))
        if len(batch) >= BATCH_MESSAGES or session.stream_s - flushed_s >= BATCH_STREAM_S:
            flush()

    stats = asyncio.run(run_session(source, engine, [sink]))  # this thread's own event loop
    if not stats.blocks:
        raise ReplayError("nothing in the log could be decoded into sensor samples")
    flush()
    return outcome
