"""Ground contacts (initial contact and toe-off) from accelerometer and optional gyroscope data.

Landmarks per placement (see ``docs/dsp.md`` for the physics and the calibration):

- ``shank``: IC is the impact peak of ``|a|``, which follows force onset by ~30 ms (the shock
  travels up the tibia and the soft tissue lets the sensor lag); TO is the trough of the
  acceleration along the shank's long axis (the mean-gravity direction), ~20 ms after force offset.
- ``foot``: IC is the impact, the sharpest change of acceleration just before the stance went
  still (or, without a gyroscope and with no still stance, found back from the push-off where the
  stride rhythm expects a contact); TO is the push-off: the first peak of ``|ω|`` after mid-stance
  (the pitch-rate minimum of Falbriard 2018, sign-free), or without a gyroscope the push-off peak
  of ``|a|``, after which ``|a|`` drops as the foot leaves the ground.
- ``trunk``: the vertical (principal-axis) acceleration tracks the vertical ground reaction force
  per body weight; a contact is the interval where it exceeds ``threshold_g``, corrected for the
  "effective contact" bias (Patoz 2022): it crosses late after IC and early before TO.

Everything sample-wise is vectorized over a bank of ``S`` streams; only candidate landmarks (a few
per second) go through Python. Candidates are handled in the order they are *decided* (the causal
order), which makes the output independent of block boundaries.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import median

import numpy as np
from numpy.typing import NDArray
from scipy.signal import butter, lfilter, sosfilt, sosfilt_zi

from dsp.axes import GravityAxis, PrincipalAxis
from dsp.events import Placement, StepEvent
from dsp.quality import GAP_PERIODS, QualityBlock
from dsp.windows import RunningMin, SlidingExtremum

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LandmarkConfig:
    """Timing model of one placement. Lags are landmark time minus true event time, in seconds."""

    ic_lag_s: float
    to_lag_s: float
    gct_min_s: float = 0.10
    gct_max_s: float = 0.45
    min_step_s: float = 0.45  # between two ICs seen by this sensor (a stride for one-leg sensors)
    refractory_fraction: float = 0.0  # ... or this fraction of the recent median interval, if
    # longer: a walking stride (~1.1 s) holds a push-off peak ~0.55 s after the impact
    ic_replace_s: float = 0.45  # a bigger landmark this soon after a pending IC replaces it
    hold_pending: bool = False  # shank: a pending IC holds until gct_max_s has passed
    max_interval_s: float = 2.0  # a longer interval between contacts is a pause, not a stride
    ic_rise_s: float = 0.0  # shank: an impact's height is its rise above the lowest |a| this
    # far before it (a sharp impact, not a broad push-off hump, is the contact)
    ic_back_s: float = 0.5  # an impact peak is the largest |a| over this span before it
    ic_ahead_s: float = 0.04  # ... and over this span after it (its confirmation latency)
    ic_min_g: float = 2.0  # shank: impact peak of |a|
    stance_anchored: bool = False  # foot: the IC is found back from the start of quiet stance
    quiet_gyro_dps: float = 60.0  # foot: quiet stance is |ω| below this (with a gyroscope) ...
    quiet_acc_g: float = (
        1.5  # ... and |a| within this of 1 g (a loose band: see _stance_starts) ...
    )
    quiet_min_s: float = 0.04  # ... for at least this long (with a gyroscope)
    quiet_min_acc_only_s: float = 0.02  # without one: the calm (below) holds this long
    calm_window_s: float = 0.05  # acc-only calm: over this span, the mean of | |a| - 1 g | ...
    calm_acc_g: float = 0.3  # ... below this (a clip rings around 1 g in stance, never still)
    calm_tilt_g: float = 0.6  # ... and the mean of |a - mean gravity direction| below this
    impact_window_s: float = 0.12  # foot: the impact is the sharpest change this far before it
    ic_relative: float = 0.25  # ... and at least this fraction of the recent median impact
    ic_relative_acc_only: float = 0.25  # foot without gyroscope: the same, for the jerk landmark
    ic_relative_push_off: float = 0.25  # ... found back from a push-off: at least this fraction
    swing_min_s: float = 0.15  # ... and this long after the last step's toe-off
    rhythm_min: float = 0.8  # ... and this fraction of the recent median stride after its IC
    supersede_ratio: float = 1.5  # a landmark this much above the last step's, within one
    # stride of it, shows that step was not a contact: it is taken (the detector re-locks)
    to_back_s: float = 0.10
    to_ahead_s: float = 0.08
    to_trough_max_g: float = 0.5  # shank: the long-axis trough must dip below this
    to_peak_min: float = 2.0  # foot: push-off |a| (g) without gyro ...
    to_drop_within_s: float = 0.04  # ... the largest over the last to_back_s, and |a| falls,
    # within this and before it rises above the peak again, by ...
    to_drop: float = 0.3  # ... this fraction of the peak's height above 1 g ...
    to_drop_min_g: float = 0.5  # ... and by at least this (see _to_ok)
    to_gyro_min_dps: float = 150.0  # foot: push-off |ω| (deg/s)
    threshold_g: float = 0.8  # trunk: contact threshold above the flight floor
    floor_window_s: float = 1.0  # trunk: the flight floor is the running minimum over this
    peak_min_g: float = 1.3  # trunk: a contact must reach this
    dip_max_s: float = 0.04  # trunk: a shorter dip below threshold is within one contact
    smooth_hz: float = 20.0  # trunk: low-pass before thresholding


CONFIGS: dict[Placement, LandmarkConfig] = {
    Placement.SHANK: LandmarkConfig(
        ic_lag_s=0.030,
        to_lag_s=0.020,
        gct_max_s=0.9,
        ic_back_s=0.3,
        ic_min_g=0.5,
        ic_rise_s=0.05,
        ic_replace_s=0.25,
        hold_pending=True,
        refractory_fraction=0.45,
        to_trough_max_g=0.6,
    ),
    Placement.FOOT: LandmarkConfig(
        ic_lag_s=0.002, to_lag_s=0.0, stance_anchored=True, ic_min_g=0.0, ic_relative=0.0
    ),
    Placement.TRUNK: LandmarkConfig(
        ic_lag_s=0.025, to_lag_s=-0.027, min_step_s=0.20, gct_min_s=0.12
    ),
}


@dataclass(slots=True)
class _Pending:
    """An initial contact waiting for its toe-off."""

    t_s: float  # landmark time
    value: float  # height of the landmark (|a| in g, or the jerk norm in g/s for a foot)
    segment: int
    index: int
    fell_s: float = -np.inf  # trunk: when an unconfirmed excursion fell back below threshold
    impact_g: float = np.nan  # peak |a| at the landmark (g)


@dataclass(slots=True)
class _StreamState:
    pending: _Pending | None = None
    rise: _Pending | None = None  # trunk: a rise through the threshold, not yet a contact
    last_ic_s: float = -np.inf
    last_ic_segment: int = -1
    last_to_s: float = -np.inf
    peaks: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=8))


class _History:
    """The last ``size`` samples of several per-sample arrays, addressable by absolute index."""

    def __init__(self, n_streams: int, size: int, names: tuple[str, ...]) -> None:
        self.size = size
        self.next = 0  # absolute index of the next sample
        self.ext_base = -size  # absolute index of column 0 of the last extension
        self.data = {k: np.full((n_streams, size), np.nan) for k in names}

    def extend(self, **block: FloatArray) -> dict[str, FloatArray]:
        """History + block, per name; keeps the last ``size`` samples for the next call."""
        ext = {k: np.concatenate([self.data[k], v], axis=1) for k, v in block.items()}
        self.ext_base = self.next - self.size
        self.next += next(iter(block.values())).shape[1]
        self.data = {k: v[:, -self.size :] for k, v in ext.items()}
        return ext

    def column(self, absolute: int) -> int:
        """Column of an absolute sample index in the arrays returned by the last :meth:`extend`."""
        return absolute - self.ext_base


class StepDetector:
    """Streaming ground-contact detector for a bank of streams of one placement and sample rate.

    Parameters
    ----------
    placement : Placement
        Where the sensors are worn (one configuration for the whole bank).
    fs_hz : float
        Nominal sample rate, 25–1000 Hz.
    n_streams : int
        Number of streams processed together (one athlete each).
    sensor_leg : str
        Reported as ``StepEvent.foot`` for foot and shank sensors.
    config : LandmarkConfig, optional
        Overrides the placement's default timing model.

    Notes
    -----
    Detection latency after the true toe-off is ``to_ahead_s + to_lag_s`` for a foot with a
    gyroscope and the shank (80–110 ms), ``to_drop_within_s`` for a foot without one (40–50 ms),
    and ``to_lag_s`` plus the low-pass delay for the trunk (≈ 0 ms).

    References: Falbriard et al. 2018 (foot landmarks), Bach et al. 2022 (shank), Patoz et al.
    2022 (trunk threshold); ``docs/dsp.md`` for the calibration.
    """

    def __init__(
        self,
        placement: Placement,
        fs_hz: float,
        n_streams: int = 1,
        *,
        sensor_leg: str = "left",
        config: LandmarkConfig | None = None,
    ) -> None:
        if not 25.0 <= fs_hz <= 1000.0:
            raise ValueError(f"sample rate {fs_hz} Hz is outside the supported 25–1000 Hz")
        self.placement = placement
        self.fs_hz = fs_hz
        self.n_streams = n_streams
        self.config = config or CONFIGS[placement]
        self.foot = sensor_leg if placement.one_leg else None
        self.reset()

    def _samples(self, seconds: float) -> int:
        return max(1, round(seconds * self.fs_hz))

    def reset(self) -> None:
        c, s = self.config, self.n_streams
        self._states = [_StreamState() for _ in range(s)]
        self._hist = _History(
            s, self._samples(max(c.gct_max_s, c.ic_back_s) + 0.2), ("t", "x", "y", "n", "seg")
        )
        if self.placement is Placement.TRUNK:
            self._axis: GravityAxis | PrincipalAxis = PrincipalAxis(self.fs_hz)
            nyquist = 0.5 * self.fs_hz
            self._sos = butter(2, min(c.smooth_hz, 0.8 * nyquist) / nyquist, output="sos")
            self._zi: FloatArray | None = None
            self._floor = RunningMin(s, self._samples(c.floor_window_s))
            self._prev = np.full(s, np.nan)
        else:
            self._axis = GravityAxis(self.fs_hz)
            self._last_acc = np.full((s, 3), np.nan)
            self._last_t = np.full(s, np.nan)
            # Samples of calm that make a stance, with and without a gyroscope.
            self._quiet_spans = {
                True: self._samples(c.quiet_min_s),
                False: self._samples(c.quiet_min_acc_only_s),
            }
            self._quiet = {  # not quiet before the stream's first sample
                gyro: RunningMin(s, span + 1, fill=0.0) for gyro, span in self._quiet_spans.items()
            }
            self._was_quiet = np.zeros(s, dtype=bool)
            # Without a gyroscope, calm is the mean deviation of |a| from 1 g over a short span
            # (FIR boxcar; its state starts as if the past were far from calm).
            width = self._samples(c.calm_window_s)
            self._calm_b = np.full(width, 1.0 / width)
            self._calm_zi = np.tile(np.arange(width - 1, 0, -1.0) / width, (2 * s, 1))
            # Samples before a decided stance start that may hold the impact.
            self._impact_span = {
                True: self._samples(c.impact_window_s),
                False: self._quiet_spans[False] + width + self._samples(c.impact_window_s),
            }
            self._ic = SlidingExtremum(s, self._samples(c.ic_back_s), self._samples(c.ic_ahead_s))
            # Per gyroscope presence. Without one, the push-off peak of |a| need not stay the
            # largest for long (the swing's drive may outgrow a weak push-off within 40 ms of
            # toe-off): any peak over the last to_back_s is a candidate, and the drop after it
            # decides (_to_ok) once to_drop_within_s has passed.
            one_sample = self.placement is not Placement.SHANK
            self._tos = {
                gyro: SlidingExtremum(
                    s,
                    self._samples(c.to_back_s),
                    1 if one_sample and not gyro else self._samples(c.to_ahead_s),
                    troughs=self.placement is Placement.SHANK,
                )
                for gyro in (True, False)
            }
            self._to_delay = {
                True: 0,
                False: self._samples(c.to_drop_within_s) - 1 if one_sample else 0,
            }
            # TO candidates decided in a later block: (decision index, 1, row, landmark index).
            self._carry: list[tuple[int, int, int, int]] = []

    def process(
        self,
        t_s: FloatArray,
        acc_g: FloatArray,
        gyro_dps: FloatArray | None,
        quality: QualityBlock,
    ) -> list[list[StepEvent]]:
        """One block per stream: ``t_s`` (S, n), ``acc_g`` and ``gyro_dps`` (S, 3, n).

        Returns, per stream, the steps confirmed by this block, in order of confirmation.
        """
        if t_s.shape[1] == 0:
            return [[] for _ in range(self.n_streams)]
        if self.placement is Placement.TRUNK:
            return self._process_trunk(t_s, acc_g, quality)
        return self._process_peaks(t_s, acc_g, gyro_dps, quality)

    # -- foot and shank: impact peak, then a toe-off extremum ---------------------------------

    def _process_peaks(
        self,
        t_s: FloatArray,
        acc_g: FloatArray,
        gyro_dps: FloatArray | None,
        quality: QualityBlock,
    ) -> list[list[StepEvent]]:
        c = self.config
        impact_span = 0
        rise = self._samples(c.ic_rise_s) if c.ic_rise_s > 0 else 0
        norm = np.sqrt(np.einsum("sin,sin->sn", acc_g, acc_g))
        gyro_norm = (
            None if gyro_dps is None else np.sqrt(np.einsum("sin,sin->sn", gyro_dps, gyro_dps))
        )
        self._to_on_norm = gyro_norm is None
        if self.placement is Placement.SHANK:
            impact = norm
            to_signal = self._axis.process(acc_g)
            ic_rows, ic_idx = self._ic.process(impact, quality.segment)
            ic_decided = ic_idx + self._ic.ahead
        else:
            impact = self._jerk(t_s, acc_g)
            to_signal = norm if gyro_norm is None else gyro_norm
            along = self._axis.process(acc_g) if gyro_norm is None else None
            ic_rows, ic_decided = self._stance_starts(norm, gyro_norm, along)
            # With a gyroscope the quiet span is exact: the impact lies before it began.
            ic_idx = ic_decided - (self._quiet_spans[True] if gyro_norm is not None else 0)
            impact_span = self._impact_span[gyro_norm is not None]
        ext = self._hist.extend(
            t=t_s, x=impact, y=to_signal, n=norm, seg=quality.segment.astype(float)
        )
        to_extremum = self._tos[gyro_norm is not None]
        to_rows, to_idx = to_extremum.process(to_signal, quality.segment)
        if gyro_norm is None and self.placement is Placement.FOOT:
            # Every |a| peak is a candidate here: only those high enough go through Python.
            high = ext["y"][to_rows, to_idx - self._hist.ext_base] >= c.to_peak_min
            to_rows, to_idx = to_rows[high], to_idx[high]
        delay = to_extremum.ahead + self._to_delay[gyro_norm is not None]
        # (decision index, kind 0 = IC | 1 = TO, row, landmark index): decision order is causal.
        cands = sorted(
            [
                (d, 0, r, i)
                for r, i, d in zip(
                    ic_rows.tolist(), ic_idx.tolist(), ic_decided.tolist(), strict=True
                )
            ]
            + [(i + delay, 1, r, i) for r, i in zip(to_rows.tolist(), to_idx.tolist(), strict=True)]
            + self._carry
        )
        # A candidate is handled once the samples it needs have come (the same whatever blocks).
        last = self._hist.next - 1
        self._carry = [cand for cand in cands if cand[0] > last]
        cands = [cand for cand in cands if cand[0] <= last]
        out: list[list[StepEvent]] = [[] for _ in range(self.n_streams)]
        col = self._hist.column
        gap_s = GAP_PERIODS / self.fs_hz
        for decided, kind, row, i in cands:
            st = self._states[row]
            j = col(i)
            if kind == 0 and c.stance_anchored:
                # The impact: the sharpest change of acceleration just before stance went quiet.
                lo = max(0, j - impact_span)
                window = ext["x"][row, lo : j + 1]  # NaN before the stream's first sample
                j = lo + int(np.argmax(np.where(np.isnan(window), -np.inf, window)))
                i = j + self._hist.ext_base
            # A hole in the data next to a landmark may have held the true extremum.
            span = ext["t"][row, max(0, 2 * j - col(decided)) : col(decided) + 1]
            if span.size > 1 and np.max(np.diff(span)) > gap_s:
                p = st.pending
                if kind == 1 and p is not None and ext["t"][row, j] - p.t_s >= c.gct_min_s:
                    # The pending contact may have ended in the hole: it cannot be measured, and
                    # holding it (a walking shank holds for gct_max_s) would refuse the next one.
                    st.pending = None
                continue
            t_i, seg = float(ext["t"][row, j]), int(ext["seg"][row, j])
            if kind == 0:
                # The impact in g: the largest |a| within the confirmation span of the landmark.
                d = self._ic.ahead
                impact_g = float(np.fmax.reduce(ext["n"][row, j - d : j + d + 1]))
                value = float(ext["x"][row, j])
                if rise:
                    # NaN before the stream's first sample: no rise can be measured there.
                    before = ext["n"][row, max(0, j - rise) : j]
                    value -= float(np.fmin.reduce(before)) if before.size else np.nan
                    if not np.isfinite(value):
                        continue
                if c.stance_anchored:
                    t_i = self._change_time(ext["t"][row], j)
                self._on_impact(st, _Pending(t_i, value, seg, i, impact_g=impact_g))
                continue
            if seg != int(ext["seg"][row, col(decided)]):
                continue
            after = ext["y"][row, j + 1 : col(decided) + 1]
            to_ok = self._to_ok(float(ext["y"][row, j]), after)
            to = t_i - c.to_lag_s
            p = st.pending
            if p is not None and p.segment == seg:
                if to - (p.t_s - c.ic_lag_s) > c.gct_max_s:
                    st.pending = p = None
                elif to - (p.t_s - c.ic_lag_s) < c.gct_min_s or not to_ok:
                    continue
            if p is None or p.segment != seg:
                if not (to_ok and c.stance_anchored and self._to_on_norm):
                    continue
                # No stance was seen before this push-off: fast strides of a heel striker slap
                # and roll through the whole contact. The impact is found back from the push-off.
                p = self._impact_before(st, row, j, ext)
                if p is None:
                    continue
                st.pending = p
            ic = p.t_s - c.ic_lag_s
            out[row].append(self._emit(st, ic, to, float(ext["t"][row, col(decided)])))
        return out

    def _stance_starts(
        self, norm: FloatArray, gyro_norm: FloatArray | None, along: FloatArray | None
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(rows, absolute indices) of the samples that complete a quiet stance.

        ``along`` is the acceleration along the mean gravity direction (g), needed without a
        gyroscope.

        The stance began ``self._quiet_spans[with gyro]`` samples before each of them.
        """
        c = self.config
        # Stance: the foot is still (|a| ≈ 1 g) and not rotating. Either alone is not enough: at
        # the end of swing the pitch rate crosses zero slowly while the foot still decelerates.
        if gyro_norm is not None:
            calm = (np.abs(norm - 1.0) < c.quiet_acc_g) & (gyro_norm < c.quiet_gyro_dps)
        else:
            assert along is not None
            # A real shoe clip rings and rolls through stance: |a| is near 1 g on average over
            # a few tens of ms, not sample by sample (measured on a shoe clip, 100 Hz). Mid-swing
            # also passes through 1 g, but with the foot pitched: the vector a then lies far from
            # the mean gravity direction ĝ (which a flat foot in stance dominates), by
            # |a - ĝ| = sqrt(|a|² - 2 a·ĝ + 1) ≈ 1 g against ≈ 0.3 g in stance.
            tilt = np.sqrt(np.maximum(norm * norm - 2.0 * along + 1.0, 0.0))
            both = np.concatenate([np.abs(norm - 1.0), tilt], axis=0)
            mean_dev, self._calm_zi = lfilter(self._calm_b, [1.0], both, axis=1, zi=self._calm_zi)
            s = self.n_streams
            calm = (mean_dev[:s] < c.calm_acc_g) & (mean_dev[s:] < c.calm_tilt_g)
        quiet = self._quiet[gyro_norm is not None].process(calm.astype(float)) > 0.5
        before = np.concatenate([self._was_quiet[:, None], quiet[:, :-1]], axis=1)
        self._was_quiet = quiet[:, -1].copy()
        rows, cols = np.nonzero(quiet & ~before)
        return rows, cols + self._hist.next

    def _impact_before(
        self, st: _StreamState, row: int, j_to: int, ext: dict[str, FloatArray]
    ) -> _Pending | None:
        """The impact of a contact whose push-off is at column ``j_to`` of ``ext``, found back from
        it (accelerometer-only foot, when no stance was seen): the sharpest change of acceleration
        from ``gct_max_s`` to ``gct_min_s`` before the push-off, after the last step's push-off
        and its swing, and at least ``ic_relative_push_off`` of the recent median impact."""
        c = self.config
        t = ext["t"][row]
        t_to = float(t[j_to])
        lo = max(0, j_to - self._samples(c.gct_max_s))
        hi = j_to - self._samples(c.gct_min_s)
        span_t = t[lo : hi + 1]
        # NaN before the stream's first sample: no impact there.
        inside = (span_t >= st.last_to_s + c.swing_min_s) & (span_t >= t_to - c.gct_max_s)
        if hi <= lo or not inside.any():
            return None
        first = lo + int(np.argmax(inside))
        window = ext["t"][row, first : j_to + 1]
        if np.max(np.diff(window)) > GAP_PERIODS / self.fs_hz:
            return None  # a hole in the contact may have held the impact
        # Up to the push-off itself: if the sharpest change is within gct_min_s of the "push-off",
        # that peak was an impact (it too rises and falls fast), not a push-off.
        k = first + int(np.argmax(ext["x"][row, first : j_to + 1]))
        if k > hi:
            return None
        value = float(ext["x"][row, k])
        seg = int(ext["seg"][row, k])
        if seg != int(ext["seg"][row, j_to]):
            return None
        if st.peaks and value < c.ic_relative_push_off * median(st.peaks):
            return None
        # Without a stance to anchor it, a contact is taken only where the stride rhythm expects
        # one: a late-swing peak also falls fast (into the impact), but a stride too soon after
        # the last; and after a pause (or at the start) there is no rhythm yet.
        interval = float(t[k]) - st.last_ic_s
        if seg != st.last_ic_segment or not st.intervals or interval > c.max_interval_s:
            return None
        if interval < c.rhythm_min * median(st.intervals):
            return None
        d = self._ic.ahead
        impact_g = float(np.fmax.reduce(ext["n"][row, max(0, k - d) : k + d + 1]))
        t_ic = self._change_time(t, k)
        return _Pending(t_ic, value, seg, k + self._hist.ext_base, impact_g=impact_g)

    @staticmethod
    def _change_time(t: FloatArray, k: int) -> float:
        """When the change of acceleration between samples ``k - 1`` and ``k`` happened: midway
        (unbiased whatever the rate; at 50 Hz, ``t[k]`` alone would be 10 ms late on average)."""
        half = 0.5 * (t[k] - t[k - 1]) if k >= 1 else np.nan
        return float(t[k] - half) if np.isfinite(half) else float(t[k])

    def _jerk(self, t_s: FloatArray, acc_g: FloatArray) -> FloatArray:
        """Norm of the first difference of acceleration over time, g/s: sharp at an impact,
        small in the smooth (if large) accelerations of swing."""
        acc = np.concatenate([self._last_acc[:, :, None], acc_g], axis=2)
        t = np.concatenate([self._last_t[:, None], t_s], axis=1)
        if acc_g.shape[2]:
            self._last_acc, self._last_t = acc_g[:, :, -1].copy(), t_s[:, -1].copy()
        diff = np.diff(acc, axis=2)
        dt = np.maximum(np.diff(t, axis=1), 0.5 / self.fs_hz)
        return np.nan_to_num(np.sqrt(np.einsum("sin,sin->sn", diff, diff)) / dt)

    def _to_ok(self, value: float, after: FloatArray) -> bool:
        """Is the extremum ``value`` a toe-off landmark, given the samples ``after`` it?"""
        c = self.config
        if self.placement is Placement.SHANK:
            return value < c.to_trough_max_g
        if not self._to_on_norm:
            return value >= c.to_gyro_min_dps
        # Without a gyroscope: the push-off peak of |a| is AT toe-off, and |a| drops right after
        # it, before the swing's drive builds up (the foot is in the air and the push is over);
        # the roll and the shoe's flex in late stance rise and fall by a few tenths of a g only.
        above = np.flatnonzero(after > value)
        before_rise = after[: above[0]] if above.size else after
        if before_rise.size == 0:
            return False
        drop_g = value - float(np.min(before_rise))
        return value >= c.to_peak_min and drop_g >= max(c.to_drop_min_g, c.to_drop * (value - 1.0))

    def _on_impact(self, st: _StreamState, cand: _Pending) -> None:
        c = self.config
        relative = (
            c.ic_relative_acc_only if c.stance_anchored and self._to_on_norm else c.ic_relative
        )
        floor = max(c.ic_min_g, relative * median(st.peaks)) if st.peaks else c.ic_min_g
        if cand.value < floor:
            return
        p = st.pending
        min_step_s = c.min_step_s
        if st.intervals:
            min_step_s = max(min_step_s, c.refractory_fraction * median(st.intervals))
            min_step_s = min(min_step_s, c.refractory_fraction * c.max_interval_s)
        if p is not None and cand.t_s - p.t_s < min_step_s:
            if cand.value > p.value and cand.t_s - p.t_s < c.ic_replace_s:
                st.pending = cand  # a bigger impact just after: the earlier was not it
            return
        if p is not None and c.hold_pending and cand.t_s - p.t_s < c.gct_max_s:
            return  # the pending contact may still end (walking: the push-off comes late)
        recent = cand.segment == st.last_ic_segment and cand.t_s - st.last_ic_s < min_step_s
        if p is None and recent and cand.value <= c.supersede_ratio * st.peaks[-1]:
            return  # e.g. a push-off peak just after an emitted step
        st.pending = cand

    def _emit(self, st: _StreamState, ic_s: float, to_s: float, emitted_s: float) -> StepEvent:
        p = st.pending
        assert p is not None
        regular = 1.0
        interval = p.t_s - st.last_ic_s
        if p.segment == st.last_ic_segment and interval <= self.config.max_interval_s:
            if st.intervals:
                regular = float(np.exp(-abs(interval / median(st.intervals) - 1.0) / 0.15))
            st.intervals.append(interval)
        typical = median(st.peaks) if st.peaks else 0.0
        strength = min(1.0, p.value / typical) if typical > 0 else 1.0
        st.peaks.append(p.value)
        st.last_ic_s, st.last_ic_segment = p.t_s, p.segment
        st.last_to_s = to_s
        st.pending = None
        return StepEvent(
            ic_s=ic_s,
            to_s=to_s,
            gct_ms=(to_s - ic_s) * 1000.0,
            foot=self.foot,
            confidence=round(regular * strength, 3),
            emitted_s=emitted_s,
            impact_g=p.impact_g,
        )

    # -- trunk: threshold crossings of the vertical acceleration ------------------------------

    def _process_trunk(
        self, t_s: FloatArray, acc_g: FloatArray, quality: QualityBlock
    ) -> list[list[StepEvent]]:
        """Contacts as excursions of the vertical acceleration above ``threshold_g``.

        An excursion is a contact once it reaches ``peak_min_g``; its IC is the LATEST rise through
        the threshold before that (a post-toe-off bump that never reaches the peak level is
        superseded) unless it follows a dip shorter than ``dip_max_s`` (then the rise before the
        dip), and its TO the first fall at least ``gct_min_s`` later (the dip that follows the
        impact transient within a contact is shorter than that).
        """
        c = self.config
        vertical = self._axis.process(acc_g)
        if self._zi is None:
            first = vertical[:, :1] if vertical.shape[1] else np.ones((self.n_streams, 1))
            self._zi = sosfilt_zi(self._sos)[:, None, :] * first[None, :, :]
        v, self._zi = sosfilt(self._sos, vertical, axis=-1, zi=self._zi)
        # Measured from the flight floor, the threshold ignores a positive accelerometer offset
        # along the vertical. Free fall reads 0 g: a floor below that is horizontal acceleration
        # leaking into the projection (the axis is never exactly vertical), not an offset.
        v = v - np.maximum(self._floor.process(v), 0.0)
        ext = self._hist.extend(t=t_s, x=v, y=v, n=v, seg=quality.segment.astype(float))
        n = t_s.shape[1]
        m = ext["t"].shape[1]
        prev = ext["x"][:, m - n - 1 : m - 1]
        cur = ext["x"][:, m - n :]
        thr, top = c.threshold_g, c.peak_min_g
        # kind 0: rise through thr, 1: rise through the peak level, 2: fall through thr
        kinds = np.stack(
            [(prev < thr) & (cur >= thr), (prev < top) & (cur >= top), (prev >= thr) & (cur < thr)]
        )
        kind_idx, rows, cols = np.nonzero(kinds)
        order = np.lexsort((kind_idx, cols, rows))
        out: list[list[StepEvent]] = [[] for _ in range(self.n_streams)]
        for kind, row, k in zip(
            kind_idx[order].tolist(),
            rows[order].tolist(),
            (cols[order] + m - n).tolist(),
            strict=True,
        ):
            seg = int(ext["seg"][row, k])
            if ext["t"][row, k] - ext["t"][row, k - 1] > GAP_PERIODS / self.fs_hz:
                continue  # a crossing across a gap is no landmark
            st = self._states[row]
            if kind == 1:
                if st.rise is not None and st.rise.segment == seg:
                    st.pending, st.rise = st.rise, None
                continue
            x0, x1 = ext["x"][row, k - 1], ext["x"][row, k]
            t0, t1 = ext["t"][row, k - 1], ext["t"][row, k]
            t_cross = float(t0 + (thr - x0) / (x1 - x0) * (t1 - t0))
            r = st.rise
            if kind == 0:
                brief_dip = r is not None and r.segment == seg and t_cross - r.fell_s < c.dip_max_s
                if st.pending is None and not brief_dip:
                    st.rise = _Pending(t_cross, 0.0, seg, self._hist.ext_base + k)
                continue
            p = st.pending
            if p is None:
                if r is not None:
                    r.fell_s = t_cross
                continue
            ic = p.t_s - c.ic_lag_s
            to = t_cross - c.to_lag_s
            if p.segment != seg or to - ic > c.gct_max_s:
                st.pending = None
                continue
            if to - ic < c.gct_min_s:
                continue
            start = max(self._hist.column(p.index), 0)
            p.value = p.impact_g = float(np.max(ext["x"][row, start:k]))
            out[row].append(self._emit(st, ic, to, float(t1)))
        return out
