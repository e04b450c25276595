"""Closed-form waveform pieces the sensor signals are built from, and the steps they follow.

Every piece is a function of time and of a step's landmarks only (no state), so any sample can be
computed on its own: vectorised over samples, and the same whatever blocks the stream is read in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from firmware_sim.gait import LEFT, FloatArray

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
Seconds = FloatArray | float  # a time per sample, or one for all

# Columns of the per-step draws of the shoe, the mounts and the stance (stream STREAM_SHOE,
# standard normals clipped to ±3).
ZS_MICRO = slice(0, 6)  # phases of the stance micro-motion, two sines per axis
ZS_SLAP, ZS_HEEL_OFF, ZS_RING, ZS_SWAY, ZS_LOAD = 6, 7, 8, 9, 10
SHOE_COLUMNS = 11


@dataclass(frozen=True, slots=True)
class StepArrays:
    """Consecutive steps of both legs: IC and TO (s), leg (0 left, 1 right), pace intensity
    (0 easy … 1 stride), walking (no flight phase), the per-step standard normals ``z``
    (n, STEP_NOISE_COLUMNS) and ``z_shoe`` (n, SHOE_COLUMNS), and the stands that overlap them:
    ``stands_s`` (m, 3) rows of (closing IC, still from, still until)."""

    ic_s: FloatArray
    to_s: FloatArray
    leg: IntArray
    intensity: FloatArray
    z: FloatArray
    z_shoe: FloatArray
    walking: BoolArray
    stands_s: FloatArray


def up(t: FloatArray, start: Seconds, dur: Seconds) -> tuple[FloatArray, FloatArray]:
    """Rising half raised-cosine 0 → 1 over ``dur``: value and integral since ``start``."""
    u = np.clip((t - start) / dur, 0.0, 1.0)
    return np.sin(np.pi / 2 * u) ** 2, dur * (u - np.sin(np.pi * u) / np.pi) / 2


def down(t: FloatArray, start: Seconds, dur: Seconds) -> tuple[FloatArray, FloatArray]:
    """Falling half raised-cosine 1 → 0 over ``dur`` (for ``t >= start``): value and integral."""
    v = np.clip((t - start) / dur, 0.0, 1.0)
    return np.cos(np.pi / 2 * v) ** 2, dur * (v + np.sin(np.pi * v) / np.pi) / 2


def lobe(
    t: FloatArray, peak: Seconds, rise: Seconds, fall: Seconds
) -> tuple[FloatArray, FloatArray]:
    """Asymmetric raised-cosine bump of height 1 at ``peak``: value and running integral."""
    up_v, up_i = up(t, peak - rise, rise)
    down_v, down_i = down(t, peak, fall)
    return np.where(t < peak, up_v, down_v), up_i + down_i


def impact(
    tau_s: FloatArray, rise_s: float, ring_hz: float, ring_decay_s: float, ring_gain: float
) -> FloatArray:
    """Unit impact from ``tau_s = 0``: a pulse peaking at ``rise_s`` plus damped ringing."""
    tau = np.maximum(tau_s, 0.0)
    pulse = tau / rise_s * np.exp(1.0 - tau / rise_s)
    return pulse + ring_gain * np.exp(-tau / ring_decay_s) * np.sin(2 * np.pi * ring_hz * tau)


def impact_amplitude(base_g: FloatArray, z: FloatArray, max_g: float) -> FloatArray:
    """Per-step impact size: faster pace hits harder, ±10 % from step to step."""
    return np.minimum(base_g * np.exp(0.1 * z), max_g)


def ringing(tau_s: FloatArray, hz: Seconds, decay_s: Seconds) -> FloatArray:
    """Unit zero-mean ringing of a soft mount struck at ``tau_s = 0``: 0 before.

    ``exp(-tau / decay) (sin(w tau) - K / decay)`` with ``K = w decay^2 / (1 + (w decay)^2)``, the
    integral of the damped sine: a sensor on soft tissue, a belt or a clip moves against the body
    and comes back, so its ringing carries no net impulse.
    """
    tau = np.maximum(tau_s, 0.0)
    omega = 2 * np.pi * hz
    k = omega * decay_s**2 / (1 + (omega * decay_s) ** 2)
    ring = np.exp(-tau / decay_s) * (np.sin(omega * tau) - k / decay_s)
    return np.where(tau_s < 0, 0.0, ring)


def sensor_strides(t: FloatArray, steps: StepArrays) -> tuple[IntArray, IntArray]:
    """The sensor (left) leg's step indices in ``steps``, and the stride index of every sample."""
    own = np.flatnonzero(steps.leg == LEFT)
    j = np.searchsorted(steps.ic_s[own], t, side="right") - 1
    if j[0] < 0 or j[-1] > own.size - 2:
        raise ValueError("the steps given do not cover the samples")
    return own, j


def still_weight(t: FloatArray, stands_s: FloatArray, restart_s: float) -> FloatArray:
    """How far each sample is into standing still: 0 while stepping, 1 when still.

    A raised cosine rises from each stand's closing IC to its start (the feet settle) and falls
    from its end over ``restart_s`` (the first step away).
    """
    w = np.zeros(t.size)
    for closing, start, end in stands_s:
        rise, _ = up(t, closing, start - closing)
        fall, _ = down(t, end, restart_s)
        w = np.maximum(w, np.where(t < end, rise, fall) * (t >= closing))
    return w
