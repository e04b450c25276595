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
        out.extend(self.reps.on_step(step))
        return out

    def gap(self, gap: Gap) -> list[Event]:
        out: list[Event] = list(self.reps.on_gap(gap))
        self.metrics.on_gap(gap)
        out.append(gap)
        return out

    def tick(self, t_s: float, quality: SignalQuality) -> list[Event]:
        out: list[Event] = list(self.reps.advance(t_s))
        m: Metrics = self.metrics.at(t_s, quality)
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
        last = t_s[:, -1]
        ticking = np.floor(last) >= np.array([a.next_second for a in self.athletes])
        gap_rows = q.gap_rows.tolist()
        busy = set(np.nonzero(ticking)[0].tolist()) | set(gap_rows)
        busy |= {r for r in range(s) if steps[r]}
        for r in sorted(busy):
            out[r].extend(self._stream_events(r, t_s[r], q, steps[r], before))
        for r in range(s):
            self.athletes[r].last_t = float(last[r])
            out[r].extend(self.athletes[r].reps.advance(float(last[r])))
        return out

    def _stream_events(
        self,
        r: int,
        t_row: FloatArray,
        q: QualityBlock,
        steps: list[StepEvent],
        before: tuple[NDArray[np.int64], ...],
    ) -> list[Event]:
        """Interleave one stream's gaps, steps and metric ticks in time order."""
        athlete = self.athletes[r]
        # (time, priority, payload): at equal times a gap, then a tick, then a step.
        items: list[tuple[float, int, object]] = []
        for g in np.nonzero(q.gap_rows == r)[0].tolist():
            gap = Gap(float(q.gap_start_s[g]), float(q.gap_end_s[g]), int(q.gap_lost[g]))
            items.append((gap.end_s, 0, (gap, int(q.gap_index[g]))))
        second = athlete.next_second
        while second <= t_row[-1]:
            items.append((second, 1, second))
            second += 1.0
        athlete.next_second = second
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
                out.extend(athlete.tick(time, quality))
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
        while a.next_second <= reading.t_s:
            out.extend(a.tick(a.next_second, SignalQuality(0, 0, 0, 0)))
            a.next_second += 1.0
        a.metrics.on_reading(reading)
        a.last_t = reading.t_s
        out.extend(a.reps.advance(reading.t_s))
        return out

    def finish(self) -> list[Event]:
        if self._bank is not None:
            return self._bank.finish()[0]
        a = self._require_cadence()
        return list(a.reps.finish(a.last_t))
