"""Per-second metrics: event-based cadence, rolling contact time and impact intensity.

Cadence is 60 / the median of the last few step intervals (120 / stride interval for a one-leg
sensor), the estimator that reacts fastest to a change of pace (stride-science notes); contact
time is the median of the last few contacts. Intervals span a gap in the data only when it is
shorter than any step could be: a step hidden in a longer hole would double an interval.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from dsp.events import Gap, Metrics, SignalQuality, StepEvent
from dsp.samples import CadenceReading


def cadence_from_ics(ic_s: Sequence[float] | np.ndarray, one_leg: bool) -> float | None:
    """Cadence in steps/min (both feet) from consecutive initial contacts of one sensor.

    ``60 / median(step interval)``, or ``120 / median(stride interval)`` for a one-leg sensor.
    """
    if len(ic_s) < 2:
        return None
    interval_s = float(np.median(np.diff(np.asarray(ic_s, dtype=float))))
    return (120.0 if one_leg else 60.0) / interval_s


class MetricsTracker:
    """Rolling state of one athlete's stream, sampled once per second by :meth:`at`.

    Parameters
    ----------
    one_leg : bool
        The sensor sees one leg (foot, shank): its contacts are strides.
    window_steps : int
        Contacts in the rolling window (cadence from ``window_steps - 1`` intervals).
    stale_s : float
        With no contact for this long, cadence, contact time and intensity read ``None``
        (the runner stopped, or the data did).
    max_bridged_gap_s : float
        A gap in the data at most this long keeps the interval history: a few lost packets may
        make the detector miss a contact, but the median shrugs off the one long interval that
        follows; a longer gap clears the history.
    """

    def __init__(
        self,
        one_leg: bool,
        window_steps: int = 7,
        stale_s: float = 3.0,
        max_bridged_gap_s: float = 0.1,
    ) -> None:
        self.one_leg = one_leg
        self.window_steps = window_steps
        self.stale_s = stale_s
        self.max_bridged_gap_s = max_bridged_gap_s
        self.reset()

    def reset(self) -> None:
        self._ics: deque[float] = deque(maxlen=self.window_steps)
        self._gcts: deque[float] = deque(maxlen=self.window_steps)
        self._impacts: deque[float] = deque(maxlen=self.window_steps)
        self._last_s = -np.inf
        self._reading: CadenceReading | None = None
        self.step_count = 0.0

    def on_step(self, step: StepEvent) -> None:
        self._ics.append(step.ic_s)
        self._gcts.append(step.gct_ms)
        if step.impact_g is not None:
            self._impacts.append(step.impact_g)
        self._last_s = step.ic_s
        self.step_count += 2 if self.one_leg else 1

    def on_gap(self, gap: Gap) -> None:
        """After a long gap the next contact starts a new run of intervals."""
        if gap.end_s - gap.start_s > self.max_bridged_gap_s:
            self._ics.clear()

    def on_reading(self, reading: CadenceReading) -> None:
        """A cadence-only sensor's reading; steps accumulate at the reported cadence."""
        if self._reading is not None:
            dt_s = max(0.0, reading.t_s - self._reading.t_s)
            self.step_count += self._reading.cadence_spm * min(dt_s, self.stale_s) / 60.0
        self._reading = reading
        self._last_s = reading.t_s

    def _whole_steps(self) -> int:
        # Readings accumulate fractions of steps: floor, but not below a rounding error.
        return math.floor(self.step_count + 1e-6)

    def at(self, t_s: float, quality: SignalQuality) -> Metrics:
        fresh = t_s - self._last_s <= self.stale_s
        if self._reading is not None:
            r = self._reading
            return Metrics(
                t_s=t_s,
                cadence_spm=r.cadence_spm if fresh else None,
                gct_ms=None,
                step_count=self._whole_steps(),
                intensity_g=None,
                speed_m_s=r.speed_m_s if fresh else None,
                quality=quality,
            )
        return Metrics(
            t_s=t_s,
            cadence_spm=cadence_from_ics(self._ics, self.one_leg) if fresh else None,
            gct_ms=float(np.median(self._gcts)) if fresh and self._gcts else None,
            step_count=self._whole_steps(),
            intensity_g=float(np.mean(self._impacts)) - 1.0 if fresh and self._impacts else None,
            speed_m_s=None,
            quality=quality,
        )
