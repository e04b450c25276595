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
from scipy.signal import butter, sosfilt, sosfilt_zi

from dsp.axes import GravityAxis, PrincipalAxis
from dsp.events import Placement, StepEvent
from dsp.landmarks import CONFIGS, LandmarkConfig
from dsp.quality import GAP_PERIODS, QualityBlock
from dsp.steps_foot import FootStance, change_time, push_off_ok
from dsp.windows import RunningMin, SlidingExtremum

__all__ = ["CONFIGS", "LandmarkConfig", "StepDetector"]

FloatArray = NDArray[np.float64]


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
            s,
            self._samples(max(c.gct_max_s, c.ic_back_s, c.swing_s) + 0.2),
            ("t", "x", "y", "n", "seg"),
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
            self._foot = FootStance(c, self.fs_hz, s)
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
            impact = self._foot.jerk(t_s, acc_g)
            to_signal = norm if gyro_norm is None else gyro_norm
            along = self._axis.process(acc_g) if gyro_norm is None else None
            ic_rows, ic_decided = self._foot.stance_starts(norm, gyro_norm, along, self._hist.next)
            # With a gyroscope the quiet span is exact: the impact lies before it began.
            ic_idx = ic_decided - (self._foot.quiet_spans[True] if gyro_norm is not None else 0)
            impact_span = self._foot.impact_span[gyro_norm is not None]
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
                if c.swing_s > 0 and not self._after_swing(st, row, j, ext):
                    continue
                if c.stance_anchored:
                    t_i = change_time(ext["t"][row], j)
                    # A walked swing pauses its pitch rate after toe-off: no stance yet. Without
                    # a gyroscope the calm test (tilt) keeps the swing out on its own.
                    after_to_s = c.swing_min_s if self._to_on_norm else c.stance_after_to_s
                    if seg == st.last_ic_segment and t_i < st.last_to_s + after_to_s:
                        continue
                self._on_impact(st, _Pending(t_i, value, seg, i, impact_g=impact_g))
                continue
            if seg != int(ext["seg"][row, col(decided)]):
                continue
            after = ext["y"][row, j + 1 : col(decided) + 1]
            to_ok = self._to_ok(float(ext["y"][row, j]), after)
            to = t_i - c.to_lag_s
            p = st.pending
            gct_max_s = (
                c.gct_max_acc_only_s if c.stance_anchored and self._to_on_norm else c.gct_max_s
            )
            if p is not None and p.segment == seg:
                if to - (p.t_s - c.ic_lag_s) > gct_max_s:
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

    def _impact_before(
        self, st: _StreamState, row: int, j_to: int, ext: dict[str, FloatArray]
    ) -> _Pending | None:
        """The impact of a contact whose push-off is at column ``j_to`` of ``ext``, found back from
        it (accelerometer-only foot, when no stance was seen): the sharpest change of acceleration
        from ``push_off_back_s`` to ``gct_min_s`` before the push-off, after the last step's
        push-off and its swing, and at least ``ic_relative_push_off`` of the recent median
        impact."""
        c = self.config
        t = ext["t"][row]
        t_to = float(t[j_to])
        # A running contact with no still stance is short; a walked one always has a stance.
        back_s = min(c.gct_max_s, c.push_off_back_s)
        lo = max(0, j_to - self._samples(back_s))
        hi = j_to - self._samples(c.gct_min_s)
        span_t = t[lo : hi + 1]
        # NaN before the stream's first sample: no impact there.
        inside = (span_t >= st.last_to_s + c.swing_min_s) & (span_t >= t_to - back_s)
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
        t_ic = change_time(t, k)
        return _Pending(t_ic, value, seg, k + self._hist.ext_base, impact_g=impact_g)

    def _after_swing(self, st: _StreamState, row: int, j: int, ext: dict[str, FloatArray]) -> bool:
        """Did the shank swing before the impact at column ``j`` of ``ext``?

        A swinging shank's long-axis acceleration (``ext["y"]``) falls well below 1 g: the foot
        leaves the ground and the shank pitches forward. A walking push-off raises ``|a|`` as high
        as a soft heel strike some 550 ms after it, but from a stance whose long axis stays near
        1 g. The fall must come after the last step's IC (and its first ``gct_min_s``) and within
        ``swing_s`` before the impact.
        """
        c = self.config
        lo = max(0, j - self._samples(c.swing_s))
        since_s = -np.inf
        if int(ext["seg"][row, j]) == st.last_ic_segment:
            since_s = st.last_ic_s + c.gct_min_s
        # NaN before the stream's first sample (its time compares False): no swing seen there.
        fell = (ext["y"][row, lo : j + 1] < c.swing_max_g) & (ext["t"][row, lo : j + 1] >= since_s)
        return bool(fell.any())

    def _to_ok(self, value: float, after: FloatArray) -> bool:
        """Is the extremum ``value`` a toe-off landmark, given the samples ``after`` it?"""
        c = self.config
        if self.placement is Placement.SHANK:
            return value < c.to_trough_max_g
        if not self._to_on_norm:
            return value >= c.to_gyro_min_dps
        return push_off_ok(c, value, after)

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
