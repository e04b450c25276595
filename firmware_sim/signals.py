"""Accelerometer (g) and gyroscope (deg/s) of a foot, shank or trunk sensor, from the true steps.

Every waveform is a closed-form function of time and of the step it falls in, so any sample can be
computed on its own (vectorised over samples, no state, no per-sample loop). Accelerations are
specific force: a sensor at rest reads +1 g along "up". Segment frames are x forward, y left, z up
(for the shank, z runs along the shank toward the knee).

Physics per placement (the landmarks a step detector relies on):

- foot: the pitch angle is the integral of a pitch rate built from raised-cosine lobes (a negative
  dip at IC, quiet mid-stance, a negative lobe peaking AT toe-off, the big positive mid-swing
  peak, sized so the angle closes over every stride); gravity is rotated by that angle. The impact
  at IC is a 3 ms pulse with 40 Hz ringing; push-off adds an |a| peak at TO. The pod sits on the
  laces facing backward (sensor x to the heel, y to the runner's right, z up), so its y gyro reads
  the pitch rate toes-up positive, the sign footpod papers plot (Falbriard et al. 2018).
- shank: the impact peak in |a| comes a per-athlete 27–32 ms after true IC (±3 ms per step), the
  long-axis acceleration sits at 1–2 g in stance and dips to −0.3…−0.8 g a per-athlete 12–23 ms
  after TO (±5 ms), as seen against force plates (Bach et al. 2022); a 2–4 g hump at mid-swing.
- trunk: vertical specific force equals vertical ground reaction force over body weight (0 g in
  flight); each contact is the classic two-component force curve, an impact transient (a raised
  cosine of 45–70 ms, 0.6–1.2 g, larger at faster pace) on an active half sine whose peak balances
  the impulse (mean 1 g over a step), seen through a first-order soft-tissue low-pass (5–15 ms);
  a braking-then-propulsive anterior-posterior wave and a medio-lateral push alternating with the
  leg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.events import Placement
from firmware_sim.gait import (
    LEFT,
    Z_IC_DIP,
    Z_IMPACT,
    Z_SHANK_DIP,
    Z_SHANK_LAG,
    Z_SHANK_TO,
    Z_SWING,
    Z_TOE_OFF,
    Z_TRUNK_AP,
    Z_TRUNK_ML,
    Z_TRUNK_PEAK,
    AthleteProfile,
    FloatArray,
)

IntArray = NDArray[np.int64]
Seconds = FloatArray | float  # a time per sample, or one for all

_SHANK_TILT_IC_RAD = 0.12  # shank inclination at IC (lower end ahead of the knee)
_SHANK_TILT_TO_RAD = -0.5  # and at TO (lower end behind)
_SHANK_DIP_WIDTH_S = 0.014
_BROAD_TO = 0.6  # share of the foot's toe-off pitch-rate lobe that is broad heel-off
_SHARP_TO_RISE_S, _SHARP_TO_FALL_S = 0.025, 0.03


@dataclass(frozen=True, slots=True)
class StepArrays:
    """Consecutive steps of both legs: IC and TO (s), leg (0 left, 1 right), pace intensity
    (0 easy … 1 stride) and the per-step standard normals ``z`` (n, STEP_NOISE_COLUMNS)."""

    ic_s: FloatArray
    to_s: FloatArray
    leg: IntArray
    intensity: FloatArray
    z: FloatArray


def has_gyro(placement: Placement) -> bool:
    """Only the foot pod carries a gyroscope."""
    return placement is Placement.FOOT


def synthesize(
    placement: Placement, t_s: FloatArray, steps: StepArrays, profile: AthleteProfile
) -> tuple[FloatArray, FloatArray | None]:
    """Noise-free ``acc_g`` (n, 3) and ``gyro_dps`` (n, 3) or ``None`` at true times ``t_s``.

    ``steps`` must cover the samples: two sensor-leg strides before the first sample and one
    after the last.
    """
    if placement is Placement.FOOT:
        return _foot(t_s, steps)
    if placement is Placement.SHANK:
        return _shank(t_s, steps, profile), None
    return _trunk(t_s, steps, profile), None


def _up(t: FloatArray, start: Seconds, dur: Seconds) -> tuple[FloatArray, FloatArray]:
    """Rising half raised-cosine 0 → 1 over ``dur``: value and integral since ``start``."""
    u = np.clip((t - start) / dur, 0.0, 1.0)
    return np.sin(np.pi / 2 * u) ** 2, dur * (u - np.sin(np.pi * u) / np.pi) / 2


def _down(t: FloatArray, start: Seconds, dur: Seconds) -> tuple[FloatArray, FloatArray]:
    """Falling half raised-cosine 1 → 0 over ``dur`` (for ``t >= start``): value and integral."""
    v = np.clip((t - start) / dur, 0.0, 1.0)
    return np.cos(np.pi / 2 * v) ** 2, dur * (v + np.sin(np.pi * v) / np.pi) / 2


def _lobe(
    t: FloatArray, peak: Seconds, rise: Seconds, fall: Seconds
) -> tuple[FloatArray, FloatArray]:
    """Asymmetric raised-cosine bump of height 1 at ``peak``: value and running integral."""
    up_v, up_i = _up(t, peak - rise, rise)
    down_v, down_i = _down(t, peak, fall)
    return np.where(t < peak, up_v, down_v), up_i + down_i


def _impact(
    tau_s: FloatArray, rise_s: float, ring_hz: float, ring_decay_s: float, ring_gain: float
) -> FloatArray:
    """Unit impact from ``tau_s = 0``: a pulse peaking at ``rise_s`` plus damped ringing."""
    tau = np.maximum(tau_s, 0.0)
    pulse = tau / rise_s * np.exp(1.0 - tau / rise_s)
    return pulse + ring_gain * np.exp(-tau / ring_decay_s) * np.sin(2 * np.pi * ring_hz * tau)


def _impact_amplitude(base_g: FloatArray, z: FloatArray, max_g: float) -> FloatArray:
    """Per-step impact size: faster pace hits harder, ±10 % from step to step."""
    return np.minimum(base_g * np.exp(0.1 * z), max_g)


def _sensor_strides(
    t: FloatArray, steps: StepArrays
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray]:
    """The sensor (left) leg's IC, TO, intensity, normals, and the stride index of every sample."""
    own = steps.leg == LEFT
    ic, to = steps.ic_s[own], steps.to_s[own]
    j = np.searchsorted(ic, t, side="right") - 1
    if j[0] < 0 or j[-1] > ic.size - 2:
        raise ValueError("the steps given do not cover the samples")
    return ic, to, steps.intensity[own], steps.z[own], j


def _foot(t: FloatArray, steps: StepArrays) -> tuple[FloatArray, FloatArray]:
    ic, to, x, z, j = _sensor_strides(t, steps)
    gct = to - ic
    w_ic = (180.0 + 80.0 * x) * np.exp(0.1 * z[:, Z_IC_DIP])
    w_to = np.clip((420.0 + 220.0 * x) * np.exp(0.08 * z[:, Z_TOE_OFF]), 300.0, 800.0)
    # Per stride (IC[i] .. IC[i+1]); lobe widths as fractions of stance and swing.
    swing = ic[1:] - to[:-1]
    tail, tail_next, head_next = 0.2 * gct[:-1], 0.2 * gct[1:], 0.08 * swing
    # Heel-off is a broad lobe; the last push a sharp one, so the minimum sits AT toe-off.
    to_rise, to_fall = 0.35 * gct[:-1], 0.3 * swing
    avail = swing - to_fall - head_next
    sw_half, sw_center = 0.24 * avail, to[:-1] + to_fall + avail / 2
    # The mid-swing peak closes the pitch angle: flat foot at every mid-stance.
    area_to = (
        w_to[:-1]
        * (
            _BROAD_TO * (to_rise + to_fall)
            + (1 - _BROAD_TO) * (_SHARP_TO_RISE_S + _SHARP_TO_FALL_S)
        )
        / 2
    )
    w_sw = (area_to + w_ic[1:] * (head_next + tail_next) / 2) / sw_half

    ic_j, to_j, icn_j = ic[j], to[j], ic[j + 1]
    tail_v, tail_i = _down(t, ic_j, tail[j])
    broad_v, broad_i = _lobe(t, to_j, to_rise[j], to_fall[j])
    sharp_v, sharp_i = _lobe(t, to_j, _SHARP_TO_RISE_S, _SHARP_TO_FALL_S)
    to_v = _BROAD_TO * broad_v + (1 - _BROAD_TO) * sharp_v
    to_i = _BROAD_TO * broad_i + (1 - _BROAD_TO) * sharp_i
    sw_v, sw_i = _lobe(t, sw_center[j], sw_half[j], sw_half[j])
    head_v, head_i = _up(t, icn_j - head_next[j], head_next[j])
    wic, wto, wsw, wicn = w_ic[:-1][j], w_to[:-1][j], w_sw[j], w_ic[1:][j]
    rate_dps = -wic * tail_v - wto * to_v + wsw * sw_v - wicn * head_v
    theta_deg = wic * tail[j] / 2 - wic * tail_i - wto * to_i + wsw * sw_i - wicn * head_i

    xj, g_sw = x[j], np.exp(0.08 * z[j, Z_SWING])
    in_swing = t >= to_j
    ws = np.clip(((t - to_j) / swing[j] - 0.12) / 0.88, 0.0, 1.0)  # swing drive after push-off
    ax = np.where(in_swing, (2.6 + 1.6 * xj) * g_sw * np.sin(2 * np.pi * ws), 0.0)
    ay = np.where(in_swing, 0.25 * g_sw * np.sin(2 * np.pi * ws), 0.0)
    az = np.where(
        in_swing,
        (1.0 + 0.4 * xj) * g_sw * (np.cos(2 * np.pi * ws) - np.cos(4 * np.pi * ws)),
        0.0,
    )
    push_v, _ = _lobe(t, to_j + 0.003, 0.02, 0.025)
    push_g = (1.4 + 1.0 * xj) * g_sw * push_v
    impact_g = _impact_amplitude(3.0 + 2.9 * xj, z[j, Z_IMPACT], 7.0) * _impact(
        t - ic_j - 0.001, 0.003, 40.0, 0.008, 0.35
    )
    ax = ax + push_g - 0.4 * impact_g
    az = az + 0.6 * push_g + impact_g + 1.0  # + gravity: specific force

    theta = np.deg2rad(theta_deg)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    acc_foot = np.column_stack([cos_t * ax + sin_t * az, ay, -sin_t * ax + cos_t * az])
    # Toes-up rotation is about -y; small roll and yaw ride on the swing and push-off lobes.
    gyro_foot = np.column_stack([0.12 * (wsw * sw_v - wto * to_v), -rate_dps, -0.08 * wsw * sw_v])
    mount = np.array([-1.0, -1.0, 1.0])  # pod facing backward on the laces: 180° about z
    return acc_foot * mount, gyro_foot * mount


def _shank(t: FloatArray, steps: StepArrays, profile: AthleteProfile) -> FloatArray:
    ic, to, x, z, j = _sensor_strides(t, steps)
    ic_j, to_j, xj, zj = ic[j], to[j], x[j], z[j]
    gct, swing = to_j - ic_j, ic[j + 1] - to_j
    lag_s = (profile.shank_impact_lag_ms + np.clip(1.5 * zj[:, Z_SHANK_LAG], -3, 3)) / 1000
    dip_at_s = to_j + (profile.shank_to_offset_ms + np.clip(2.5 * zj[:, Z_SHANK_TO], -5, 5)) / 1000
    depth_g = np.clip((0.45 + 0.2 * xj) * np.exp(0.15 * zj[:, Z_SHANK_DIP]), 0.3, 0.8)
    g_sw = np.exp(0.08 * zj[:, Z_SWING])

    stance = t < to_j
    s = np.clip((t - ic_j) / gct, 0.0, 1.0)
    w = np.clip((t - to_j) / swing, 0.0, 1.0)
    tilt = np.where(
        stance,
        _SHANK_TILT_IC_RAD + (_SHANK_TILT_TO_RAD - _SHANK_TILT_IC_RAD) * s,
        _SHANK_TILT_TO_RAD
        + (_SHANK_TILT_IC_RAD - _SHANK_TILT_TO_RAD) * (1 - np.cos(np.pi * w)) / 2,
    )
    # The TO dip cancels gravity's long-axis share and goes ``depth_g`` below zero.
    dip = (np.cos(_SHANK_TILT_TO_RAD) + depth_g) * np.exp(
        -0.5 * ((t - dip_at_s) / _SHANK_DIP_WIDTH_S) ** 2
    )
    hump = np.where(stance, 0.0, np.sin(np.pi * np.clip((w - 0.25) / 0.6, 0.0, 1.0)) ** 2)
    load = np.where(stance, (0.45 + 0.35 * xj) * np.sin(np.pi * s), 0.0)
    swing_ap = np.where(stance, 0.0, (1.4 + 0.8 * xj) * g_sw * np.sin(2 * np.pi * w))
    impact_g = _impact_amplitude(3.8 + 2.8 * xj, zj[:, Z_IMPACT], 7.2) * _impact(
        t - (ic_j + lag_s - 0.005), 0.005, 30.0, 0.010, 0.25
    )
    a_long = np.cos(tilt) + load - dip + (1.2 + 1.1 * xj) * g_sw * hump + 0.95 * impact_g
    a_ap = np.sin(tilt) + swing_ap + 0.30 * impact_g
    a_ml = np.where(stance, 0.0, 0.15 * g_sw * np.sin(2 * np.pi * w)) + 0.08 * impact_g
    return np.column_stack([a_ap, a_ml, a_long])


def _lowpassed_sine(u: FloatArray, dur: FloatArray, omega: FloatArray, tau_s: float) -> FloatArray:
    """First-order low-pass (time constant ``tau_s``) of ``sin(omega u)`` on ``[0, dur]``, 0 after.

    Closed form: ``(sin wu - k cos wu + k exp(-u / tau)) / (1 + k^2)`` with ``k = w tau``, then an
    exponential decay from its value at ``dur``.
    """
    k = omega * tau_s
    uc = np.clip(u, 0.0, dur)
    on = (np.sin(omega * uc) - k * np.cos(omega * uc) + k * np.exp(-uc / tau_s)) / (1 + k * k)
    return on * np.exp(-np.maximum(u - dur, 0.0) / tau_s)


def _lowpassed_lobe(u: FloatArray, width: float, tau_s: float) -> FloatArray:
    """First-order low-pass of the raised cosine ``(1 - cos(2 pi u / width)) / 2`` (``u`` in s).

    Closed form (zero initial state): ``((1 - e) - (cos wu + k sin wu - e) / (1 + k^2)) / 2`` with
    ``e = exp(-u / tau)``, ``k = w tau``, then an exponential decay from its value at ``width``.
    """
    omega = 2 * np.pi / width
    k = omega * tau_s
    uc = np.clip(u, 0.0, width)
    e = np.exp(-uc / tau_s)
    on = 0.5 * ((1 - e) - (np.cos(omega * uc) + k * np.sin(omega * uc) - e) / (1 + k * k))
    return np.where(u < 0, 0.0, on * np.exp(-np.maximum(u - width, 0.0) / tau_s))


def _trunk(t: FloatArray, steps: StepArrays, profile: AthleteProfile) -> FloatArray:
    ic, gct = steps.ic_s, steps.to_s - steps.ic_s
    k = np.searchsorted(ic, t, side="right") - 1
    if k[0] < 1 or k[-1] > ic.size - 2:
        raise ValueError("the steps given do not cover the samples")
    period = np.diff(ic)
    impact_g = profile.trunk_impact_g * (0.7 + 0.6 * steps.intensity)
    width_s = profile.trunk_impact_ms / 1000
    # Impulse balance: the impact lobe (impulse A w / 2) plus a half sine of peak P over the
    # contact (impulse 2 P gct / pi) average 1 g over the step period.
    active = np.maximum(period - impact_g[:-1] * width_s / 2, 0.5 * period)
    peak_g = np.pi * active / (2 * gct[:-1]) * np.exp(0.05 * steps.z[:-1, Z_TRUNK_PEAK])
    brake_g = (0.65 + 0.3 * steps.intensity) * np.exp(0.08 * steps.z[:, Z_TRUNK_AP])
    side = np.where(steps.leg == LEFT, -1.0, 1.0)  # a left foot pushes the body to the right
    sway_g = 0.22 * side * np.exp(0.1 * steps.z[:, Z_TRUNK_ML])
    tau_s = profile.trunk_lag_ms / 1000
    acc = np.zeros((t.size, 3))
    for i in (k, k - 1):  # the current contact and the decaying tail of the previous one
        u, dur = t - ic[i], gct[i]
        half = _lowpassed_sine(u, dur, np.pi / dur, tau_s)
        acc[:, 0] -= brake_g[i] * _lowpassed_sine(u, dur, 2 * np.pi / dur, tau_s)
        acc[:, 1] += sway_g[i] * half
        acc[:, 2] += peak_g[i] * half + impact_g[i] * _lowpassed_lobe(u, width_s, tau_s)
    return acc
