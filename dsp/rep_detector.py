"""Streaming rep segmentation: when a rep starts and ends, from steps or per-second cadence.

A hysteresis on a short median of step cadences says *that* a rep started or ended (a rise well
above the easy baseline held for a while, a fall back held for a while); *when* it did is then
found by fitting a first-order step to the last seconds of samples (``dsp.reps.fit_onset``), so
the boundary is the moment the runner began to accelerate or ease, not the threshold crossing.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dsp.events import Gap, Metrics, RepSummary, StepEvent
from dsp.reps import CADENCE, END, START, Ring, fit_onset, measure_rep


@dataclass(frozen=True, slots=True)
class BoundaryConfig:
    """Hyperparameters of rep boundary detection (times in stream seconds, cadence in steps/min).

    A start candidate is a smoothed cadence above ``baseline + max(min_rise_spm, rise_fraction *
    (peak - baseline))``, where ``peak`` is the highest rep level seen (``baseline +
    default_gain_spm`` before the first rep); it is dropped if the cadence falls back below half
    that rise, and confirmed after ``cued_confirm_s`` (cued) or ``auto_confirm_s`` (auto: a
    pick-up of pace that a real run holds for up to ~12 s, a surge, is not a rep; the shortest
    planned rep is a 15-s burst, NRR strides last 30-45 s). An end candidate is the
    cadence falling below ``end_fraction`` of the way from the baseline to the rep level,
    confirmed after ``end_confirm_s``. Onsets are searched up
    to ``onset_search_s`` before the crossing, fitting ``fit_pre_s`` of earlier samples; in cued
    mode no earlier than ``anticipation_s`` before GO (a runner may go on "1"). Cadences below
    ``baseline_min_spm`` (walking) never enter the easy baseline.
    """

    min_rise_spm: float = 8.0
    rise_fraction: float = 0.4
    default_gain_spm: float = 20.0
    cued_confirm_s: float = 2.0
    auto_confirm_s: float = 13.0
    end_fraction: float = 0.5
    end_confirm_s: float = 2.0
    level_delay_s: float = 2.5
    onset_search_s: float = 4.0
    anticipation_s: float = 2.0
    fit_pre_s: float = 8.0
    tau_grid_s: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0, 1.3)
    fit_step_s: float = 0.02
    smooth_steps: int = 4
    baseline_window_s: float = 180.0
    baseline_min_span_s: float = 20.0
    settle_s: float = 10.0
    transient_s: float = 4.0
    history_s: float = 180.0
    max_gap_s: float = 3.0
    metrics_window_s: float = 2.0
    min_cadence_spm: float = 60.0
    max_cadence_spm: float = 260.0
    baseline_min_spm: float = 135.0


@dataclass(frozen=True, slots=True)
class Boundary:
    """A detected rep boundary: ``at_s`` the refined onset of the change, ``t_s`` when confirmed."""

    kind: Literal["start", "end"]
    at_s: float
    t_s: float


class RepBoundaryDetector:
    """Streaming rep segmentation from step events or, failing those, per-second cadence.

    Step events give one sample per interval between consecutive contacts seen by the sensor:
    ``60 / interval`` for a trunk sensor, ``120 / interval`` for a one-leg sensor (one contact per
    stride). Without step events, each ``Metrics.cadence_spm`` is a sample averaging over the last
    ``metrics_window_s`` (a cadence-only footpod reports a smoothed cadence). The easy baseline is
    the median of the last ``baseline_window_s`` of easy samples (never within ``settle_s`` of a
    rep's end); it adapts while ``adapt_baseline`` is set (or while none is known yet). The
    detector also tracks since when the smoothed cadence has been within ``tolerance_pct`` of the
    baseline (``near_since_s``), which is what a full recovery needs.

    Parameters
    ----------
    one_leg : bool
        The sensor sees one leg (foot, shank): each step event is a stride.
    config : BoundaryConfig
        Thresholds and windows.
    confirm_start_s : float
        How long a start candidate must hold before it is a rep.
    tolerance_pct : float
        Band around the baseline that counts as easy running, percent.
    """

    def __init__(
        self, *, one_leg: bool, config: BoundaryConfig, confirm_start_s: float, tolerance_pct: float
    ) -> None:
        self._one_leg = one_leg
        self._cfg = config
        self._confirm_start_s = confirm_start_s
        self._tolerance = tolerance_pct / 100.0
        rate_hz = config.max_cadence_spm / 60.0
        self.history = Ring(math.ceil(config.history_s * rate_hz), 6)
        self._easy = Ring(math.ceil(config.baseline_window_s * rate_hz), 2)
        self.adapt_baseline = True
        self.armed = False
        self.earliest_onset_s = -math.inf
        self.baseline_spm: float | None = None
        self.in_rep = False
        self.start_s: float | None = None
        self.last_end_s: float | None = None
        self.near_since_s: float | None = None
        self.last_emit_s: float | None = None
        self._peak_spm: float | None = None
        self._baseline_at_s = -math.inf
        self._candidate: tuple[float, float] | None = None  # (end_s of crossing sample, emit_s)
        self._last_ic_s: float | None = None
        self._last_step_emit_s = -math.inf
        self._recent: deque[float] = deque(maxlen=max(1, config.smooth_steps))
        self._level: tuple[float, float | None] = (-math.inf, None)  # (computed at emit_s, spm)

    def disarm(self) -> None:
        """No new rep may start (cued mode between reps); a pending start is dropped."""
        self.armed = False
        if not self.in_rep:
            self._candidate = None

    def push_step(self, step: StepEvent) -> Boundary | None:
        """Add one step event (in time order); a boundary if this sample confirms one."""
        self._last_step_emit_s = step.emitted_s
        previous, self._last_ic_s = self._last_ic_s, step.ic_s
        if previous is None or step.ic_s <= previous:
            return None
        cadence = (120.0 if self._one_leg else 60.0) / (step.ic_s - previous)
        if not self._cfg.min_cadence_spm <= cadence <= self._cfg.max_cadence_spm:
            return None  # a missed or spurious contact, or the runner stopped
        k = max(1, self._cfg.smooth_steps // 2 if self._one_leg else self._cfg.smooth_steps)
        return self._push(previous, step.ic_s, cadence, step.gct_ms, step.emitted_s, k)

    def push_gap(self, gap: Gap) -> None:
        """A hole in the data: no interval spans it (even a short hole can hide a landmark, and
        the missed contact would double the interval, which reads as a sudden drop of cadence)."""
        self.skip_step()

    def skip_step(self) -> None:
        """A contact not pushed (untrusted): the next one starts a new interval."""
        self._last_ic_s = None

    def push_metrics(self, m: Metrics) -> Boundary | None:
        """Add one per-second reading; ignored while step events are flowing."""
        if m.cadence_spm is None or m.t_s - self._last_step_emit_s <= self._cfg.max_gap_s:
            return None
        if not self._cfg.min_cadence_spm <= m.cadence_spm <= self._cfg.max_cadence_spm:
            return None
        gct = math.nan if m.gct_ms is None else m.gct_ms
        start_s = m.t_s - self._cfg.metrics_window_s
        return self._push(start_s, m.t_s, m.cadence_spm, gct, m.t_s, 1)

    def push_still(self, t_s: float) -> Boundary | None:
        """The athlete stands still: as easy as it gets (a recovery stood counts as easy), but no
        cadence sample for the baseline. A rep still open ended with its last step."""
        self.last_emit_s = t_s
        if self.in_rep and self.start_s is not None:
            last = self.history.last(1)
            at_s = float(last[0, END]) if len(last) else t_s
            self.near_since_s = t_s
            return self._end(max(at_s, self.start_s), t_s)
        self._candidate = None
        if self.near_since_s is None:
            self.near_since_s = t_s
        return None

    @property
    def recent_spm(self) -> float | None:
        """The latest smoothed cadence, steps/min."""
        return statistics.median(self._recent) if self._recent else None

    def close(self, t_s: float) -> Boundary | None:
        """End of stream: the end of an open rep (its pending end if one was seen)."""
        if not self.in_rep or self.start_s is None:
            return None
        if self._candidate is not None:
            at_s = self._fit_end(self._candidate[0])
        else:
            last = self.history.last(1)
            at_s = float(last[0, END]) if len(last) else t_s
        return self._end(max(at_s, self.start_s), t_s)

    def summary(self, rep: int, start_s: float, end_s: float) -> RepSummary:
        return measure_rep(rep, start_s, end_s, self.history.since(END, start_s))

    def _push(
        self, start_s: float, end_s: float, cadence: float, gct: float, emit_s: float, k: int
    ) -> Boundary | None:
        self._recent.append(cadence)
        smooth = statistics.median(list(self._recent)[-k:])
        gap = self.last_emit_s is not None and emit_s - self.last_emit_s > self._cfg.max_gap_s
        self.history.append((start_s, end_s, cadence, smooth, gct, emit_s))
        self.last_emit_s = emit_s
        self._update_baseline(start_s, cadence, emit_s)
        self._track_near(smooth, emit_s, gap)
        if self.in_rep:
            return self._watch_end(end_s, smooth, emit_s)
        return self._watch_start(end_s, smooth, emit_s)

    def _update_baseline(self, start_s: float, cadence: float, emit_s: float) -> None:
        settled = self.last_end_s is None or start_s >= self.last_end_s + self._cfg.settle_s
        if not (self.adapt_baseline or self.baseline_spm is None):
            return
        if self.in_rep or self._candidate is not None or not settled:
            return
        if cadence < self._cfg.baseline_min_spm:
            return  # walking is recovery, not the easy running the reps are measured against
        self._easy.append((emit_s, cadence))
        if emit_s - self._baseline_at_s < 1.0:
            return  # the median moves slowly: once per second is plenty
        window = self._easy.since(0, emit_s - self._cfg.baseline_window_s)
        if window[-1, 0] - window[0, 0] >= self._cfg.baseline_min_span_s:
            self.baseline_spm = float(np.median(window[:, 1]))
            self._baseline_at_s = emit_s

    def _track_near(self, smooth: float, emit_s: float, gap: bool) -> None:
        # Easy is at most the baseline plus the tolerance: a recovery walked counts as easy.
        near = self.baseline_spm is not None and (
            smooth - self.baseline_spm <= self._tolerance * self.baseline_spm
        )
        if not near:
            self.near_since_s = None
        elif self.near_since_s is None or gap:
            self.near_since_s = emit_s

    def _start_threshold(self) -> float:
        assert self.baseline_spm is not None
        gain = (
            self._peak_spm - self.baseline_spm
            if self._peak_spm is not None
            else self._cfg.default_gain_spm
        )
        return self.baseline_spm + max(self._cfg.min_rise_spm, self._cfg.rise_fraction * gain)

    def _watch_start(self, end_s: float, smooth: float, emit_s: float) -> Boundary | None:
        if not self.armed or self.baseline_spm is None:
            self._candidate = None
            return None
        on = self._start_threshold()
        if self._candidate is None:
            if smooth > on:
                self._candidate = (end_s, emit_s)
            return None
        if smooth < 0.5 * (on + self.baseline_spm):  # back below half the rise
            self._candidate = None
            return None
        crossing_s, crossing_emit_s = self._candidate
        if emit_s - crossing_emit_s < self._confirm_start_s:
            return None
        # Keep the previous rep's easing out of the fit: it is a change of its own.
        settled_s = (
            -math.inf if self.last_end_s is None else self.last_end_s + self._cfg.transient_s
        )
        t_lo = max(crossing_s - self._cfg.onset_search_s, self.earliest_onset_s, settled_s)
        at_s = self._fit(max(t_lo - self._cfg.fit_pre_s, settled_s), t_lo, crossing_s)
        self._candidate = None
        self.in_rep, self.start_s, self.near_since_s = True, at_s, None
        self._level = (-math.inf, None)
        return Boundary("start", at_s, emit_s)

    def _rep_level(self, emit_s: float) -> float | None:
        """The rep's median cadence past its rise, refreshed once per second (it moves slowly)."""
        assert self.start_s is not None
        if emit_s - self._level[0] >= 1.0:
            rows = self.history.since(START, self.start_s + self._cfg.level_delay_s)
            level = float(np.median(rows[:, CADENCE])) if rows.shape[0] >= 3 else None
            self._level = (emit_s if level is not None else -math.inf, level)
        return self._level[1]

    def _watch_end(self, end_s: float, smooth: float, emit_s: float) -> Boundary | None:
        level = self._rep_level(emit_s)
        if level is None or self.baseline_spm is None:
            return None
        rise = max(level - self.baseline_spm, 0.5 * self._cfg.min_rise_spm)
        off = self.baseline_spm + self._cfg.end_fraction * rise
        if self._candidate is None:
            if smooth < off:
                self._candidate = (end_s, emit_s)
            return None
        if smooth > 0.5 * (off + self.baseline_spm + rise):  # back above halfway to the level
            self._candidate = None
            return None
        crossing_s, crossing_emit_s = self._candidate
        if emit_s - crossing_emit_s < self._cfg.end_confirm_s:
            return None
        at_s = self._fit_end(crossing_s)
        self._peak_spm = max(level, self._peak_spm or level)
        return self._end(at_s, emit_s)

    def _fit_end(self, crossing_s: float) -> float:
        assert self.start_s is not None
        t_lo = max(crossing_s - self._cfg.onset_search_s, self.start_s + 1.0)
        since_s = max(t_lo - self._cfg.fit_pre_s, self.start_s + self._cfg.level_delay_s)
        return self._fit(since_s, t_lo, crossing_s)

    def _end(self, at_s: float, t_s: float) -> Boundary:
        self._candidate = None
        self.in_rep, self.last_end_s = False, at_s
        return Boundary("end", at_s, t_s)

    def _fit(self, since_s: float, t_lo_s: float, t_hi_s: float) -> float:
        rows = self.history.since(END, since_s)
        if rows.shape[0] < 4 or t_hi_s <= t_lo_s:
            return t_hi_s
        return fit_onset(
            rows[:, START],
            rows[:, END],
            rows[:, CADENCE],
            t_lo_s=t_lo_s,
            t_hi_s=t_hi_s,
            tau_grid_s=self._cfg.tau_grid_s,
            step_s=self._cfg.fit_step_s,
        )
