"""Per-second metrics: cadence checked against the signal, rolling contact time, intensity.

Cadence is 60 / the median of the last few step intervals (120 / stride interval for a one-leg
sensor), the estimator that reacts fastest to a change of pace (stride-science notes); contact
time is the median of the last few contacts. Intervals span a gap in the data only when it is
shorter than any step could be: a step hidden in a longer hole would double an interval.

Every second the contacts are checked against the stride periodicity of the signal itself
(``dsp.periodicity``), over the same span of time: the periodicity's window. When the two agree,
the contacts are trusted and their fast cadence is published; when they disagree (missed or
invented contacts), the periodicity's cadence is published and contact time is unavailable.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from dsp.events import (
    TRUSTED_CONFIDENCE,
    TRUSTED_MAX_LOST,
    Activity,
    CadenceSource,
    Gap,
    Metrics,
    SignalQuality,
    StepEvent,
)
from dsp.periodicity import PeriodicityReading
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
    agreement_window_s : float
        The span over which contacts are compared with the periodicity (its window).
    agreement_spm, agreement_pct : float
        Contacts and periodicity agree within the larger of these.
    trust_hold_s : float
        Contacts stay trusted this long after they last agreed (one agreement window): while the
        pace changes, the periodicity's window holds two paces and may disagree with the contacts
        until the change has filled it; a real failure of the contacts outlasts that.
    """

    def __init__(
        self,
        one_leg: bool,
        window_steps: int = 7,
        stale_s: float = 3.0,
        max_bridged_gap_s: float = 0.1,
        agreement_window_s: float = 6.0,
        agreement_spm: float = 3.0,
        agreement_pct: float = 2.0,
        trust_hold_s: float = 6.0,
    ) -> None:
        self.one_leg = one_leg
        self.window_steps = window_steps
        self.stale_s = stale_s
        self.max_bridged_gap_s = max_bridged_gap_s
        self.agreement_window_s = agreement_window_s
        self.agreement_spm = agreement_spm
        self.agreement_pct = agreement_pct
        self.trust_hold_s = trust_hold_s
        self.reset()

    def reset(self) -> None:
        self._ics: deque[float] = deque(maxlen=self.window_steps)
        # Enough contacts to span the agreement window at a sprint (4 steps/s).
        self._window_ics: deque[float] = deque(maxlen=round(4 * self.agreement_window_s) + 2)
        self._gcts: deque[float] = deque(maxlen=self.window_steps)
        self._impacts: deque[float] = deque(maxlen=self.window_steps)
        self._last_s = -np.inf
        self._reading: CadenceReading | None = None
        self._quality = SignalQuality(0, 0, 0, 0)
        self.step_count = 0.0
        self.contacts_trusted = True  # until the periodicity can check them
        self._agreed_s = -np.inf

    def on_step(self, step: StepEvent) -> None:
        self._ics.append(step.ic_s)
        self._window_ics.append(step.ic_s)
        self._gcts.append(step.gct_ms)
        if step.impact_g is not None:
            self._impacts.append(step.impact_g)
        self._last_s = step.ic_s
        self.step_count += 2 if self.one_leg else 1

    def on_gap(self, gap: Gap) -> None:
        """After a long gap the next contact starts a new run of intervals."""
        if gap.end_s - gap.start_s > self.max_bridged_gap_s:
            self._ics.clear()
            self._window_ics.clear()

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

    def _fractions(self, quality: SignalQuality) -> tuple[float, float]:
        """Shares of the second's samples lost and clipped (counts are cumulative)."""
        before, self._quality = self._quality, quality
        samples = quality.samples - before.samples
        lost = quality.lost_samples - before.lost_samples
        clipped = quality.saturated_samples - before.saturated_samples
        lost_fraction = lost / (samples + lost) if samples + lost > 0 else 0.0
        return lost_fraction, clipped / samples if samples > 0 else 0.0

    def _contacts_agree(self, t_s: float, periodic_spm: float, rolling_spm: float | None) -> bool:
        """Do the contacts of the agreement window (the span the periodicity saw) support both
        the periodicity and the rolling cadence about to be published?

        The median of their intervals must match the periodicity (a contact lost to a dropped
        packet does not make the contacts wrong; a detector finding half the strides does), and
        the rolling cadence must lie within the range of the window's own intervals (during a
        change of pace it leads the window's average, but never leaves the intervals it is made
        of).
        """
        ics = np.array([ic for ic in self._window_ics if ic >= t_s - self.agreement_window_s])
        if ics.size < 4 or rolling_spm is None:
            return False
        per_interval = (120.0 if self.one_leg else 60.0) / np.diff(ics)
        tolerance = max(self.agreement_spm, self.agreement_pct / 100.0 * periodic_spm)
        return (
            abs(float(np.median(per_interval)) - periodic_spm) <= tolerance
            and per_interval.min() - tolerance <= rolling_spm <= per_interval.max() + tolerance
        )

    def at(
        self, t_s: float, quality: SignalQuality, periodic: PeriodicityReading | None = None
    ) -> Metrics:
        """The metrics of second ``t_s``, given the periodicity estimate for it."""
        lost_fraction, clipped_fraction = self._fractions(quality)
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
                cadence_source=CadenceSource.SENSOR if fresh else None,
            )
        contacts = cadence_from_ics(self._ics, self.one_leg) if fresh else None
        gct = float(np.median(self._gcts)) if fresh and self._gcts else None
        intensity = float(np.mean(self._impacts)) - 1.0 if fresh and self._impacts else None
        activity = periodic.activity if periodic else None
        confidence = None
        if periodic is not None:
            # A second that lost samples is weak evidence, whatever the window around it holds.
            penalty = max(0.0, 1.0 - lost_fraction / (2.0 * TRUSTED_MAX_LOST))
            confidence = round(periodic.confidence * penalty, 3)
        cadence, source = contacts, CadenceSource.CONTACTS if contacts is not None else None
        if activity is Activity.STILL:
            cadence = gct = intensity = None
            source = None
        elif (
            periodic is not None
            and periodic.cadence_spm is not None
            and confidence is not None
            and confidence >= TRUSTED_CONFIDENCE
        ):
            if self._contacts_agree(t_s, periodic.cadence_spm, contacts):
                self._agreed_s = t_s
            self.contacts_trusted = t_s - self._agreed_s <= self.trust_hold_s
            # Walking contacts are found with running landmarks: their count can be right while
            # their timing (contact time above all) is not. Walking reads the periodicity.
            if not self.contacts_trusted or activity is Activity.WALKING:
                cadence, source, gct = periodic.cadence_spm, CadenceSource.PERIODICITY, None
        return Metrics(
            t_s=t_s,
            cadence_spm=cadence,
            gct_ms=gct,
            step_count=self._whole_steps(),
            intensity_g=intensity,
            speed_m_s=None,
            quality=quality,
            activity=activity,
            cadence_source=source,
            cadence_confidence=confidence,
            lost_fraction=round(lost_fraction, 4),
            clipped_fraction=round(clipped_fraction, 4),
        )
