"""Accelerometer (g) and gyroscope (deg/s) of a sensor on the shoe: a clip, a laced pod, an insole.

The pitch angle is the integral of a pitch rate built from raised-cosine lobes (a negative dip at
IC, quiet mid-stance, a negative lobe peaking AT toe-off, the big positive mid-swing peak, sized so
the angle closes over every stride); gravity is rotated by that angle. The pod's frame: x to the
heel, y to the runner's right, z up (a pod facing backward on the laces), so its y gyro reads the
pitch rate toes-up positive, the sign footpod papers plot (Falbriard et al. 2018).

A shoe is not a rigid body, and a mount is not rigid on the shoe. During stance ``|a|`` sits near
1 g for only part of the contact and moves by several tenths of a g, as on the real clip
recordings in ``../shared/data/real-runs/``:

- the impact at IC (a 3 ms pulse, sized by the strike: a heel strike hits hardest) sets the mount
  ringing (a clip or a soft pod resonates at 14–24 Hz, 20–40 ms time constant);
- the foot flattens: a heel strike's forefoot slaps down 30–50 ms later, a forefoot strike's heel
  drops more softly over a longer time;
- the shoe flexes and the mount wobbles all through stance (micro-motion, 9 and 21 Hz, 0.1–0.2 g,
  different per step);
- from heel-off the foot rolls over the toes: the sensor, ahead of or above the rotation axis,
  feels the roll's tangential and centripetal acceleration (1–2 g at toe-off), which merges
  into the push-off peak AT toe-off;
- the swing of a shoe accelerates hard from toe-off on: 4–10 g, beyond a ±8 g range at stride
  pace, most at the late-swing deceleration just before the next contact.
"""

from __future__ import annotations

import numpy as np

from firmware_sim.gait import (
    STRIKES,
    Z_IC_DIP,
    Z_IMPACT,
    Z_SWING,
    Z_TOE_OFF,
    AthleteProfile,
    FloatArray,
)
from firmware_sim.waveforms import (
    ZS_HEEL_OFF,
    ZS_MICRO,
    ZS_RING,
    ZS_SLAP,
    StepArrays,
    down,
    impact,
    impact_amplitude,
    lobe,
    ringing,
    sensor_strides,
    up,
)

_BROAD_TO = 0.6  # share of the toe-off pitch-rate lobe that is broad heel-off
_SHARP_TO_RISE_S, _SHARP_TO_FALL_S = 0.025, 0.03
# Lobes scale with the contact, up to these (a walked contact lasts 0.6 s, a stand many seconds).
_MAX_TAIL_S, _MAX_TO_RISE_S, _MAX_HEEL_OFF_S = 0.14, 0.25, 0.25
# Per strike pattern (heel, mid, fore): impact scale, slap (g), slap peak and width after IC (s),
# and the share of the contact from heel-off to toe-off (a forefoot striker rolls longer).
_STRIKE_IMPACT = (1.0, 0.8, 0.6)
_STRIKE_SLAP_G = (0.55, 0.35, 0.3)
_STRIKE_SLAP_AT_S = (0.045, 0.035, 0.05)
_STRIKE_SLAP_WIDTH_S = (0.03, 0.03, 0.06)
_STRIKE_HEEL_OFF = (0.55, 0.6, 0.65)
_MICRO_HZ = (9.0, 21.0)
_MICRO_GYRO_DPS_PER_G = 80.0  # shoe flex turns the pod as it shakes it
_WALK_SWING, _WALK_IMPACT = 0.45, 0.4  # a walked stride swings and lands far more gently
_MOUNT = np.array([-1.0, -1.0, 1.0])  # pod facing backward on the laces: 180° about z


def foot(t: FloatArray, steps: StepArrays, p: AthleteProfile) -> tuple[FloatArray, FloatArray]:
    """Noise-free ``acc_g`` (n, 3) and ``gyro_dps`` (n, 3) of the left shoe at true times ``t``."""
    own, j = sensor_strides(t, steps)
    ic, to, x, z = steps.ic_s[own], steps.to_s[own], steps.intensity[own], steps.z[own]
    zs, walking = steps.z_shoe[own], steps.walking[own]
    gct = to - ic
    w_ic = (180.0 + 80.0 * x) * np.exp(0.1 * z[:, Z_IC_DIP])
    w_to = np.clip((420.0 + 220.0 * x) * np.exp(0.08 * z[:, Z_TOE_OFF]), 300.0, 800.0)
    # Per stride (IC[i] .. IC[i+1]); lobe widths as fractions of stance and swing.
    swing = ic[1:] - to[:-1]
    tail = np.minimum(0.2 * gct, _MAX_TAIL_S)
    tail_now, tail_next, head_next = tail[:-1], tail[1:], 0.08 * swing
    # Heel-off is a broad lobe; the last push a sharp one, so the minimum sits AT toe-off.
    to_rise, to_fall = np.minimum(0.35 * gct[:-1], _MAX_TO_RISE_S), 0.3 * swing
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
    tail_v, tail_i = down(t, ic_j, tail_now[j])
    broad_v, broad_i = lobe(t, to_j, to_rise[j], to_fall[j])
    sharp_v, sharp_i = lobe(t, to_j, _SHARP_TO_RISE_S, _SHARP_TO_FALL_S)
    to_v = _BROAD_TO * broad_v + (1 - _BROAD_TO) * sharp_v
    to_i = _BROAD_TO * broad_i + (1 - _BROAD_TO) * sharp_i
    sw_v, sw_i = lobe(t, sw_center[j], sw_half[j], sw_half[j])
    head_v, head_i = up(t, icn_j - head_next[j], head_next[j])
    wic, wto, wsw, wicn = w_ic[:-1][j], w_to[:-1][j], w_sw[j], w_ic[1:][j]
    rate_dps = -wic * tail_v - wto * to_v + wsw * sw_v - wicn * head_v
    theta_deg = wic * tail_now[j] / 2 - wic * tail_i - wto * to_i + wsw * sw_i - wicn * head_i

    strike = STRIKES.index(p.strike)
    walk_j = walking[j]
    xj, zj, zsj = x[j], z[j], zs[j]
    g_sw = np.exp(0.08 * zj[:, Z_SWING]) * p.shoe_swing_gain * np.where(walk_j, _WALK_SWING, 1.0)
    in_swing = t >= to_j
    # The swing drive starts as the push-off peak passes: a shoe is never still after toe-off.
    ws = np.clip(((t - to_j) / swing[j] - 0.05) / 0.95, 0.0, 1.0)
    ax = np.where(in_swing, (3.4 + 1.2 * xj) * g_sw * np.sin(2 * np.pi * ws), 0.0)
    ay = np.where(in_swing, 0.25 * g_sw * np.sin(2 * np.pi * ws), 0.0)
    az = np.where(
        in_swing,
        (1.0 + 0.4 * xj) * g_sw * (np.cos(2 * np.pi * ws) - np.cos(4 * np.pi * ws)),
        0.0,
    )
    push_v, _ = lobe(t, to_j + 0.003, 0.02, 0.025)
    push_amp = (1.4 + 1.0 * xj) * np.exp(0.08 * zj[:, Z_SWING])
    push_g = push_amp * push_v
    impact_amp = impact_amplitude(3.0 + 2.9 * xj, zj[:, Z_IMPACT], 7.0) * np.where(
        walk_j, _WALK_IMPACT, _STRIKE_IMPACT[strike]
    )
    impact_g = impact_amp * impact(t - ic_j - 0.001, 0.003, 40.0, 0.008, 0.35)

    # The non-rigid stance, all zero in swing and continuous at IC and toe-off.
    since_ic = t - ic_j
    stance_share = np.clip(since_ic / gct[j], 0.0, 1.0)
    slap_v, _ = lobe(since_ic, _STRIKE_SLAP_AT_S[strike], _STRIKE_SLAP_WIDTH_S[strike], 0.03)
    slap_g = _STRIKE_SLAP_G[strike] * (1 + 0.5 * xj) * np.exp(0.2 * zsj[:, ZS_SLAP]) * slap_v
    heel_off_s = np.minimum(_STRIKE_HEEL_OFF[strike] * gct[j], _MAX_HEEL_OFF_S)
    roll_v, _ = lobe(t, to_j, heel_off_s, 0.04)
    roll_v = np.sqrt(roll_v)  # the heel lifts briskly: the roll is felt from its first moment
    roll_g = p.shoe_heel_off_g * (1 + 0.4 * xj) * np.exp(0.15 * zsj[:, ZS_HEEL_OFF]) * roll_v
    window = np.where(in_swing, 0.0, np.sin(np.pi * stance_share))
    phases = zsj[:, ZS_MICRO]
    micro = (
        np.column_stack(
            [
                np.sin(2 * np.pi * _MICRO_HZ[0] * since_ic + phases[:, 2 * i])
                + np.sin(2 * np.pi * _MICRO_HZ[1] * since_ic + phases[:, 2 * i + 1])
                for i in range(3)
            ]
        )
        * (p.shoe_micro_g * window)[:, None]
    )
    decay_s = p.mount_decay_ms / 1000 * np.exp(0.1 * zsj[:, ZS_RING])
    ring_g = p.mount_gain * (
        impact_amp * ringing(since_ic, p.mount_resonance_hz, decay_s)
        + 0.6 * push_amp * ringing(t - to_j, p.mount_resonance_hz, decay_s)
    )
    ax = ax + push_g - 0.4 * impact_g + 0.8 * roll_g + 0.3 * slap_g + 0.4 * ring_g + micro[:, 0]
    ay = ay + 0.6 * ring_g + micro[:, 1]
    # + gravity: specific force
    az = az + 0.6 * push_g + impact_g + 0.6 * roll_g + slap_g + 0.7 * ring_g + micro[:, 2] + 1.0

    theta = np.deg2rad(theta_deg)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    acc_foot = np.column_stack([cos_t * ax + sin_t * az, ay, -sin_t * ax + cos_t * az])
    # Toes-up rotation is about -y; small roll and yaw ride on the swing and push-off lobes.
    gyro_foot = np.column_stack([0.12 * (wsw * sw_v - wto * to_v), -rate_dps, -0.08 * wsw * sw_v])
    gyro_foot = gyro_foot + _MICRO_GYRO_DPS_PER_G * micro[:, ::-1]
    return acc_foot * _MOUNT, gyro_foot * _MOUNT
