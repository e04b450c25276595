"""Signal quality: gaps in the timestamps (lost packets) and accelerometer saturation.

A gap is an interval between consecutive samples longer than ``gap_periods`` nominal sample
periods; jitter below that is tolerated. Samples are tagged with a segment number that increases
at every gap long enough to hold a whole contact (``split_s``), so later stages never pair
landmarks across such a hole (no invented steps); across a shorter one (a lost packet or two)
both landmarks of a contact can still be observed, and the detector instead refuses a landmark
that a hole touches (the true extremum may have been in it).
Saturation needs no knowledge of the sensor's range: a clipped axis sits at the same extreme
value for consecutive samples, which a live signal of several g never does. A sample counts as
saturated when an axis repeats its predecessor's value at or beyond ``saturation_min_g`` (so the
first sample of each plateau is not counted: a plateau of k samples counts k - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

GAP_PERIODS = 2.5  # an inter-sample interval longer than this many nominal periods is a gap


@dataclass(frozen=True, slots=True)
class QualityBlock:
    """Per-sample annotations of one block of a bank of streams (rows = streams)."""

    segment: IntArray  # (S, n) segment number of each sample
    saturated: NDArray[np.bool_]  # (S, n)
    gap_rows: NDArray[np.intp]  # gaps that END in this block: stream row,
    gap_index: NDArray[np.intp]  # position (in the block) of the first sample after the gap,
    gap_start_s: FloatArray  # time of the last sample before it,
    gap_end_s: FloatArray  # time of the first sample after it,
    gap_lost: IntArray  # and the number of samples missing in it


class QualityMonitor:
    """Tag gaps and saturated samples for ``n_streams`` streams of nominal rate ``fs_hz``.

    Parameters
    ----------
    gap_periods : float
        An inter-sample interval longer than this many nominal periods is a gap.
    split_s : float
        A gap longer than this starts a new segment (no ground contact is shorter).
    saturation_min_g : float
        Only plateaus at or beyond this magnitude count as clipping.
    """

    def __init__(
        self,
        n_streams: int,
        fs_hz: float,
        gap_periods: float = GAP_PERIODS,
        split_s: float = 0.1,
        saturation_min_g: float = 4.0,
    ) -> None:
        self.n_streams = n_streams
        self.fs_hz = fs_hz
        self.gap_s = gap_periods / fs_hz
        self.split_s = max(split_s, self.gap_s)
        self.saturation_min_g = saturation_min_g
        self.reset()

    def reset(self) -> None:
        self._last_t = np.full(self.n_streams, np.nan)
        self._last_acc = np.full((self.n_streams, 3), np.nan)
        self._segment = np.zeros(self.n_streams, dtype=np.int64)
        self.samples = np.zeros(self.n_streams, dtype=np.int64)
        self.saturated_samples = np.zeros(self.n_streams, dtype=np.int64)
        self.gaps = np.zeros(self.n_streams, dtype=np.int64)
        self.lost_samples = np.zeros(self.n_streams, dtype=np.int64)

    def process(self, t_s: FloatArray, acc_g: FloatArray) -> QualityBlock:
        """``t_s`` (S, n), ``acc_g`` (S, 3, n)."""
        n = t_s.shape[1]
        t_ext = np.concatenate([self._last_t[:, None], t_s], axis=1)
        dt = np.diff(t_ext, axis=1)
        is_gap = dt > self.gap_s  # NaN (stream start) compares False
        segment = self._segment[:, None] + np.cumsum(dt > self.split_s, axis=1)
        rows, idx = np.nonzero(is_gap)
        start = t_ext[rows, idx]
        end = t_ext[rows, idx + 1]
        lost = np.maximum(np.rint((end - start) * self.fs_hz).astype(np.int64) - 1, 1)

        acc_ext = np.concatenate([self._last_acc[:, :, None], acc_g], axis=2)
        flat = (np.diff(acc_ext, axis=2) == 0) & (np.abs(acc_g) >= self.saturation_min_g)
        saturated = flat.any(axis=1)

        if n:
            self._last_t = t_s[:, -1].copy()
            self._last_acc = acc_g[:, :, -1].copy()
            self._segment = segment[:, -1].copy()
        self.samples += n
        self.saturated_samples += saturated.sum(axis=1)
        np.add.at(self.gaps, rows, 1)
        np.add.at(self.lost_samples, rows, lost)
        return QualityBlock(segment, saturated, rows, idx, start, end, lost)
