"""Sensor and link impairments: noise, bias, mounting, saturation, jitter, drift, packet loss,
no gyroscope.

All are off by default and all are seeded. Every random draw is keyed by the sample (or packet)
index, so the impaired stream is the same whatever block sizes it is read in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from firmware_sim.gait import (
    STREAM_BIAS,
    STREAM_DROP,
    STREAM_IMP_NOISE,
    STREAM_JITTER,
    STREAM_ORIENT,
    STREAM_PACKET,
    FloatArray,
    indexed_random,
)

_SPEC_KEYS = {
    "noise": "noise_g",
    "bias": "bias_g",
    "saturation": "saturation_g",
    "jitter": "jitter_ms",
    "drop": "drop_rate",
    "drift": "clock_drift_ppm",
}
_SPEC_FLAGS = {"orientation": "random_orientation", "accel-only": "accel_only"}
_MAX_JITTER_PERIODS = 0.45  # keeps timestamps strictly increasing and never reordered


@dataclass(frozen=True, slots=True)
class Impairments:
    """What can go wrong between the runner's body and the stream.

    Parameters
    ----------
    noise_g
        Extra white noise, RMS per axis (g), on top of the sensor's own ~0.02 g.
    bias_g
        A constant offset of this magnitude (g) in a seeded random direction.
    random_orientation
        A uniformly random 3D mounting rotation per seed (upside down included).
    saturation_g
        Accelerometer range: each axis clips at ±``saturation_g`` (typically 8 or 16).
    jitter_ms
        Timestamp jitter, RMS (ms). Each error is clipped to ±45 % of the sample period so
        timestamps stay strictly increasing (the effective RMS is lower near that bound).
    drop_rate
        Fraction of BLE packets lost. A packet is a run of 4–10 consecutive samples (size seeded),
        so losses are gaps in the timestamps, never reorderings.
    accel_only
        The sensor has no gyroscope: a foot pod streams acceleration only, like most clips and
        activity monitors (``accel-only,saturation=8`` at 100 Hz is a typical shoe clip).
    clock_drift_ppm
        The sensor clock runs fast (> 0) or slow: timestamps are true time × (1 + ppm·1e-6).
        The simulator's ground truth is expressed in that same sensor time base, so an evaluator
        compares like with like; cue times received from the engine are sensor times too.
    """

    noise_g: float = 0.0
    bias_g: float = 0.0
    random_orientation: bool = False
    saturation_g: float | None = None
    jitter_ms: float = 0.0
    drop_rate: float = 0.0
    clock_drift_ppm: float = 0.0
    accel_only: bool = False

    def __post_init__(self) -> None:
        for name in ("noise_g", "bias_g", "jitter_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.saturation_g is not None and self.saturation_g < 2.0:
            raise ValueError(f"saturation_g must be >= 2 g (or None), got {self.saturation_g}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if abs(self.clock_drift_ppm) >= 1e5:
            raise ValueError(f"clock_drift_ppm is implausible: {self.clock_drift_ppm}")

    @classmethod
    def from_spec(cls, spec: str) -> Impairments:
        """Parse a CLI string like ``noise=0.05,orientation,saturation=8,jitter=2,drop=0.01``.

        Keys: ``noise`` (g), ``bias`` (g), ``orientation`` and ``accel-only`` (flags),
        ``saturation`` (g), ``jitter`` (ms), ``drop`` (fraction), ``drift`` (ppm). An empty string
        or ``none`` means no impairment.
        """
        values: dict[str, float | bool] = {}
        text = spec.strip()
        if text.lower() in ("", "none"):
            return cls()
        for item in text.split(","):
            key, sep, value = (part.strip() for part in item.partition("="))
            if key in _SPEC_FLAGS and not sep:
                values[_SPEC_FLAGS[key]] = True
                continue
            if key not in _SPEC_KEYS or not sep:
                known = ", ".join([*(f"{k}=VALUE" for k in _SPEC_KEYS), *_SPEC_FLAGS])
                raise ValueError(f"bad impairment {item.strip()!r}; use a comma list of {known}")
            try:
                values[_SPEC_KEYS[key]] = float(value)
            except ValueError:
                raise ValueError(f"impairment {key!r} needs a number, got {value!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, float | bool | None]:
        """Field name → value (JSON-ready)."""
        return asdict(self)

    def packet_size(self, seed: int) -> int:
        """Samples per BLE packet for this seed (4–10)."""
        return int(np.random.default_rng([seed, STREAM_PACKET]).integers(4, 11))

    def mounting(self, seed: int) -> FloatArray | None:
        """The random mounting rotation matrix (3, 3), or ``None`` when orientation is off."""
        if not self.random_orientation:
            return None
        rng = np.random.default_rng([seed, STREAM_ORIENT])
        return np.asarray(Rotation.random(random_state=rng).as_matrix(), dtype=np.float64)

    def apply_values(
        self, acc_g: FloatArray, gyro_dps: FloatArray | None, first: int, seed: int
    ) -> tuple[FloatArray, FloatArray | None]:
        """Mounting, bias, extra noise and saturation on samples ``first, first + 1, …``."""
        n = acc_g.shape[0]
        rot = self.mounting(seed)
        if rot is not None:
            acc_g = _rotate(acc_g, rot)
            gyro_dps = None if gyro_dps is None else _rotate(gyro_dps, rot)
        if self.bias_g > 0:
            direction = np.random.default_rng([seed, STREAM_BIAS]).standard_normal(3)
            acc_g = acc_g + self.bias_g * direction / np.linalg.norm(direction)
        if self.noise_g > 0:
            acc_g = acc_g + self.noise_g * indexed_random(seed, STREAM_IMP_NOISE, first, n, 3)
        if self.saturation_g is not None:
            acc_g = np.clip(acc_g, -self.saturation_g, self.saturation_g)
        return acc_g, gyro_dps

    def timestamps(self, first: int, n: int, fs_hz: float, seed: int) -> FloatArray:
        """Sensor timestamps (s) of samples ``first … first + n - 1``: drift, then jitter."""
        scale = 1.0 + self.clock_drift_ppm * 1e-6
        t_s = np.arange(first, first + n) / fs_hz * scale
        if self.jitter_ms > 0:
            bound_s = _MAX_JITTER_PERIODS * scale / fs_hz
            err = self.jitter_ms / 1000 * indexed_random(seed, STREAM_JITTER, first, n, 1)[:, 0]
            # The stream starts at 0: the first sample cannot be stamped before it.
            t_s = np.maximum(t_s + np.clip(err, -bound_s, bound_s), 0.0)
        return t_s

    def kept(self, first: int, n: int, seed: int) -> FloatArray | None:
        """Boolean mask of the samples that reach the receiver, or ``None`` when none are lost."""
        if self.drop_rate <= 0 or n == 0:
            return None
        size = self.packet_size(seed)
        packets = np.arange(first, first + n) // size
        p0 = int(packets[0])
        draw = indexed_random(seed, STREAM_DROP, p0, int(packets[-1]) - p0 + 1, 1, uniform=True)
        return draw[packets - p0, 0] >= self.drop_rate


def _rotate(v: FloatArray, rot: FloatArray) -> FloatArray:
    """``v @ rot.T`` with elementwise arithmetic: a BLAS product may round differently with the
    block length, and the stream must not depend on how it is read."""
    return v[:, :1] * rot[:, 0] + v[:, 1:2] * rot[:, 1] + v[:, 2:] * rot[:, 2]
