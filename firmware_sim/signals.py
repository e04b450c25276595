"""Accelerometer (g) and gyroscope (deg/s) of a foot, shank or trunk sensor, from the true steps.

Every waveform is a closed-form function of time and of the step it falls in, so any sample can be
computed on its own (vectorised over samples, no state, no per-sample loop). Accelerations are
specific force: a sensor at rest reads +1 g along "up". Segment frames are x forward, y left, z up
(for the shank, z runs along the shank toward the knee).

Physics per placement (the landmarks a step detector relies on):

- foot: see ``firmware_sim.shoe`` (the pitch-rate model, and a shoe that is not a rigid body).
- shank: the impact peak in |a| comes a per-athlete 27–32 ms after true IC (±3 ms per step), the
  long-axis acceleration sits at 1–2 g in stance and dips to −0.3…−0.8 g a per-athlete 12–23 ms
  after TO (±5 ms), as seen against force plates (Bach et al. 2022); a 2–4 g hump at mid-swing.
  The tibial shock is 7–13 g at a jog (it saturates a ±8 g sensor on some steps, as Bach's does),
  the soft tissue around the sensor rings after it, and loading keeps ``|a|`` at 2–3 g through
  most of stance.
- trunk: vertical specific force equals vertical ground reaction force over body weight (0 g in
  flight); each contact is the classic two-component force curve, an impact transient (a raised
  cosine of 45–70 ms, 0.6–1.2 g, larger at faster pace) on an active half sine whose peak balances
  the impulse (mean 1 g over a step), seen through a first-order soft-tissue low-pass (5–15 ms);
  a braking-then-propulsive anterior-posterior wave and a medio-lateral push alternating with the
  leg. A strap or belt on soft tissue feels the heel-strike shock sharper than the force plate
  does (3–4 g over ~30 ms, arriving after the shank's, its impulse taken from the active peak)
  and rings after every contact, harder on its own side. Walked contacts overlap (double
  support), so the vertical never falls to 0 g.

Standing still, every placement reads gravity on its long axis and a slow postural sway.
"""

from __future__ import annotations

import numpy as np

from dsp.events import Placement
from firmware_sim.gait import (
    LEFT,
    RESTART_S,
    Z_IMPACT,
    Z_SHANK_DIP,
    Z_SHANK_LAG,
    Z_SHANK_TO,
    Z_SWING,
    Z_TRUNK_AP,
    Z_TRUNK_ML,
    Z_TRUNK_PEAK,
    AthleteProfile,
    FloatArray,
)
from firmware_sim.shoe import foot
from firmware_sim.waveforms import (
    ZS_LOAD,
    ZS_RING,
    ZS_SWAY,
    StepArrays,
    impact,
    impact_amplitude,
    ringing,
    sensor_strides,
    still_weight,
)

_SHANK_TILT_IC_RAD = 0.12  # shank inclination at IC (lower end ahead of the knee)
_SHANK_TILT_TO_RAD = -0.5  # and at TO (lower end behind)
_SHANK_DIP_WIDTH_S = 0.014
_SHANK_MAX_IMPACT_G = 13.0
_SHANK_RING_HZ, _SHANK_RING_S, _SHANK_RING_GAIN = 16.0, 0.03, 0.45  # soft tissue on the tibia
_TRUNK_RING_DECAY_S = 0.06  # a belt or strap bounces at 7–12 Hz
_TRUNK_SHOCK_RISE_S = 0.008  # a pulse of impulse ~0.06 g s: ~15-25 % of a step's
_TRUNK_OWN_SIDE, _TRUNK_OTHER_SIDE = 1.3, 0.8  # a belt on the left hip feels left steps more
_WALK_SHOCK = 0.35  # a walked contact's shock and ringing, relative to a jog's
_SWAY_HZ = (0.23, 0.57)  # postural sway while standing
_SWAY_G, _SWAY_DPS = 0.015, 1.5


def has_gyro(placement: Placement) -> bool:
    """Only the foot pod carries a gyroscope (unless it is an accelerometer-only one)."""
    return placement is Placement.FOOT


def synthesize(
    placement: Placement, t_s: FloatArray, steps: StepArrays, profile: AthleteProfile
) -> tuple[FloatArray, FloatArray | None]:
    """Noise-free ``acc_g`` (n, 3) and ``gyro_dps`` (n, 3) or ``None`` at true times ``t_s``.

    ``steps`` must cover the samples: two sensor-leg strides before the first sample and one
    after the last.
    """
    gyro: FloatArray | None = None
    if placement is Placement.FOOT:
        acc, gyro = foot(t_s, steps, profile)
    elif placement is Placement.SHANK:
        acc = _shank(t_s, steps, profile)
    else:
        acc = _trunk(t_s, steps, profile)
    if steps.stands_s.size:
        acc, gyro = _standing(t_s, steps, acc, gyro)
    return acc, gyro


def _standing(
    t: FloatArray, steps: StepArrays, acc: FloatArray, gyro: FloatArray | None
) -> tuple[FloatArray, FloatArray | None]:
    """Blend into a still posture: gravity along z (every frame's "up" at rest) and sway."""
    w = still_weight(t, steps.stands_s, RESTART_S)[:, None]
    k = np.clip(np.searchsorted(steps.ic_s, t, side="right") - 1, 0, steps.ic_s.size - 1)
    phase = steps.z_shoe[k, ZS_SWAY][:, None] + np.array([0.0, 1.7, 3.1])
    sway = sum(
        np.sin(2 * np.pi * hz * t[:, None] + phase * (i + 1)) for i, hz in enumerate(_SWAY_HZ)
    )
    still_acc = np.array([0.0, 0.0, 1.0]) + _SWAY_G * sway * np.array([1.0, 1.0, 0.2])
    acc = (1 - w) * acc + w * still_acc
    if gyro is not None:
        gyro = (1 - w) * gyro + w * _SWAY_DPS * sway
    return acc, gyro


def _shank(t: FloatArray, steps: StepArrays, profile: AthleteProfile) -> FloatArray:
    own, j = sensor_strides(t, steps)
    ic, to, x, z = steps.ic_s[own], steps.to_s[own], steps.intensity[own], steps.z[own]
    ic_j, to_j, xj, zj = ic[j], to[j], x[j], z[j]
    shock = np.where(steps.walking[own][j], _WALK_SHOCK, 1.0)
    gct, swing = to_j - ic_j, ic[j + 1] - to_j
    lag_s = (profile.shank_impact_lag_ms + np.clip(1.5 * zj[:, Z_SHANK_LAG], -3, 3)) / 1000
    dip_at_s = to_j + (profile.shank_to_offset_ms + np.clip(2.5 * zj[:, Z_SHANK_TO], -5, 5)) / 1000
    depth_g = np.clip((0.45 + 0.2 * xj) * np.exp(0.15 * zj[:, Z_SHANK_DIP]), 0.3, 0.8)
    g_sw = np.exp(0.15 * zj[:, Z_SWING])  # a shank swings differently every stride

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
    # Loading along the shank: a real shank reads 2–3 g through most of stance (Bach et al.
    # 2022), far from a still 1 g, and no two stances alike (±15 % from step to step).
    vary = np.exp(0.15 * steps.z_shoe[own][j, ZS_LOAD])
    load = np.where(stance, (1.4 + 0.5 * xj) * vary * np.sin(np.pi * s), 0.0)
    swing_ap = np.where(stance, 0.0, (1.4 + 0.8 * xj) * g_sw * np.sin(2 * np.pi * w))
    impact_amp = shock * impact_amplitude(
        profile.shank_impact_g + 3.5 * xj, zj[:, Z_IMPACT], _SHANK_MAX_IMPACT_G
    )
    impact_g = impact_amp * impact(t - (ic_j + lag_s - 0.005), 0.005, 30.0, 0.010, 0.25)
    ring_g = (
        _SHANK_RING_GAIN
        * impact_amp
        * ringing(
            t - (ic_j + lag_s + 0.005),
            _SHANK_RING_HZ * np.exp(0.1 * steps.z_shoe[own][j, ZS_RING]),
            _SHANK_RING_S,
        )
    )
    # The shock arrives mostly along the shank, but not only: Bach's saturates on two axes.
    a_long = np.cos(tilt) + load - dip + (1.2 + 1.1 * xj) * g_sw * hump + 0.8 * impact_g
    a_ap = np.sin(tilt) + swing_ap + 0.55 * impact_g
    a_ml = np.where(stance, 0.0, 0.15 * g_sw * np.sin(2 * np.pi * w)) + 0.25 * impact_g + ring_g
    a_ap = a_ap + 0.5 * ring_g
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
    shock_g = profile.trunk_shock_g * np.where(steps.walking, _WALK_SHOCK, 1.0)
    # The heel-strike shock is a pulse of impulse A r e: part of the force, not an artefact.
    shock_impulse = shock_g * _TRUNK_SHOCK_RISE_S * np.e
    active = np.maximum(period - impact_g[:-1] * width_s / 2 - shock_impulse[:-1], 0.5 * period)
    peak_g = np.pi * active / (2 * gct[:-1]) * np.exp(0.05 * steps.z[:-1, Z_TRUNK_PEAK])
    brake_g = (0.65 + 0.3 * steps.intensity) * np.exp(0.08 * steps.z[:, Z_TRUNK_AP])
    side = np.where(steps.leg == LEFT, -1.0, 1.0)  # a left foot pushes the body to the right
    sway_g = 0.22 * side * np.exp(0.1 * steps.z[:, Z_TRUNK_ML])
    tau_s = profile.trunk_lag_ms / 1000
    wobble_g = (
        profile.trunk_wobble_g
        * np.where(steps.walking, _WALK_SHOCK, 1.0)
        * (0.7 + 0.6 * np.clip(steps.intensity, 0.0, 1.0))
        * np.where(steps.leg == LEFT, _TRUNK_OWN_SIDE, _TRUNK_OTHER_SIDE)
        * np.exp(0.15 * steps.z_shoe[:, ZS_RING])
    )
    ring_hz = 0.5 * profile.mount_resonance_hz * np.exp(0.1 * steps.z_shoe[:, ZS_RING])
    # The shock travels up the leg: it reaches the pelvis after the shank (27-32 ms after IC).
    shock_lag_s = (profile.shank_impact_lag_ms + 5.0) / 1000
    acc = np.zeros((t.size, 3))
    for i in (k, k - 1):  # the current contact and the decaying tail of the previous one
        u, dur = t - ic[i], gct[i]
        half = _lowpassed_sine(u, dur, np.pi / dur, tau_s)
        ring = wobble_g[i] * ringing(u, ring_hz[i], _TRUNK_RING_DECAY_S)
        acc[:, 0] += 0.5 * ring - brake_g[i] * _lowpassed_sine(u, dur, 2 * np.pi / dur, tau_s)
        acc[:, 1] += sway_g[i] * half + 0.4 * ring
        shock = shock_g[i] * impact(u - shock_lag_s, _TRUNK_SHOCK_RISE_S, 0.0, 1.0, 0.0)
        acc[:, 2] += peak_g[i] * half + impact_g[i] * _lowpassed_lobe(u, width_s, tau_s)
        acc[:, 2] += shock + ring
        acc[:, 0] += 0.3 * shock
    return acc
