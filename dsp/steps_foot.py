"""A shoe sensor's stance, impact and push-off, for :class:`dsp.steps.StepDetector`.

Physics (see ``docs/dsp.md``, "Landmarks per placement"): a shoe is not rigid. In stance it
slaps down, flexes and rolls over the toes, so ``|a|`` is near 1 g only on average and only for
part of the contact; with a gyroscope, stance is the foot no longer rotating. The impact at
initial contact is the sharpest change of acceleration (jerk); the push-off at toe-off is the
pitch-rate minimum before swing (Falbriard et al. 2018), or without a gyroscope the push-off peak
of ``|a|``, after which ``|a|`` drops as the foot leaves the ground.

Everything here is sample-wise and vectorized over the bank, except :func:`push_off_ok` and
:func:`change_time`, which the detector calls for a few candidates per second.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from dsp.landmarks import LandmarkConfig
from dsp.windows import RunningMin

FloatArray = NDArray[np.float64]


class FootStance:
    """Streaming stance starts and jerk of a bank of ``n_streams`` shoe sensors.

    Parameters
    ----------
    config : LandmarkConfig
        The foot's timing model (quiet and calm thresholds, spans).
    fs_hz : float
        Nominal sample rate.
    n_streams : int
        Rows of every block.

    Notes
    -----
    ``quiet_spans[with_gyro]`` samples of calm make a stance; ``impact_span[with_gyro]`` is how
    many samples before a decided stance start may hold the impact.
    """

    def __init__(self, config: LandmarkConfig, fs_hz: float, n_streams: int) -> None:
        c, s = config, n_streams
        self.config = config
        self.fs_hz = fs_hz
        self.n_streams = n_streams
        self._last_acc = np.full((s, 3), np.nan)
        self._last_t = np.full(s, np.nan)
        self.quiet_spans = {
            True: self._samples(c.quiet_min_s),
            False: self._samples(c.quiet_min_acc_only_s),
        }
        self._quiet = {  # not quiet before the stream's first sample
            gyro: RunningMin(s, span + 1, fill=0.0) for gyro, span in self.quiet_spans.items()
        }
        self._was_quiet = np.zeros(s, dtype=bool)
        # Without a gyroscope, calm is the mean deviation of |a| from 1 g over a short span
        # (FIR boxcar; its state starts as if the past were far from calm).
        width = self._samples(c.calm_window_s)
        self._calm_b = np.full(width, 1.0 / width)
        self._calm_zi = np.tile(np.arange(width - 1, 0, -1.0) / width, (2 * s, 1))
        # With a gyroscope: the mean of | |a| - 1 g | over the quiet span (same far-from-calm
        # start).
        span = self.quiet_spans[True] + 1
        self._quiet_b = np.full(span, 1.0 / span)
        self._quiet_zi = np.tile(np.arange(span - 1, 0, -1.0) / span, (s, 1))
        self.impact_span = {
            True: self._samples(c.impact_window_s),
            False: self.quiet_spans[False] + width + self._samples(c.impact_window_s),
        }

    def _samples(self, seconds: float) -> int:
        return max(1, round(seconds * self.fs_hz))

    def stance_starts(
        self,
        norm: FloatArray,
        gyro_norm: FloatArray | None,
        along: FloatArray | None,
        first_index: int,
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(rows, absolute indices) of the samples of this block that complete a quiet stance.

        ``norm`` is ``|a|`` (g) and ``gyro_norm`` ``|ω|`` (deg/s) per sample, (S, n); ``along``
        the acceleration along the mean gravity direction (g), needed without a gyroscope;
        ``first_index`` the absolute index of the block's first sample. The stance began
        ``quiet_spans[with gyro]`` samples before each of them.
        """
        c = self.config
        if gyro_norm is not None:
            # Stance: the foot no longer rotates. A shoe slaps, flexes and rolls in stance, so
            # |a| may stray ~1 g from 1 g; the band only keeps out the swing's pauses of the
            # pitch rate (between the toe-off lobe and the swing peak, and before the impact),
            # where the foot accelerates at 5-10 g.
            dev = np.abs(norm - 1.0)
            calm = (dev < c.quiet_acc_g) & (gyro_norm < c.quiet_gyro_dps)
            # A walked swing also pauses its pitch rate before the contact, gently enough to
            # stay within that band (1.4-2.4 g): on average over the span it is far from 1 g.
            mean_dev, self._quiet_zi = lfilter(self._quiet_b, [1.0], dev, axis=1, zi=self._quiet_zi)
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
        if gyro_norm is not None:
            quiet &= mean_dev < c.quiet_mean_acc_g
        before = np.concatenate([self._was_quiet[:, None], quiet[:, :-1]], axis=1)
        self._was_quiet = quiet[:, -1].copy()
        rows, cols = np.nonzero(quiet & ~before)
        return rows, cols + first_index

    def jerk(self, t_s: FloatArray, acc_g: FloatArray) -> FloatArray:
        """Norm of the first difference of acceleration over time, g/s (S, n): sharp at an
        impact, small in the smooth (if large) accelerations of swing."""
        acc = np.concatenate([self._last_acc[:, :, None], acc_g], axis=2)
        t = np.concatenate([self._last_t[:, None], t_s], axis=1)
        if acc_g.shape[2]:
            self._last_acc, self._last_t = acc_g[:, :, -1].copy(), t_s[:, -1].copy()
        diff = np.diff(acc, axis=2)
        dt = np.maximum(np.diff(t, axis=1), 0.5 / self.fs_hz)
        return np.nan_to_num(np.sqrt(np.einsum("sin,sin->sn", diff, diff)) / dt)


def change_time(t_s: FloatArray, k: int) -> float:
    """When the change of acceleration between samples ``k - 1`` and ``k`` happened: midway
    (unbiased whatever the rate; at 50 Hz, ``t_s[k]`` alone would be 10 ms late on average)."""
    half = 0.5 * (t_s[k] - t_s[k - 1]) if k >= 1 else np.nan
    return float(t_s[k] - half) if np.isfinite(half) else float(t_s[k])


def push_off_ok(config: LandmarkConfig, peak_g: float, after_g: FloatArray) -> bool:
    """Is a peak of ``|a|`` of ``peak_g`` a push-off, given the samples ``after_g`` it?

    The push-off peak of ``|a|`` is AT toe-off, and ``|a|`` drops right after it, before the
    swing's drive builds up (the foot is in the air and the push is over): within
    ``to_drop_within_s`` and before rising above the peak again, by ``to_drop`` of its height
    above 1 g and at least ``to_drop_min_g``. The roll and the shoe's flex in late stance rise
    and fall by a few tenths of a g only.
    """
    c = config
    above = np.flatnonzero(after_g > peak_g)
    before_rise = after_g[: above[0]] if above.size else after_g
    if before_rise.size == 0:
        return False
    drop_g = peak_g - float(np.min(before_rise))
    return peak_g >= c.to_peak_min and drop_g >= max(c.to_drop_min_g, c.to_drop * (peak_g - 1.0))
