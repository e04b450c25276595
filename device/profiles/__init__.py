"""One module per BLE profile, plus what their stream decoders share.

Each characteristic value is a frozen dataclass with ``from_bytes`` and ``__bytes__`` that raise
``CodecError`` on anything malformed or out of range; the simulated footpod encodes with the same
classes the client decodes with. Each profile also has a stream decoder whose
``feed(host_t_s, data)`` turns one notification and its host receive time into the engine's
input (``SampleBlock`` or ``CadenceReading``), counts what it rejects, and never raises.

Shared here: ``DeviceClock`` (device time → host time, with drift) and ``Rejects`` (the counted,
logged-once policy for malformed notifications).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque

import numpy as np
from numpy.typing import ArrayLike, NDArray

from device.errors import CodecError

__all__ = ["DeviceClock", "Rejects"]


class Rejects:
    """Counts malformed notifications; logs the first of each kind, with its reason."""

    def __init__(self, logger: logging.Logger, profile: str) -> None:
        self._log = logger
        self._profile = profile
        self._seen: set[str] = set()
        self.count = 0

    def add(self, error: CodecError | str, kind: str | None = None) -> None:
        reason = error.reason if isinstance(error, CodecError) else error
        key = kind or reason
        self.count += 1
        if key not in self._seen:
            self._seen.add(key)
            self._log.warning(
                "%s: skipped a malformed notification (%s); further ones of this kind are "
                "only counted",
                self._profile,
                reason,
            )

    def reset(self) -> None:
        self._seen.clear()
        self.count = 0


def _lower_slope(t: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Slope of the lower convex hull of ``(t, y)`` at the mean of ``t`` (``t`` increasing).

    The line under every point that is highest at the mean time minimises the summed distance
    to the points: the classic linear-programming estimator of a clock offset and skew from
    one-way delays (Moon, Skelly and Towsley, 1999), robust to any delay spike.
    """
    hull: list[tuple[float, float]] = []
    for p in zip(t.tolist(), y.tolist(), strict=True):
        while len(hull) >= 2:
            (t0, y0), (t1, y1) = hull[-2], hull[-1]
            if (t1 - t0) * (p[1] - y0) - (y1 - y0) * (p[0] - t0) > 0:
                break
            hull.pop()
        hull.append(p)
    t_mid = float(t.mean())
    for (t0, y0), (t1, y1) in itertools.pairwise(hull):
        if t0 <= t_mid <= t1:
            return (y1 - y0) / (t1 - t0)
    return 0.0


class DeviceClock:
    """Maps a device clock onto the host clock from one-way (device → host) observations.

    Each notification gives ``host − device`` = true offset + drift × time + transit latency,
    and latency is never negative, so the offset is the lower envelope of those differences.
    ``DeviceClock`` keeps the minimum of every ``bin_s`` of device time. The drift is the slope
    of the line under all minima of the last ``drift_window_s`` that is highest at their mean
    time (the linear-programming estimator of clock skew from one-way delays, Moon, Skelly and
    Towsley 1999: latency spikes sit above it and cannot move it), clipped to
    ``±max_drift_ppm``. The offset is then the highest line of that slope under the minima of
    the last ``window_s``: a short window, so the offset follows the newest fast notifications,
    with a long one behind the slope, so its error is not multiplied by the extrapolation.
    Both are refitted once per bin.

    A constant part of the latency (the smallest transit the link ever achieves) cannot be told
    apart from the offset: mapped times are "when the fastest notification would have arrived".

    Parameters
    ----------
    window_s : float
        Device seconds of minima the offset is fitted to.
    drift_window_s : float
        Device seconds of minima the drift is fitted to.
    bin_s : float
        Width of one minimum bin, device seconds.
    max_drift_ppm : float
        Largest drift believed (crystals are within ±100 ppm; RC-timed IMUs within ~2 %).
    min_span_s : float
        History needed before the drift is (re-)estimated; until then it is taken as 0, or
        as it was before a ``reset(keep_drift=True)``.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        drift_window_s: float = 300.0,
        bin_s: float = 0.5,
        max_drift_ppm: float = 1000.0,
        min_span_s: float = 10.0,
    ) -> None:
        self.window_s = window_s
        self.drift_window_s = drift_window_s
        self.bin_s = bin_s
        self.max_drift = max_drift_ppm * 1e-6
        self.min_span_s = min_span_s
        self.reset()

    def reset(self, *, keep_drift: bool = False) -> None:
        """Forget the offset (the device clock restarted, or samples went missing), and the
        drift too unless ``keep_drift``."""
        self._bins: deque[tuple[float, float]] = deque()
        self._bin: int | None = None
        self._bin_point = (0.0, np.inf)
        self._t_ref = 0.0
        self._offset_s = np.nan
        if not keep_drift:
            self._drift = 0.0

    @property
    def ready(self) -> bool:
        return not np.isnan(self._offset_s)

    @property
    def drift_ppm(self) -> float:
        """Drift of ``host − device`` per device second, ppm (negative: the device runs fast)."""
        return self._drift * 1e6

    def observe(self, device_t_s: float, host_t_s: float) -> None:
        """One notification: a device time and the host time it was received."""
        y = host_t_s - device_t_s
        b = int(np.floor(device_t_s / self.bin_s))
        if self._bin is not None and b != self._bin:
            self._bins.append(self._bin_point)
            while self._bins[0][0] < self._bins[-1][0] - self.drift_window_s:
                self._bins.popleft()
            self._fit()
            self._bin_point = (device_t_s, y)
        elif y < self._bin_point[1]:
            self._bin_point = (device_t_s, y)
        self._bin = b
        if not self._bins:
            # Before the first bin completes: the running minimum, no drift.
            self._t_ref = device_t_s
            self._offset_s = y if np.isnan(self._offset_s) else min(self._offset_s, y)

    def excess_s(self, device_t_s: float, host_t_s: float) -> float:
        """How much later than the mapping predicts ``host_t_s`` arrived (≥ 0 up to noise)."""
        return host_t_s - float(self.to_host(device_t_s))

    def to_host(self, device_t_s: ArrayLike) -> NDArray[np.float64]:
        """Host times of device times (seconds)."""
        t = np.asarray(device_t_s, dtype=np.float64)
        return t + self._offset_s + self._drift * (t - self._t_ref)

    def _fit(self) -> None:
        pts = np.array(self._bins, dtype=np.float64)
        t, y = pts[:, 0], pts[:, 1]
        if t[-1] - t[0] >= self.min_span_s:
            self._drift = float(np.clip(_lower_slope(t, y), -self.max_drift, self.max_drift))
        recent = t >= t[-1] - self.window_s
        self._t_ref = float(t[-1])
        self._offset_s = float(np.min(y[recent] - self._drift * (t[recent] - self._t_ref)))
