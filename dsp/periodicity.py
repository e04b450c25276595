"""Contact-free cadence: the stride periodicity of the acceleration norm, and the activity.

Whatever the placement, a runner's or walker's acceleration repeats once per stride (two steps):
a one-leg sensor sees its own leg's cycle, a trunk sensor sees a left and a right step that differ
a little (the belt sits on one side, the body sways). So the dominant peak of the autocorrelation
of ``|a|`` over a few seconds, at a lag between the shortest and the longest plausible stride,
gives the stride period ``L`` and the cadence ``120 / L`` steps/min without finding a single
contact: the robust cross-check commercial footpods rely on (stride-science notes), and the one to
trust when contact detection disagrees. Its price is latency: it describes the last
``window_s`` seconds, lagging a pace change by about half of that.

Samples are binned onto a uniform time grid (at most ``max_grid_hz``) before the autocorrelation,
so lost samples are holes in a masked autocorrelation rather than a shift of every later lag;
jitter lands in the right bin; a 1 kHz stream costs no more than a 100 Hz one. Half-second grid
blocks whose ``|a|`` barely moves are *still* and masked out too, so a runner who starts after
standing is measured from the first strides. Every estimate uses only samples before the second
it describes: the results do not depend on how the stream was cut into blocks.

The peak height ``r`` (the normalised autocorrelation, 1 for a perfectly repeating stride) is the
evidence; the confidence discounts it for lost samples: ``r * (1 - lost / loss_tolerance)``, so a
window with more than half of ``loss_tolerance`` of its samples lost is never confident.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.fft import irfft, next_fast_len, rfft

from dsp.events import Activity

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class PeriodicityReading:
    """One stream's estimate for one second: what the metrics need of it."""

    cadence_spm: float | None
    confidence: float
    activity: Activity | None


@dataclass(frozen=True, slots=True)
class PeriodicityEstimate:
    """One estimate per requested second (arrays aligned with the request).

    ``cadence_spm`` is NaN where there is no periodicity to measure (still, too little data);
    ``confidence`` is in [0, 1]; ``lost_fraction`` is the share of the window's samples (at the
    nominal rate) that never arrived; ``activity`` holds ``Activity`` values or ``None``
    (moving, but no clear periodicity).
    """

    cadence_spm: FloatArray
    peak_r: FloatArray
    confidence: FloatArray
    lost_fraction: FloatArray
    activity: list[Activity | None]

    def reading(self, i: int) -> PeriodicityReading:
        """Request ``i`` as one reading."""
        cadence = float(self.cadence_spm[i])
        return PeriodicityReading(
            None if math.isnan(cadence) else cadence, float(self.confidence[i]), self.activity[i]
        )


class PeriodicityCadence:
    """Streaming stride-periodicity cadence for ``n_streams`` streams of one nominal rate.

    Parameters
    ----------
    n_streams : int
        Rows of every block.
    fs_hz : float
        Nominal sample rate of the streams.
    window_s : float
        Span of the autocorrelation: at least three strides of the slowest walk.
    min_moving_s : float
        Moving (not still) data needed in the window for an estimate: two strides or more.
    stride_range_s : (float, float)
        Shortest and longest stride period searched (240 and 60 steps/min).
    still_std_g : float
        A half-second grid block whose ``|a|`` has a standard deviation below this is still.
    still_s : float
        The athlete is still when every block of the last ``still_s`` is still (or empty).
    one_leg : bool
        A foot or shank sensor (its cycle is its leg's stride) rather than a trunk sensor.
    strong_peak_ratio : float
        A peak at least this high relative to the highest is a candidate stride lag.
    step_peak_ratio : float
        Trunk: a stride has a peak at half its lag at least this high relative to its own.
    loss_tolerance : float
        Confidence falls linearly to zero as the lost fraction reaches this.
    walking_max_spm : float
        Below this cadence a moving athlete is walking, at or above it running (walking runs at
        ~100–125 steps/min, the slowest jog at ~140).
    max_grid_hz : float
        The grid rate: the stream rate, but no finer than this.

    Notes
    -----
    Cost per estimate: three real FFTs of about ``2 * window_s * grid_hz`` points, batched over
    every stream that ticks in a block.
    """

    def __init__(
        self,
        n_streams: int,
        fs_hz: float,
        *,
        window_s: float = 6.0,
        min_moving_s: float = 2.5,
        stride_range_s: tuple[float, float] = (0.5, 2.0),
        still_std_g: float = 0.05,
        still_s: float = 2.0,
        one_leg: bool = True,
        strong_peak_ratio: float = 0.7,
        step_peak_ratio: float = 0.3,
        loss_tolerance: float = 0.4,
        walking_max_spm: float = 135.0,
        max_grid_hz: float = 100.0,
    ) -> None:
        self.n_streams = n_streams
        self.fs_hz = fs_hz
        self.grid_hz = min(fs_hz, max_grid_hz)
        self.block = max(1, round(0.5 * self.grid_hz))
        blocks = max(2, math.ceil(window_s * self.grid_hz / self.block))
        self.n_grid = blocks * self.block
        self.window_s = self.n_grid / self.grid_hz
        self.min_moving_bins = round(min_moving_s * self.grid_hz)
        self.lag_lo = max(2, math.floor(stride_range_s[0] * self.grid_hz))
        self.lag_hi = min(self.n_grid // 3, math.ceil(stride_range_s[1] * self.grid_hz))
        self.still_std_g = still_std_g
        self.still_blocks = max(1, round(still_s * self.grid_hz / self.block))
        self.one_leg = one_leg
        self.strong_peak_ratio = strong_peak_ratio
        self.step_peak_ratio = step_peak_ratio
        self.loss_tolerance = loss_tolerance
        self.walking_max_spm = walking_max_spm
        self.n_fft = next_fast_len(2 * self.n_grid, real=True)
        # Samples kept: the window at the nominal rate, plus slack for jitter.
        self.history = math.ceil(self.window_s * fs_hz) + 4
        self.reset()

    def reset(self) -> None:
        # Ring buffers of the last `history` samples; column `_head` is the oldest.
        self._t = np.full((self.n_streams, self.history), np.nan)
        self._x = np.full((self.n_streams, self.history), np.nan)
        self._head = 0

    def _remember(self, t_s: FloatArray, norm_g: FloatArray) -> None:
        """Write a block into the rings (20 ms blocks must not copy seconds of history)."""
        n = t_s.shape[1]
        if n >= self.history:
            self._t[:], self._x[:] = t_s[:, -self.history :], norm_g[:, -self.history :]
            self._head = 0
            return
        cols = (self._head + np.arange(n)) % self.history
        self._t[:, cols], self._x[:, cols] = t_s, norm_g
        self._head = (self._head + n) % self.history

    def process(
        self,
        t_s: FloatArray,
        norm_g: FloatArray,
        rows: IntArray,
        cols: IntArray,
        at_s: FloatArray,
    ) -> PeriodicityEstimate:
        """Feed one block; estimate at the requested seconds.

        ``t_s`` and ``norm_g`` are (S, n): timestamps and ``|a|`` of the block. Request ``i`` is
        stream ``rows[i]`` at second ``at_s[i]``, whose first sample at or after it is block column
        ``cols[i]``: the estimate uses the ``window_s`` before ``at_s[i]``.
        """
        if rows.size == 0:
            self._remember(t_s, norm_g)
            empty = np.empty(0)
            return PeriodicityEstimate(empty, empty, empty, empty, [])
        order = (self._head + np.arange(self.history)) % self.history
        t_ext = np.concatenate([self._t[:, order], t_s], axis=1)
        x_ext = np.concatenate([self._x[:, order], norm_g], axis=1)
        self._remember(t_s, norm_g)
        # The `history` samples before each requested second, gathered into (R, history).
        end = cols + self.history
        take = end[:, None] + np.arange(-self.history, 0)[None, :]
        t_win = t_ext[rows[:, None], take]
        x_win = x_ext[rows[:, None], take]
        return self._estimate(t_win, x_win, at_s)

    def _grid(
        self, t_win: FloatArray, x_win: FloatArray, at_s: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Bin each window onto the grid: (mean |a| per bin, samples per bin), (R, n_grid)."""
        r_count = t_win.shape[0]
        start_s = at_s - self.window_s
        pos = np.floor((t_win - start_s[:, None]) * self.grid_hz + 1e-6)
        valid = np.isfinite(pos) & (pos >= 0) & (pos < self.n_grid) & np.isfinite(x_win)
        flat = (np.arange(r_count)[:, None] * self.n_grid + np.where(valid, pos, 0)).astype(np.intp)
        total = np.bincount(flat[valid], x_win[valid], minlength=r_count * self.n_grid)
        count = np.bincount(flat[valid], minlength=r_count * self.n_grid)
        shape = (r_count, self.n_grid)
        return total.reshape(shape).astype(float), count.reshape(shape).astype(float)

    def _estimate(
        self, t_win: FloatArray, x_win: FloatArray, at_s: FloatArray
    ) -> PeriodicityEstimate:
        total, count = self._grid(t_win, x_win, at_s)
        filled = count > 0
        mean = np.where(filled, total / np.maximum(count, 1.0), 0.0)
        # Lost samples, counted against the nominal rate (a jittered sample may share a grid bin
        # with its neighbour and leave the next bin empty: that is no loss).
        expected = self.window_s * self.fs_hz
        lost = np.clip(1.0 - count.sum(axis=1) / expected, 0.0, 1.0)

        # Still blocks: |a| barely moves over half a second (empty blocks count as still too).
        r_count = mean.shape[0]
        nb = self.n_grid // self.block
        bm = mean.reshape(r_count, nb, self.block)
        bf = filled.reshape(r_count, nb, self.block)
        n_b = bf.sum(axis=2)
        mu_b = bm.sum(axis=2) / np.maximum(n_b, 1)
        var_b = (np.where(bf, bm - mu_b[:, :, None], 0.0) ** 2).sum(axis=2) / np.maximum(n_b, 1)
        moving_block = (n_b >= 2) & (np.sqrt(var_b) >= self.still_std_g)
        still_now = ~moving_block[:, -self.still_blocks :].any(axis=1)
        mask = filled & np.repeat(moving_block, self.block, axis=1)

        # Masked autocorrelation: lags count only the pairs of samples both present and moving.
        m = mask.astype(float)
        n_m = m.sum(axis=1)
        mu = (mean * m).sum(axis=1) / np.maximum(n_m, 1.0)
        y = (mean - mu[:, None]) * m
        lags = min(2 * self.lag_hi + 2, self.n_grid)  # a trunk's step doubled may reach 2 * hi
        acov = self._autocorrelation(y)[:, :lags]
        # Pairs of samples present at each lag: n - k for a full window (the common case).
        pairs = np.repeat((self.n_grid - np.arange(lags, dtype=float))[None, :], len(m), axis=0)
        holes = np.nonzero(n_m < self.n_grid)[0]
        pairs[holes] = self._autocorrelation(m[holes])[:, :lags]
        enough = pairs > 0.25 * np.maximum(n_m, 1.0)[:, None]
        c = np.where(enough, acov / np.maximum(pairs, 1.0), np.nan)
        r = c / np.where(c[:, :1] > 0, c[:, :1], np.nan)

        # Longer lags overlap less of the window: unnormalised by the overlap, the autocorrelation
        # fades with lag, which is what makes the first of several equal peaks win the choice.
        fading = acov / np.where(acov[:, :1] > 0, acov[:, :1], np.nan)
        lag, peak = self._stride_lag(r, fading)
        ok = (n_m >= self.min_moving_bins) & ~still_now & np.isfinite(lag)
        cadence = np.where(ok, 120.0 * self.grid_hz / np.where(ok, lag, 1.0), np.nan)
        peak = np.where(ok, np.clip(peak, 0.0, 1.0), 0.0)
        confidence = peak * np.clip(1.0 - lost / self.loss_tolerance, 0.0, 1.0)
        activity: list[Activity | None] = []
        for still, cad, conf in zip(
            still_now.tolist(), cadence.tolist(), confidence.tolist(), strict=True
        ):
            if still:
                activity.append(Activity.STILL)
            elif math.isnan(cad) or conf < 0.3:
                activity.append(None)
            else:
                activity.append(
                    Activity.WALKING if cad < self.walking_max_spm else Activity.RUNNING
                )
        return PeriodicityEstimate(cadence, peak, confidence, lost, activity)

    def _autocorrelation(self, x: FloatArray) -> FloatArray:
        """Raw autocorrelation of each row, by FFT. One transform per row: a batched transform
        may round differently with the batch's size, and the estimate must not depend on which
        streams tick together."""
        out = np.empty((x.shape[0], self.n_fft))
        for i, row in enumerate(x):
            f = rfft(row, self.n_fft)
            out[i] = irfft(f.real**2 + f.imag**2, self.n_fft)
        return out

    def _stride_lag(self, r: FloatArray, fading: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The stride lag (grid samples, refined between samples) and its peak height, per row.

        A stride repeats at every multiple of its lag, and a clean signal's later peaks can be as
        high as the first: the stride is the SHORTEST lag whose peak is nearly as high as the
        highest (``strong_peak_ratio``, on the ``fading`` autocorrelation: not normalised by the
        overlap of each lag). A trunk sensor's left and right steps can look alike
        enough that the shortest strong lag is one step (a walk at 110 steps/min has its step
        where a sprint has its stride): a stride has a step at half its lag, so a lag without a
        peak at half of it (``step_peak_ratio``) is a step, and the stride is twice it.
        """
        lo, hi = self.lag_lo, self.lag_hi
        rows = np.arange(r.shape[0])
        peaks = _peaks(r)
        score = np.where(peaks[:, lo:hi], fading[:, lo:hi], -np.inf)
        top = score.max(axis=1)
        found = np.isfinite(top)
        strong = score >= self.strong_peak_ratio * np.where(found, top, np.inf)[:, None]
        best = np.argmax(strong, axis=1) + lo
        if not self.one_leg:
            for i in np.nonzero(found)[0].tolist():
                height = r[i, best[i]]
                if _max_near(r[i], best[i] / 2, 0.25) < self.step_peak_ratio * height:
                    double = _argpeak_near(r[i], peaks[i], 2 * best[i])
                    found[i] = double is not None
                    best[i] = double or lo
        b = np.where(found, best, lo)
        y0, y1, y2 = r[rows, b - 1], r[rows, b], r[rows, b + 1]
        curve = y0 - 2.0 * y1 + y2
        shift = np.where(curve < 0, 0.5 * (y0 - y2) / np.where(curve < 0, curve, -1.0), 0.0)
        lag = np.where(found, b + np.clip(shift, -0.5, 0.5), np.nan)
        height = np.where(found, y1 - 0.25 * (y0 - y2) * shift, 0.0)
        return lag, height


def _peaks(r: FloatArray) -> NDArray[np.bool_]:
    """Local maxima of each row (NaN compares false: no peak where too few pairs overlap)."""
    out = np.zeros(r.shape, dtype=bool)
    out[:, 1:-1] = (r[:, 1:-1] > r[:, :-2]) & (r[:, 1:-1] >= r[:, 2:])
    return out


def _argpeak_near(r: FloatArray, peaks: NDArray[np.bool_], lag: float) -> int | None:
    """The highest peak of one row within 10 % of ``lag`` (None if there is none)."""
    a = max(1, math.floor(0.9 * lag))
    b = min(r.shape[0] - 1, math.ceil(1.1 * lag) + 1)
    idx = np.nonzero(peaks[a:b])[0]
    if idx.size == 0:
        return None
    return int(a + idx[np.argmax(r[a:b][idx])])


def _max_near(r: FloatArray, lag: float, tolerance: float) -> float:
    """The highest value of one row within ``tolerance`` (relative) of ``lag``: a trunk sensor
    on one hip splits the step peak in two, one each side of half the stride."""
    a = max(1, math.floor((1 - tolerance) * lag))
    b = min(r.shape[0], math.ceil((1 + tolerance) * lag) + 1)
    window = r[a:b]
    return float(np.nanmax(window)) if np.isfinite(window).any() else -math.inf
