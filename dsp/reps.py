"""Rep maths: the onset of a cadence change, the rep summary and the fatigue rule.

The physics: at a stride the runner's cadence leaves the easy level (~150-170 steps/min) and
approaches the stride level (~175-200 steps/min) along a roughly first-order response (time
constant ~0.6-1 s); easing off is the same curve downwards. One step interval holds exactly one
step, so ``60 / interval`` is the time average of the instantaneous cadence over that interval:
the onset fit averages its first-order model over each interval and is unbiased whatever the
step rate. Samples live in a fixed-size ring buffer, so memory stays flat over any session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.events import MAX_MISSING_S, RepSummary

FloatArray = NDArray[np.float64]

# Columns of a cadence sample: the interval it averages over, its cadence (raw and smoothed),
# the contact time of its step (NaN when unknown) and the stream time it became known.
START, END, CADENCE, SMOOTH, GCT, EMIT = range(6)


@dataclass(frozen=True, slots=True)
class FatigueRule:
    """When a rep counts as fatigued (stimulus without fatigue is the point of strides).

    A rep is flagged when its mean contact time is at least ``gct_increase_pct`` longer than the
    mean of the session's two best reps so far (shortest contact), or its mean cadence at least
    ``cadence_drop_pct`` lower than the mean of the two best (highest cadence). Each rule needs
    two earlier reps. ``consecutive_reps`` flagged reps in a row end a cued set early.
    """

    gct_increase_pct: float = 5.0
    cadence_drop_pct: float = 3.0
    consecutive_reps: int = 2

    def __post_init__(self) -> None:
        if self.gct_increase_pct <= 0 or self.cadence_drop_pct <= 0:
            raise ValueError("fatigue thresholds must be > 0 %")
        if self.consecutive_reps < 1:
            raise ValueError(f"consecutive_reps must be >= 1, got {self.consecutive_reps}")


def assess_fatigue(
    rule: FatigueRule,
    earlier: Sequence[RepSummary],
    mean_gct_ms: float | None,
    mean_cadence_spm: float | None,
) -> str | None:
    """The reason a rep is fatigued compared with the ``earlier`` reps, or ``None``."""
    reasons = []
    gcts = sorted(s.mean_gct_ms for s in earlier if s.mean_gct_ms is not None)
    if mean_gct_ms is not None and len(gcts) >= 2:
        increase_pct = 100.0 * (mean_gct_ms / (0.5 * (gcts[0] + gcts[1])) - 1.0)
        if increase_pct >= rule.gct_increase_pct:
            reasons.append(f"contact time +{increase_pct:.1f} % vs your best reps")
    cadences = sorted(
        (s.mean_cadence_spm for s in earlier if s.mean_cadence_spm is not None), reverse=True
    )
    if mean_cadence_spm is not None and len(cadences) >= 2:
        drop_pct = 100.0 * (1.0 - mean_cadence_spm / (0.5 * (cadences[0] + cadences[1])))
        if drop_pct >= rule.cadence_drop_pct:
            reasons.append(f"cadence -{drop_pct:.1f} % vs your best reps")
    return "; ".join(reasons) or None


class Ring:
    """A fixed-capacity ring buffer of float rows: memory stays flat over any session length."""

    def __init__(self, capacity: int, columns: int) -> None:
        self._data = np.full((capacity, columns), np.nan)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return int(self._data.shape[0])

    def append(self, row: Sequence[float]) -> None:
        self._data[self._next] = row
        self._next = (self._next + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def last(self, n: int) -> FloatArray:
        """The newest ``n`` rows (fewer if not yet filled), oldest first."""
        n = min(n, self._size)
        return self._data[(self._next - n + np.arange(n)) % self.capacity]

    def since(self, column: int, t_s: float) -> FloatArray:
        """Rows whose ``column`` is at least ``t_s``, oldest first (columns must not decrease)."""
        rows = self.last(self._size)
        return rows[rows[:, column] >= t_s]


def _interval_mean_step(
    start_s: FloatArray, end_s: FloatArray, t0_s: FloatArray, tau_s: FloatArray
) -> FloatArray:
    """Mean over each interval of the unit first-order step ``1 - exp(-(t - t0) / tau)``.

    Broadcasts ``t0_s`` and ``tau_s`` against the samples; a zero-width interval is a point sample.
    """

    def integral(t_s: FloatArray) -> FloatArray:
        x = np.maximum(t_s - t0_s, 0.0)
        return x + tau_s * np.expm1(-x / tau_s)

    width = end_s - start_s
    point = width < 1e-9
    mean = (integral(end_s) - integral(start_s)) / np.where(point, 1.0, width)
    at_end = -np.expm1(-np.maximum(end_s - t0_s, 0.0) / tau_s)
    return np.where(point, at_end, mean)


def fit_onset(
    start_s: FloatArray,
    end_s: FloatArray,
    cadence_spm: FloatArray,
    *,
    t_lo_s: float,
    t_hi_s: float,
    tau_grid_s: Sequence[float],
    step_s: float,
) -> float:
    """Least-squares onset of a first-order change in cadence, searched in ``[t_lo_s, t_hi_s]``.

    Model: ``c(t) = c0`` before the onset ``t0`` and ``c0 + (c1 - c0) (1 - exp(-(t - t0)/tau))``
    after; each sample is the model's mean over its interval. ``c0`` and ``c1`` are solved in
    closed form for every ``(t0, tau)`` of a grid (``step_s`` by ``tau_grid_s``), so the search is
    one vectorised pass. Works for rises and falls alike.
    """
    t0 = np.arange(t_lo_s, max(t_hi_s, t_lo_s) + 0.5 * step_s, step_s)
    tau = np.asarray(tau_grid_s, dtype=np.float64)[:, None, None]
    g = _interval_mean_step(start_s, end_s, t0[None, :, None], tau)
    gc = g - g.mean(axis=-1, keepdims=True)
    y = cadence_spm - cadence_spm.mean()
    sgg = np.einsum("kmn,kmn->km", gc, gc)
    sgy = gc @ y
    explained = np.where(sgg > 1e-12, sgy**2 / np.maximum(sgg, 1e-12), 0.0)
    _, best = np.unravel_index(np.argmax(explained), explained.shape)
    return float(t0[best])


def measure_rep(rep: int, start_s: float, end_s: float, samples: FloatArray) -> RepSummary:
    """The summary of one rep from the cadence samples whose interval middle lies in it.

    Mean cadence is time-weighted (steps per minute over the rep). ``time_to_stride_cadence_s``
    runs from the start until the cadence first reaches 95 % of the rep's median (interpolated
    between samples). The plateau starts three times that after the start; the cadence CV and
    the contact-time drift are measured on it, the drift as the least-squares slope of contact
    time against time times the plateau's length (ms; positive = contacts lengthen, a sign of
    fatigue; a slope uses every step, where thirds would throw most away).
    For a one-leg sensor the CV is that of stride intervals. Fatigue is assessed by the caller.
    """
    mid_s = 0.5 * (samples[:, START] + samples[:, END])
    rows = samples[(mid_s >= start_s) & (mid_s <= end_s)]
    mid_s = 0.5 * (rows[:, START] + rows[:, END])
    cadence = rows[:, CADENCE]
    missing_s = _uncovered_s(samples[:, START], samples[:, END], start_s, end_s)
    if rows.shape[0] == 0 or missing_s > MAX_MISSING_S:
        # A rep with a hole is flagged, not summarised: its figures would be a guess.
        return RepSummary(
            rep,
            start_s,
            end_s,
            end_s - start_s,
            None,
            None,
            None,
            None,
            None,
            False,
            None,
            missing_s=round(missing_s, 3),
        )
    width = rows[:, END] - rows[:, START]
    # Step intervals tile time, so weighting by width gives steps/min over the rep; point samples
    # (a cadence-only sensor) are equally spaced and simply averaged.
    weights = width if np.all(width > 1e-9) else np.ones_like(width)
    mean_cadence = float(np.average(cadence, weights=weights))
    target = 0.95 * np.median(cadence)
    reached = np.flatnonzero(cadence >= target)
    to_stride_s = None
    if reached.size:
        # Interpolate between the samples either side: a stride interval is ~0.7 s long.
        i = int(reached[0])
        t_s = mid_s[i]
        if i > 0 and cadence[i] > cadence[i - 1]:
            frac = (target - cadence[i - 1]) / (cadence[i] - cadence[i - 1])
            t_s = mid_s[i - 1] + frac * (mid_s[i] - mid_s[i - 1])
        to_stride_s = float(max(t_s - start_s, 0.0))
    # Three times the time to stride cadence is >= 3 time constants of a first-order rise: the
    # ramp's cadence and contact time are then within 5 % of their rep level.
    plateau = mid_s >= start_s + 3.0 * (to_stride_s or 0.0)
    if np.count_nonzero(plateau) < 4:
        plateau = mid_s >= start_s + (to_stride_s or 0.0)
    cv_pct = float(100.0 * np.std(cadence[plateau]) / np.mean(cadence[plateau]))
    gct = rows[:, GCT]
    known = ~np.isnan(gct)
    mean_gct = float(np.mean(gct[known])) if known.any() else None
    drift = None
    on_plateau = known & plateau
    if np.count_nonzero(on_plateau) >= 4:
        t_s = mid_s[on_plateau]
        slope = np.polyfit(t_s - t_s[0], gct[on_plateau], 1)[0]
        drift = float(slope * (t_s[-1] - t_s[0]))
    return RepSummary(
        rep=rep,
        start_s=start_s,
        end_s=end_s,
        duration_s=end_s - start_s,
        mean_cadence_spm=mean_cadence,
        mean_gct_ms=mean_gct,
        gct_drift_ms=drift,
        cadence_cv_pct=cv_pct,
        time_to_stride_cadence_s=to_stride_s,
        fatigue_flag=False,
        fatigue_reason=None,
        missing_s=round(missing_s, 3),
    )


def _uncovered_s(start_s: FloatArray, end_s: FloatArray, lo_s: float, hi_s: float) -> float:
    """Seconds of ``[lo_s, hi_s]`` that no ``[start_s, end_s]`` interval covers."""
    covered = 0.0
    reach = lo_s
    for a, b in sorted(zip(start_s.tolist(), end_s.tolist(), strict=True)):
        a, b = max(a, reach), min(b, hi_s)
        if b > a:
            covered += b - a
            reach = b
    return max(0.0, hi_s - lo_s - covered)
