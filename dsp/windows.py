"""Causal sliding-window extrema over a bank of streams, decided exactly once per sample.

A sample ``k`` is a *peak* when it is strictly above every sample in ``[k - back, k)`` and not
below any in ``(k, k + ahead]``; a *trough* likewise with the inequalities reversed. The decision
for ``k`` is made when sample ``k + ahead`` arrives, so the look-ahead (the detection latency) is
``ahead`` samples, and the result does not depend on how the stream was cut into blocks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import maximum_filter1d, minimum_filter1d

FloatArray = NDArray[np.float64]

# Added per segment number, it exceeds any signal range, so segments compare as walls.
_SEGMENT_WALL = 1e7


def _backward_max(x: FloatArray, size: int) -> FloatArray:
    """``out[..., p] = max(x[..., p - size : p])`` for ``p >= size`` (garbage before)."""
    # maximum_filter1d centres its window: the one centred at c covers
    # [c - size//2, c + (size-1)//2]. Shift it so that it ends just before p.
    centred = maximum_filter1d(x, size=size, axis=-1, mode="nearest")
    shift = (size - 1) // 2 + 1
    out = np.full_like(x, -np.inf)
    out[..., shift:] = centred[..., : x.shape[-1] - shift]
    return out


def _forward_max(x: FloatArray, size: int) -> FloatArray:
    """``out[..., p] = max(x[..., p + 1 : p + 1 + size])`` where it exists (garbage after)."""
    centred = maximum_filter1d(x, size=size, axis=-1, mode="nearest")
    shift = size // 2 + 1
    out = np.full_like(x, -np.inf)
    out[..., : x.shape[-1] - shift] = centred[..., shift:]
    return out


class SlidingExtremum:
    """Streaming peak (or trough) picker for ``n_streams`` streams sharing one sample rate.

    Parameters
    ----------
    n_streams : int
        Rows of every block passed to :meth:`process`.
    back : int
        Samples before ``k`` that ``x[k]`` must strictly exceed (the refractory span), >= 1.
    ahead : int
        Samples after ``k`` that ``x[k]`` must not fall below: the decision latency, >= 1.
    troughs : bool
        Pick minima instead of maxima.
    """

    def __init__(self, n_streams: int, back: int, ahead: int, *, troughs: bool = False) -> None:
        if back < 1 or ahead < 1:
            raise ValueError(f"back and ahead must be >= 1 sample, got {back} and {ahead}")
        self.n_streams = n_streams
        self.back = back
        self.ahead = ahead
        self.sign = -1.0 if troughs else 1.0
        self.reset()

    def reset(self) -> None:
        # History: `back` samples already decided (context) + up to `ahead` undecided ones.
        self._hist = np.full((self.n_streams, self.back), -np.inf)
        self._pending = 0
        self._next_index = 0  # absolute index of the first undecided sample

    def process(
        self, x: FloatArray, segment: NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Feed ``x`` (n_streams, n); return ``(rows, indices)`` of the newly decided extrema.

        ``indices`` are absolute sample indices since the last :meth:`reset`, in increasing order
        within each row. With ``segment`` (non-decreasing per stream, e.g. numbering the stretches
        between holes in the data), windows do not reach across segments: an earlier segment's
        samples cannot beat ``x[k]``, and a later segment's samples in the look-ahead veto it.
        """
        values = self.sign * x
        if segment is not None:
            values = values + _SEGMENT_WALL * segment
        ext = np.concatenate([self._hist, values], axis=1)
        first = self._hist.shape[1] - self._pending  # position of the first undecided sample
        last = ext.shape[1] - self.ahead  # positions < last have their full look-ahead
        rows = np.empty(0, dtype=np.intp)
        idx = np.empty(0, dtype=np.intp)
        if last > first:
            before = _backward_max(ext, self.back)[:, first:last]
            after = _forward_max(ext, self.ahead)[:, first:last]
            centre = ext[:, first:last]
            hits = (centre > before) & (centre >= after)
            rows, cols = np.nonzero(hits)
            idx = cols + self._next_index
            self._next_index += last - first
        decided_end = max(last, first)
        self._pending = ext.shape[1] - decided_end
        self._hist = ext[:, max(0, decided_end - self.back) :]
        return rows, idx


class RunningMin:
    """``out[k] = min(x[k - span + 1 .. k])`` per stream, causal and chunk-invariant.

    Samples before the stream's first read as ``fill``.
    """

    def __init__(self, n_streams: int, span: int, fill: float = np.inf) -> None:
        if span < 1:
            raise ValueError(f"span must be >= 1 sample, got {span}")
        self.n_streams = n_streams
        self.span = span
        self.fill = fill
        self.reset()

    def reset(self) -> None:
        self._hist = np.full((self.n_streams, self.span - 1), self.fill)

    def process(self, x: FloatArray) -> FloatArray:
        """``x`` (n_streams, n) → running minimum (n_streams, n)."""
        n = x.shape[1]
        ext = np.concatenate([self._hist, x], axis=1)
        self._hist = ext[:, ext.shape[1] - (self.span - 1) :]
        if n == 0:
            return np.empty_like(x)
        # A window of `span` centred at c ends at c + (span-1)//2: shift so that it ends at k.
        centred = minimum_filter1d(ext, size=self.span, axis=-1, mode="nearest")
        end = (self.span - 1) // 2
        stop = ext.shape[1] - end
        return centred[:, stop - n : stop]
