"""The streaming engine: samples in; steps, per-second metrics, gaps, cues and rep summaries out.

:class:`EngineBank` runs many athletes of one placement and sample rate together, so that every
sample-wise operation is one vectorized call for the whole bank (per-call overhead, not
arithmetic, dominates 20 ms blocks). :class:`StrideEngine` is one athlete: a bank of one.

Within a stream, events come out in the order of the samples that confirmed them; a metric for
second ``T`` is emitted at the first sample at or after ``T`` and counts what came before it.
The output therefore does not depend on how the stream was cut into blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dsp.events import Event, Gap, Metrics, Placement, SignalQuality, StepEvent
from dsp.metrics import MetricsTracker
from dsp.periodicity import PeriodicityCadence, PeriodicityReading
from dsp.plan import SessionPlan
from dsp.quality import QualityBlock, QualityMonitor
from dsp.samples import CadenceReading, SampleBlock
from dsp.session import FatigueRule, Readiness, RepEngine
from dsp.steps import StepDetector

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class AthleteConfig:
    """What differs between the athletes of one bank."""

    plan: SessionPlan | None = None
    fatigue: FatigueRule = field(default_factory=FatigueRule)
    readiness: Readiness = field(default_factory=Readiness)


class _Athlete:
    """The per-event half of one stream: metrics and the rep engine."""

    def __init__(self, one_leg: bool, config: AthleteConfig) -> None:
        self.metrics = MetricsTracker(one_leg)
        self.reps = RepEngine(
            config.plan, one_leg=one_leg, fatigue=config.fatigue, readiness=config.readiness
        )
        self.started = False
        self.next_second = -math.inf  # the next metrics boundary
        self.last_t = -math.inf

    def start(self, t_s: float) -> list[Event]:
        self.started = True
        self.next_second = math.floor(t_s) + 1.0
        return list(self.reps.start(t_s))

    def step(self, step: StepEvent) -> list[Event]:
        out: list[Event] = list(self.reps.advance(step.emitted_s))
        self.metrics.on_step(step)
        out.append(step)
        # The rep engine runs on the cadence the signal supports: contacts the periodicity
        # contradicts do not drive it (the per-second cadence then does).
        if self.metrics.contacts_trusted:
            out.extend(self.reps.on_step(step))
        else:
            self.reps.detector.skip_step()
        return out

    def gap(self, gap: Gap) -> list[Event]:
        out: list[Event] = list(self.reps.on_gap(gap))
        self.metrics.on_gap(gap)
        out.append(gap)
        return out

    def tick(
        self, t_s: float, quality: SignalQuality, periodic: PeriodicityReading | None = None
    ) -> list[Event]:
        out: list[Event] = list(self.reps.advance(t_s))
        m: Metrics = self.metrics.at(t_s, quality, periodic)
        out.append(m)
        out.extend(self.reps.on_metrics(m))
        return out


class EngineBank:
    """Streaming engine for ``len(athletes)`` athletes of one placement and sample rate.

    Parameters
    ----------
    placement : Placement
        Where every sensor of the bank is worn.
    fs_hz : float
        Nominal sample rate of every stream (25–1000 Hz).
    athletes : sequence of AthleteConfig
        One per stream: the session plan (``None``: auto mode), fatigue rule and readiness.
    sensor_leg : str
        The leg a foot or shank sensor is on, reported in step events.
    """

    def __init__(
        self,
        placement: Placement,
        fs_hz: float,
        athletes: Sequence[AthleteConfig],
        *,
        sensor_leg: str = "left",
    ) -> None:
        self.placement = placement
        self.fs_hz = fs_hz
        self.configs = tuple(athletes)
        self.sensor_leg = sensor_leg
        self.reset()

    @property
    def n_streams(self) -> int:
        return len(self.configs)

    def reset(self) -> None:
        s = self.n_streams
        self.detector = StepDetector(self.placement, self.fs_hz, s, sensor_leg=self.sensor_leg)
        self.quality = QualityMonitor(s, self.fs_hz)
        self.periodicity = PeriodicityCadence(s, self.fs_hz, one_leg=self.placement.one_leg)
        self.athletes = [_Athlete(self.placement.one_leg, c) for c in self.configs]

    def process(
        self, t_s: FloatArray, acc_g: FloatArray, gyro_dps: FloatArray | None = None
    ) -> list[list[Event]]:
        """One block per stream: ``t_s`` (S, n), ``acc_g`` and ``gyro_dps`` (S, n, 3)."""
        s, n = t_s.shape
        out: list[list[Event]] = [[] for _ in range(s)]
        if n == 0:
            return out
        acc = np.moveaxis(np.asarray(acc_g, dtype=float), 2, 1)
        gyro = None if gyro_dps is None else np.moveaxis(np.asarray(gyro_dps, dtype=float), 2, 1)
        before = (
            self.quality.samples.copy(),
            self.quality.saturated_samples.copy(),
            self.quality.gaps.copy(),
            self.quality.lost_samples.copy(),
        )
        q = self.quality.process(t_s, acc)
        steps = self.detector.process(t_s, acc, gyro, q)
        for r, athlete in enumerate(self.athletes):
            if not athlete.started:
                out[r].extend(athlete.start(float(t_s[r, 0])))
        ticks = self._ticks(t_s, acc)
        gap_rows = q.gap_rows.tolist()
        busy = set(ticks) | set(gap_rows) | {r for r in range(s) if steps[r]}
        for r in sorted(busy):
            out[r].extend(self._stream_events(r, t_s[r], q, steps[r], ticks.get(r, []), before))
        last = t_s[:, -1]
        for r in range(s):
            self.athletes[r].last_t = float(last[r])
            out[r].extend(self.athletes[r].reps.advance(float(last[r])))
        return out

    def _ticks(
        self, t_s: FloatArray, acc: FloatArray
    ) -> dict[int, list[tuple[float, PeriodicityReading]]]:
        """The metric seconds each stream reaches in this block, with their periodicity.

        A second ``T`` is reported when a sample fell in ``[T - 1, T)``: a hole in the data (a
        lost link, or a clock that jumped ahead) is one Gap event, not a metric per second of it.
        """
        rows: list[int] = []
        seconds: list[float] = []
        next_s = np.array([a.next_second for a in self.athletes])
        due = np.floor(t_s[:, -1]) >= next_s
        for r in np.nonzero(due)[0].tolist():
            athlete = self.athletes[r]
            # Each sample closes the second after it; the previous block's last one too.
            closing = np.unique(np.floor(np.append(t_s[r], athlete.last_t)) + 1.0)
            keep = closing[(closing >= athlete.next_second) & (closing <= t_s[r, -1])]
            rows += [r] * keep.size
            seconds += keep.tolist()
            athlete.next_second = math.floor(t_s[r, -1]) + 1.0
        at_s = np.array(seconds)
        row_idx = np.array(rows, dtype=np.intp)
        cols = np.array(
            [
                int(np.searchsorted(t_s[r], t, side="left"))
                for r, t in zip(rows, seconds, strict=True)
            ],
            dtype=np.intp,
        )
        norm = np.sqrt(np.einsum("sin,sin->sn", acc, acc))
        estimate = self.periodicity.process(t_s, norm, row_idx, cols, at_s)
        ticks: dict[int, list[tuple[float, PeriodicityReading]]] = {}
        for i, (r, t) in enumerate(zip(rows, seconds, strict=True)):
            ticks.setdefault(r, []).append((t, estimate.reading(i)))
        return ticks

    def _stream_events(
        self,
        r: int,
        t_row: FloatArray,
        q: QualityBlock,
        steps: list[StepEvent],
        ticks: list[tuple[float, PeriodicityReading]],
        before: tuple[NDArray[np.int64], ...],
    ) -> list[Event]:
        """Interleave one stream's gaps, steps and metric ticks in time order."""
        athlete = self.athletes[r]
        # (time, priority, payload): at equal times a gap, then a tick, then a step.
        items: list[tuple[float, int, object]] = []
        for g in np.nonzero(q.gap_rows == r)[0].tolist():
            gap = Gap(float(q.gap_start_s[g]), float(q.gap_end_s[g]), int(q.gap_lost[g]))
            items.append((gap.end_s, 0, (gap, int(q.gap_index[g]))))
        items.extend((second, 1, reading) for second, reading in ticks)
        items.extend((st.emitted_s, 2, st) for st in steps)
        items.sort(key=lambda item: (item[0], item[1]))
        samples0, saturated0, gaps0, lost0 = (int(b[r]) for b in before)
        sat_cum = np.cumsum(q.saturated[r])
        gaps_seen = lost_seen = 0
        out: list[Event] = []
        for time, kind, payload in items:
            if kind == 0:
                gap, _ = payload  # type: ignore[misc]
                gaps_seen += 1
                lost_seen += gap.lost_samples
                out.extend(athlete.gap(gap))
            elif kind == 1:
                k = int(np.searchsorted(t_row, time, side="left"))
                quality = SignalQuality(
                    samples=samples0 + k,
                    saturated_samples=saturated0 + (int(sat_cum[k - 1]) if k else 0),
                    gaps=gaps0 + gaps_seen,
                    lost_samples=lost0 + lost_seen,
                )
                out.extend(athlete.tick(time, quality, payload))  # type: ignore[arg-type]
            else:
                out.extend(athlete.step(payload))  # type: ignore[arg-type]
        return out

    def finish(self) -> list[list[Event]]:
        """End of the streams: close open reps and the sessions."""
        return [list(a.reps.finish(a.last_t)) for a in self.athletes]


class StrideEngine:
    """One athlete's streaming engine.

    Parameters
    ----------
    placement : Placement
        Where the sensor is worn.
    fs_hz : float or None
        Nominal sample rate; ``None`` for a cadence-only sensor (a standard RSC footpod), whose
        readings go through :meth:`process_cadence`.
    plan : SessionPlan or None
        Cued mode with this plan, or auto mode (``None``).
    """

    def __init__(
        self,
        placement: Placement,
        fs_hz: float | None,
        *,
        plan: SessionPlan | None = None,
        fatigue: FatigueRule | None = None,
        readiness: Readiness | None = None,
        sensor_leg: str = "left",
    ) -> None:
        self.placement = placement
        self.fs_hz = fs_hz
        self.config = AthleteConfig(plan, fatigue or FatigueRule(), readiness or Readiness())
        self._bank = (
            None
            if fs_hz is None
            else EngineBank(placement, fs_hz, [self.config], sensor_leg=sensor_leg)
        )
        self._cadence = _Athlete(placement.one_leg, self.config) if fs_hz is None else None

    @property
    def reps(self) -> RepEngine:
        """The rep engine, for live views (state, rep counter, recovery countdown)."""
        return (self._bank.athletes[0] if self._bank else self._require_cadence()).reps

    def _require_cadence(self) -> _Athlete:
        if self._cadence is None:
            raise ValueError(
                "this engine takes samples: build it with fs_hz=None for cadence input"
            )
        return self._cadence

    def process(self, block: SampleBlock) -> list[Event]:
        if self._bank is None:
            raise ValueError("this engine takes cadence readings (fs_hz=None): use process_cadence")
        gyro = None if block.gyro_dps is None else block.gyro_dps[None]
        return self._bank.process(block.t_s[None], block.acc_g[None], gyro)[0]

    def process_cadence(self, reading: CadenceReading) -> list[Event]:
        """One reading of a cadence-only sensor: drives metrics and the rep engine, no contacts."""
        a = self._require_cadence()
        out: list[Event] = [] if a.started else a.start(reading.t_s)
        # The seconds the previous reading still covers (until it goes stale), then this one's:
        # a hole between readings is not a metric per second of it.
        last_covered = a.last_t + a.metrics.stale_s + 1.0
        while a.next_second <= reading.t_s:
            if a.next_second <= last_covered:
                out.extend(a.tick(a.next_second, SignalQuality(0, 0, 0, 0)))
                a.next_second += 1.0
            else:
                a.next_second = math.floor(reading.t_s) + 1.0
                break
        a.metrics.on_reading(reading)
        a.last_t = reading.t_s
        out.extend(a.reps.advance(reading.t_s))
        return out

    def finish(self) -> list[Event]:
        if self._bank is not None:
            return self._bank.finish()[0]
        a = self._require_cadence()
        return list(a.reps.finish(a.last_t))
