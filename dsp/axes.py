"""Orientation-free axes: the sensor's mounting is unknown and may be upside down.

Two estimates, both causal and chunk-invariant:

- :class:`GravityAxis`: the direction of the slowly averaged acceleration (gravity, as seen in
  the sensor frame). On a shank it is the segment's long axis.
- :class:`PrincipalAxis`: the direction along which the acceleration varies most, oriented so that
  gravity projects positively. On the trunk it is the vertical: the vertical ground reaction force
  drives it from ~0 g in flight to 2–3 g at mid-stance. Robust to a biased horizontal channel,
  where the gravity direction is not.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

FloatArray = NDArray[np.float64]


def _ema_coefficients(tau_s: float, fs_hz: float) -> tuple[FloatArray, FloatArray]:
    alpha = 1.0 - np.exp(-1.0 / (tau_s * fs_hz))
    return np.array([alpha]), np.array([1.0, alpha - 1.0])


class _Ema:
    """First-order exponential average along the last axis, state carried between blocks.

    During the first ``tau_s`` of samples it is the exact running mean instead (the average of a
    handful of samples would otherwise be dominated by the very first one); from then on the
    recursion ``y[k] = y[k-1] + alpha (x[k] - y[k-1])`` takes over, seeded with that mean.
    """

    def __init__(self, tau_s: float, fs_hz: float) -> None:
        self.b, self.a = _ema_coefficients(tau_s, fs_hz)
        self.warmup = max(1, round(tau_s * fs_hz))
        self.count = 0
        self.total: FloatArray | None = None  # accumulator state during the warm-up
        self.zi: FloatArray | None = None

    def __call__(self, x: FloatArray) -> FloatArray:
        n = x.shape[-1]
        head = min(n, max(0, self.warmup - self.count))
        parts = []
        if head:
            # A recursive accumulator (not cumsum + carry) adds in the same order however the
            # stream is cut, so the result is bit-identical across block boundaries.
            zi = np.zeros_like(x[..., :1]) if self.total is None else self.total
            sums, self.total = lfilter([1.0], [1.0, -1.0], x[..., :head], axis=-1, zi=zi)
            parts.append(sums / np.arange(self.count + 1, self.count + head + 1))
            self.count += head
            if self.count == self.warmup:
                self.zi = (1.0 - self.b[0]) * parts[0][..., -1:]
        if head < n:
            assert self.zi is not None
            y, self.zi = lfilter(self.b, self.a, x[..., head:], axis=-1, zi=self.zi)
            parts.append(np.asarray(y))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


class GravityAxis:
    """Project acceleration on the unit vector of its exponential average.

    Parameters
    ----------
    fs_hz : float
        Nominal sample rate.
    tau_s : float
        Averaging time constant; long enough to span several strides.
    """

    def __init__(self, fs_hz: float, tau_s: float = 4.0) -> None:
        self.fs_hz = fs_hz
        self.tau_s = tau_s
        self.reset()

    def reset(self) -> None:
        self._ema = _Ema(self.tau_s, self.fs_hz)

    def process(self, acc_g: FloatArray) -> FloatArray:
        """``acc_g`` (S, 3, n) → projection (S, n) in g."""
        if acc_g.shape[-1] == 0:
            return np.zeros((acc_g.shape[0], 0))
        mean = self._ema(acc_g)
        norm = np.linalg.norm(mean, axis=1, keepdims=True)
        return np.einsum("sin,sin->sn", acc_g, mean / np.maximum(norm, 1e-9))


class PrincipalAxis:
    """Project acceleration on its principal axis, re-estimated every ``update_s`` of samples.

    The covariance is an exponential average of ``a aᵀ`` minus the outer product of the mean; its
    top eigenvector is taken at fixed sample counts (so that block boundaries do not matter) and
    held until the next update. Sign: gravity (the mean) projects positively. While the stream is
    too quiet for a principal direction (top eigenvalue below ``min_var_g2``), the mean direction
    is used.
    """

    def __init__(
        self, fs_hz: float, tau_s: float = 4.0, update_s: float = 0.5, min_var_g2: float = 0.05
    ) -> None:
        self.fs_hz = fs_hz
        self.tau_s = tau_s
        self.update_every = max(1, round(update_s * fs_hz))
        self.min_var_g2 = min_var_g2
        self.reset()

    def reset(self) -> None:
        self._mean = _Ema(self.tau_s, self.fs_hz)
        self._second = _Ema(self.tau_s, self.fs_hz)
        self._axis: FloatArray | None = None  # set by the update at sample 0
        self._count = 0

    def process(self, acc_g: FloatArray) -> FloatArray:
        """``acc_g`` (S, 3, n) → projection (S, n) in g."""
        s, _, n = acc_g.shape
        if n == 0:
            return np.zeros((s, 0))
        iu = np.triu_indices(3)
        outer = acc_g[:, iu[0], :] * acc_g[:, iu[1], :]  # (S, 6, n)
        mean = self._mean(acc_g)
        second = self._second(outer)
        # Sample positions (within this block) where the axis is re-estimated.
        first = (-self._count) % self.update_every
        at = np.arange(first, n, self.update_every)
        self._count += n
        axes = np.empty((s, at.size + 1, 3))
        axes[:, 0] = np.zeros((s, 3)) if self._axis is None else self._axis
        if at.size:
            cov = np.zeros((s, at.size, 3, 3))
            cov[:, :, iu[0], iu[1]] = np.moveaxis(second[:, :, at], 1, 2)
            cov[:, :, iu[1], iu[0]] = cov[:, :, iu[0], iu[1]]
            m = np.moveaxis(mean[:, :, at], 1, 2)  # (S, U, 3)
            cov -= m[..., :, None] * m[..., None, :]
            values, vectors = np.linalg.eigh(cov)
            top = vectors[..., -1]
            quiet = values[..., -1] < self.min_var_g2
            m_unit = m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-9)
            top = np.where(quiet[..., None], m_unit, top)
            top *= np.where(np.einsum("sui,sui->su", top, m) < 0, -1.0, 1.0)[..., None]
            axes[:, 1:] = top
            self._axis = top[:, -1]
        # Sample k uses the latest update at or before k.
        which = np.searchsorted(at, np.arange(n), side="right")
        return np.einsum("sin,sni->sn", acc_g, axes[:, which])
