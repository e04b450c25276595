"""Drive a source through the engine: pace it, feed the sinks, send cues back to the runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dsp.engine import StrideEngine
from dsp.events import Cue, Event
from dsp.plan import SessionPlan
from dsp.samples import SampleBlock
from dsp.session import FatigueRule, Readiness
from recordings.sources import Source, readings

Sink = Callable[[Sequence[Event]], None]


class Pacer:
    """Hold stream time to ``speed`` × wall-clock time (``None``: as fast as possible)."""

    def __init__(self, speed: float | None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._origin: tuple[float, float] | None = None  # (stream s, monotonic s)

    async def wait_until(self, stream_t_s: float) -> None:
        if self.speed is None:
            return
        now = time.monotonic()
        if self._origin is None:
            self._origin = (stream_t_s, now)
            return
        stream0, wall0 = self._origin
        delay = wall0 + (stream_t_s - stream0) / self.speed - now
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(frozen=True, slots=True)
class RunStats:
    blocks: int
    samples: int
    stream_s: float
    events: int


def build_engine(
    source: Source,
    plan: SessionPlan | None,
    readiness: Readiness | None = None,
    fatigue: FatigueRule | None = None,
) -> StrideEngine:
    return StrideEngine(
        source.placement, source.fs_hz, plan=plan, readiness=readiness, fatigue=fatigue
    )


def _deliver(events: Sequence[Event], source: Source, sinks: Sequence[Sink]) -> None:
    for event in events:
        if isinstance(event, Cue):
            source.on_cue(event)
    for sink in sinks:
        sink(events)


async def run_session(
    source: Source, engine: StrideEngine, sinks: Sequence[Sink], *, speed: float | None = None
) -> RunStats:
    """Stream ``source`` through ``engine`` until it ends; every cue also goes back to the source.

    Nothing is accumulated: events go to the sinks as they come, so a session of any length runs
    in constant memory.
    """
    pacer = Pacer(speed)
    blocks = samples = n_events = 0
    first = last = None
    async for reading in readings(source):
        if isinstance(reading, SampleBlock):
            if not len(reading):
                continue
            events = engine.process(reading)
            t_start, t_end = float(reading.t_s[0]), float(reading.t_s[-1])
            samples += len(reading)
        else:
            events = engine.process_cadence(reading)
            t_start = t_end = reading.t_s
        first = t_start if first is None else first
        last = t_end
        blocks += 1
        n_events += len(events)
        _deliver(events, source, sinks)
        await pacer.wait_until(t_end)
    tail = engine.finish()
    _deliver(tail, source, sinks)
    span = 0.0 if first is None or last is None else last - first
    return RunStats(blocks, samples, span, n_events + len(tail))
