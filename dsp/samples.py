"""The core's input: timestamped blocks of acceleration (g) and optional angular rate (deg/s)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """``n`` samples: ``t_s`` (n,) in stream seconds, ``acc_g`` (n, 3), ``gyro_dps`` (n, 3) | None.

    Any block size is legal, including zero. Timestamps must not decrease within a block.
    """

    t_s: FloatArray
    acc_g: FloatArray
    gyro_dps: FloatArray | None = None

    def __post_init__(self) -> None:
        n = self.t_s.shape[0]
        if self.t_s.ndim != 1 or self.acc_g.shape != (n, 3):
            raise ValueError(
                f"expected t_s (n,) and acc_g (n, 3), got {self.t_s.shape} and {self.acc_g.shape}"
            )
        if self.gyro_dps is not None and self.gyro_dps.shape != (n, 3):
            raise ValueError(f"gyro_dps must be (n, 3) like acc_g, got {self.gyro_dps.shape}")

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    @classmethod
    def empty(cls, with_gyro: bool = False) -> SampleBlock:
        return cls(np.empty(0), np.empty((0, 3)), np.empty((0, 3)) if with_gyro else None)

    @classmethod
    def concat(cls, blocks: Sequence[SampleBlock]) -> SampleBlock:
        """One block from several consecutive ones (all with gyro, or all without)."""
        if not blocks:
            return cls.empty()
        gyros = [b.gyro_dps for b in blocks]
        with_gyro = gyros[0] is not None
        if any((g is not None) != with_gyro for g in gyros):
            raise ValueError("cannot concatenate blocks with and without gyro")
        return cls(
            np.concatenate([b.t_s for b in blocks]),
            np.concatenate([b.acc_g for b in blocks]),
            np.concatenate([g for g in gyros if g is not None]) if with_gyro else None,
        )

    def slice(self, start: int, stop: int) -> SampleBlock:
        """Samples ``start:stop`` (a view, no copy)."""
        gyro = None if self.gyro_dps is None else self.gyro_dps[start:stop]
        return SampleBlock(self.t_s[start:stop], self.acc_g[start:stop], gyro)


@dataclass(frozen=True, slots=True)
class CadenceReading:
    """One reading of a cadence-only sensor (a standard RSC footpod), steps/min of both feet."""

    t_s: float
    cadence_spm: float
    speed_m_s: float | None = None
