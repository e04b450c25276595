"""The simulated runner's gait: athlete profile, pace schedule, step sequence and session script.

Cadence and contact time follow a first-order response toward the current target (easy jog or
stride pace) starting exactly at the moment the runner decides to speed up or ease, so the true rep
boundaries are known by construction. Steps alternate legs; each step's interval is 60 / cadence
at its initial contact (IC), its toe-off (TO) is IC + contact time. Per-step randomness is drawn
from a stream keyed by the step index, so a step regenerated after a schedule change (closed loop)
keeps its own noise and the whole sequence stays reproducible from the seed.

Walking has no flight phase: a walking step's contact outlasts its step interval (double
support). Standing stops the steps: the last two steps before a stand stay on the ground until it
ends (both feet down), and stepping resumes from there.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

LEFT, RIGHT = 0, 1
LEG_NAMES = ("left", "right")
RUNNING, WALKING, STILL = "running", "walking", "still"  # activities, as the truth names them
STRIKES = ("heel", "mid", "fore")  # foot strike patterns, rearfoot to forefoot

# Independent random streams of one seed (numpy SeedSequence entropy [seed, stream, chunk]).
STREAM_PROFILE, STREAM_STEPS, STREAM_SCRIPT, STREAM_START = 0, 1, 2, 3
STREAM_ACC_NOISE, STREAM_GYRO_NOISE = 4, 5
STREAM_IMP_NOISE, STREAM_JITTER, STREAM_DROP, STREAM_ORIENT, STREAM_BIAS = 6, 7, 8, 9, 10
STREAM_PACKET = 11
STREAM_SHOE = 12  # per-step draws of shoe, mounts, stance, sway (see waveforms.SHOE_COLUMNS)

# Columns of the per-step standard-normal draws (clipped to ±3).
Z_INTERVAL, Z_GCT, Z_IMPACT, Z_SWING, Z_TOE_OFF, Z_IC_DIP = 0, 1, 2, 3, 4, 5
Z_SHANK_LAG, Z_SHANK_TO, Z_SHANK_DIP, Z_TRUNK_PEAK, Z_TRUNK_AP, Z_TRUNK_ML = 6, 7, 8, 9, 10, 11
STEP_NOISE_COLUMNS = 12

_CHUNK_ROWS = 1024
_MAX_GCT_FRACTION = 0.85  # running always has a flight phase: GCT < 85 % of the step interval
_MIN_WALK_GCT_FRACTION = 1.08  # walking always has double support: GCT > the step interval
_SETTLE_S = 0.4  # from the closing step of a stop to standing still
RESTART_S = 0.3  # from the end of a stand to the first step


@lru_cache(maxsize=64)
def _chunk(seed: int, stream: int, chunk: int, width: int, uniform: bool) -> FloatArray:
    rng = np.random.default_rng([seed, stream, chunk])
    rows = (
        rng.random((_CHUNK_ROWS, width)) if uniform else rng.standard_normal((_CHUNK_ROWS, width))
    )
    rows.flags.writeable = False
    return rows


def indexed_random(
    seed: int, stream: int, start: int, count: int, width: int, *, uniform: bool = False
) -> FloatArray:
    """Rows ``start:start+count`` of an endless seeded table of standard normals (or U[0, 1)).

    Row ``i`` depends only on ``(seed, stream, i)``: whatever blocks a caller asks for, the same
    index gets the same numbers. This is what makes the simulator block-size invariant.
    """
    if count <= 0:
        return np.empty((0, width))
    first, last = start // _CHUNK_ROWS, (start + count - 1) // _CHUNK_ROWS
    offset = start - first * _CHUNK_ROWS
    if first == last:  # the common small read: a read-only view, no copy
        return _chunk(seed, stream, first, width, uniform)[offset : offset + count]
    table = np.concatenate(
        [_chunk(seed, stream, c, width, uniform) for c in range(first, last + 1)]
    )
    return table[offset : offset + count]


@dataclass(frozen=True, slots=True)
class AthleteProfile:
    """One simulated runner. ``AthleteProfile.draw(seed)`` gives realistic seeded values.

    Cadence counts both feet (steps/min). Fatigue: rep ``r`` (1-based) of the set runs at
    ``stride_cadence_spm`` sagged by ``fatigue_cadence_pct_per_rep * (r - 1)`` % and contact time
    lengthened by ``fatigue_gct_pct_per_rep * (r - 1)`` %; from rep ``fatigue_onset_rep`` on
    (``None``: never) a further ``fatigue_cadence_jump_pct`` / ``fatigue_gct_jump_pct`` apply.
    The shank and trunk lags are the per-athlete sensor landmarks relative to true contact.

    A shoe is not a rigid body: ``strike`` (``heel``, ``mid`` or ``fore``) shapes the stance,
    ``shoe_swing_gain`` scales the swing (a clip below the ankle swings through ±8 g),
    ``shoe_heel_off_g`` is the roll's acceleration from heel-off to toe-off, ``shoe_micro_g`` the
    shoe's flex and micro-motion in stance (RMS per axis), and the mount (clip, laces, insole)
    rings at ``mount_resonance_hz`` with a ``mount_decay_ms`` time constant, ``mount_gain`` g per
    g of impact. ``shank_impact_g`` is the tibial shock at easy pace; ``trunk_wobble_g`` the
    soft-tissue and belt ringing of a trunk sensor after each contact, ``trunk_shock_g`` the
    sharp heel-strike shock it feels first. ``walk_cadence_spm`` and ``walk_gct_ms``: the gait of
    walked recoveries.
    """

    easy_cadence_spm: float
    easy_gct_ms: float
    stride_cadence_spm: float
    stride_gct_ms: float
    cadence_cv_pct: float
    gct_cv_pct: float
    asymmetry_pct: float
    reaction_delay_s: float
    transition_tau_s: float
    fatigue_cadence_pct_per_rep: float
    fatigue_gct_pct_per_rep: float
    shank_impact_lag_ms: float
    shank_to_offset_ms: float
    trunk_lag_ms: float
    fatigue_onset_rep: int | None = None
    fatigue_cadence_jump_pct: float = 0.0
    fatigue_gct_jump_pct: float = 0.0
    trunk_impact_g: float = 0.9  # impact transient of the vertical ground reaction force
    trunk_impact_ms: float = 55.0  # ... and its duration
    walk_cadence_spm: float = 112.0
    walk_gct_ms: float = 620.0
    strike: str = "heel"
    shoe_swing_gain: float = 1.8
    shoe_heel_off_g: float = 1.1
    shoe_micro_g: float = 0.1
    mount_resonance_hz: float = 18.0
    mount_decay_ms: float = 40.0
    mount_gain: float = 0.6
    shank_impact_g: float = 8.0
    trunk_wobble_g: float = 0.5
    trunk_shock_g: float = 3.3

    def __post_init__(self) -> None:
        if not 0 < self.easy_cadence_spm < self.stride_cadence_spm:
            raise ValueError("need 0 < easy_cadence_spm < stride_cadence_spm")
        if not 0 < self.stride_gct_ms < self.easy_gct_ms:
            raise ValueError("need 0 < stride_gct_ms < easy_gct_ms")
        if self.reaction_delay_s < 0 or self.transition_tau_s <= 0:
            raise ValueError("reaction_delay_s must be >= 0 and transition_tau_s > 0")
        if self.fatigue_onset_rep is not None and self.fatigue_onset_rep < 1:
            raise ValueError("fatigue_onset_rep is 1-based (or None)")
        if not 0 < self.walk_cadence_spm < self.easy_cadence_spm:
            raise ValueError("need 0 < walk_cadence_spm < easy_cadence_spm")
        if self.strike not in STRIKES:
            raise ValueError(f"strike must be one of {', '.join(STRIKES)}, got {self.strike!r}")

    @classmethod
    def draw(
        cls, seed: int, *, fatiguing: bool = False, fatigue_onset_rep: int = 4
    ) -> AthleteProfile:
        """A seeded runner within the ranges of the field (see the stride-science notes).

        ``fatiguing=True``: from rep ``fatigue_onset_rep`` on, contact time is 7–10 % longer and
        cadence 4.5–6 % lower than in the first reps (a set the engine should stop early).
        """
        rng = np.random.default_rng([seed, STREAM_PROFILE])
        u = rng.uniform
        return cls(
            easy_cadence_spm=u(152.0, 168.0),
            easy_gct_ms=u(255.0, 295.0),
            stride_cadence_spm=u(178.0, 197.0),
            stride_gct_ms=u(175.0, 215.0),
            cadence_cv_pct=u(1.0, 2.0),
            gct_cv_pct=u(2.0, 4.0),
            asymmetry_pct=u(0.5, 2.5),
            reaction_delay_s=u(0.3, 0.8),
            transition_tau_s=u(0.6, 1.0),
            fatigue_cadence_pct_per_rep=u(0.05, 0.2),
            fatigue_gct_pct_per_rep=u(0.1, 0.4),
            shank_impact_lag_ms=u(27.0, 32.0),
            shank_to_offset_ms=u(12.0, 23.0),
            trunk_lag_ms=u(5.0, 15.0),
            trunk_impact_g=u(0.6, 1.2),
            trunk_impact_ms=u(45.0, 70.0),
            fatigue_onset_rep=fatigue_onset_rep if fatiguing else None,
            fatigue_cadence_jump_pct=u(4.5, 6.0) if fatiguing else 0.0,
            fatigue_gct_jump_pct=u(7.0, 10.0) if fatiguing else 0.0,
            # Drawn last, so the fields above keep their values of earlier versions.
            walk_cadence_spm=u(100.0, 125.0),
            walk_gct_ms=u(550.0, 700.0),
            strike=STRIKES[int(rng.choice(3, p=[0.6, 0.25, 0.15]))],
            shoe_swing_gain=u(1.7, 2.4),
            shoe_heel_off_g=u(1.0, 2.0),
            shoe_micro_g=u(0.1, 0.2),
            mount_resonance_hz=u(14.0, 24.0),
            mount_decay_ms=u(30.0, 50.0),
            mount_gain=u(0.4, 0.8),
            shank_impact_g=u(7.0, 9.5),
            trunk_wobble_g=u(0.4, 0.9),
            trunk_shock_g=u(2.8, 3.8),
        )

    def stride_targets(self, rep: int) -> tuple[float, float]:
        """Target (cadence_spm, gct_ms) of rep ``rep`` (1-based), fatigue included."""
        sag_pct = self.fatigue_cadence_pct_per_rep * (rep - 1)
        longer_pct = self.fatigue_gct_pct_per_rep * (rep - 1)
        if self.fatigue_onset_rep is not None and rep >= self.fatigue_onset_rep:
            sag_pct += self.fatigue_cadence_jump_pct
            longer_pct += self.fatigue_gct_jump_pct
        return (
            self.stride_cadence_spm * (1.0 - sag_pct / 100.0),
            self.stride_gct_ms * (1.0 + longer_pct / 100.0),
        )

    def intensity(self, cadence_spm: FloatArray) -> FloatArray:
        """Pace on a 0 (easy) … 1 (stride) scale from the model cadence; scales amplitudes."""
        span = self.stride_cadence_spm - self.easy_cadence_spm
        return np.clip((cadence_spm - self.easy_cadence_spm) / span, -0.3, 1.3)


class PaceSchedule:
    """Piecewise first-order cadence and contact-time targets.

    From a change at ``start_s`` the value moves from where it was toward the new target as
    ``target + (value_at_start - target) * exp(-(t - start_s) / tau)``. Each segment also names
    the activity (running, walking or still) the runner switches to at its start.
    """

    def __init__(self, cadence_spm: float, gct_ms: float, tau_s: float) -> None:
        self._tau_s = tau_s
        self._starts: list[float] = [-math.inf]
        self._segments: list[tuple[float, float, float, float]] = [
            (cadence_spm, gct_ms, cadence_spm, gct_ms)
        ]
        self._activities: list[str] = [RUNNING]

    @property
    def last_change_s(self) -> float:
        return self._starts[-1]

    def change(
        self, start_s: float, cadence_spm: float, gct_ms: float, activity: str = RUNNING
    ) -> None:
        """From ``start_s`` on, head for a new target (changes must come in time order)."""
        if start_s < self._starts[-1]:
            raise ValueError(f"schedule change at {start_s} s precedes the last one")
        cad0, gct0 = self.at(start_s)
        self._starts.append(start_s)
        self._segments.append((cadence_spm, gct_ms, cad0, gct0))
        self._activities.append(activity)

    def activity_at(self, t_s: float) -> tuple[str, float]:
        """The activity at ``t_s`` and the time it ends (the next change, or infinity)."""
        i = bisect.bisect_right(self._starts, t_s) - 1
        end = self._starts[i + 1] if i + 1 < len(self._starts) else math.inf
        return self._activities[max(i, 0)], end

    def at(self, t_s: float) -> tuple[float, float]:
        """Model (cadence_spm, gct_ms) at ``t_s``."""
        i = bisect.bisect_right(self._starts, t_s) - 1
        cad, gct, cad0, gct0 = self._segments[max(i, 0)]
        start = self._starts[max(i, 0)]
        decay = 0.0 if start == -math.inf else math.exp(-(t_s - start) / self._tau_s)
        return cad + (cad0 - cad) * decay, gct + (gct0 - gct) * decay


class StepTrack:
    """The step sequence of both legs, generated lazily ahead of the sample stream.

    Step ``k`` has leg ``(k + first_leg) % 2``, IC ``ic_s[k]``, TO ``ic_s[k] + gct_s[k]`` and
    gait ``activity[k]`` (running or walking; ``still`` for the closing step of a stop, whose
    stand is ``stands_s[k]``). Steps start a little before t = 0 so that the stream opens mid-run.
    """

    def __init__(self, profile: AthleteProfile, schedule: PaceSchedule, seed: int) -> None:
        rng = np.random.default_rng([seed, STREAM_START])
        self.profile = profile
        self.schedule = schedule
        self.seed = seed
        self.first_leg = int(rng.integers(2))
        self.ic_s: list[float] = []
        self.gct_s: list[float] = []
        self.cadence_spm: list[float] = []
        self.activity: list[str] = []
        self.stands_s: dict[int, tuple[float, float]] = {}
        self._next_ic_s = -2.0 + float(rng.uniform(0.0, 0.4))

    def __len__(self) -> int:
        return len(self.ic_s)

    def leg(self, k: int) -> int:
        return (k + self.first_leg) % 2

    def extend_to(self, t_s: float) -> None:
        """Generate steps until one has its IC after ``t_s``."""
        while not self.ic_s or self.ic_s[-1] <= t_s:
            k = len(self.ic_s)
            ic = self._next_ic_s
            cad, gct_ms = self.schedule.at(ic)
            interval = self._interval(k, cad)
            z_gct = float(
                indexed_random(self.seed, STREAM_STEPS, k, 1, STEP_NOISE_COLUMNS)[0, Z_GCT]
            )
            side = 1.0 if self.leg(k) == LEFT else -1.0
            gct = (
                gct_ms
                / 1000.0
                * (1.0 + self.profile.gct_cv_pct / 100.0 * float(np.clip(z_gct, -3, 3)))
            )
            gct *= 1.0 + side * self.profile.asymmetry_pct / 200.0
            activity, end_s = self.schedule.activity_at(ic)
            if activity == STILL and k > 0:
                self._stop(k, ic, end_s, cad)
                continue
            if activity == WALKING:
                gct = max(gct, _MIN_WALK_GCT_FRACTION * interval)
            else:
                gct = min(gct, _MAX_GCT_FRACTION * interval)
            self.ic_s.append(ic)
            self.gct_s.append(gct)
            self.cadence_spm.append(cad)
            self.activity.append(activity if activity == WALKING else RUNNING)
            self._next_ic_s = ic + interval

    def _stop(self, k: int, ic: float, end_s: float, cadence_spm: float) -> None:
        """Step ``k`` brings the feet together; both stay down until ``end_s``.

        The previous step's leg lifts first at ``end_s`` and lands again ``RESTART_S`` later; the
        closing leg lifts just after that landing, like the first steps of a walk.
        """
        if not math.isfinite(end_s) or end_s < ic + _SETTLE_S + 2 * RESTART_S:
            raise ValueError(f"a stand at {ic:.1f} s must end, and last over a second")
        self.gct_s[k - 1] = end_s - self.ic_s[k - 1]
        restart = end_s + RESTART_S
        self.ic_s.append(ic)
        self.gct_s.append(restart + 0.1 - ic)
        self.cadence_spm.append(cadence_spm)
        self.activity.append(STILL)
        self.stands_s[k] = (ic + _SETTLE_S, end_s)
        self._next_ic_s = restart

    def truncate(self, keep: int) -> None:
        """Keep steps ``0..keep-1`` and regenerate the rest from the (changed) schedule.

        The kept last step lands as planned; its successor follows the new schedule. Its interval
        never shrinks below what keeps that step's flight phase.
        """
        del self.ic_s[keep:], self.gct_s[keep:], self.cadence_spm[keep:], self.activity[keep:]
        for k in [k for k in self.stands_s if k >= keep]:
            del self.stands_s[k]
        k = keep - 1
        cad, _ = self.schedule.at(self.ic_s[k])
        interval = max(self._interval(k, cad), self.gct_s[k] / _MAX_GCT_FRACTION)
        self._next_ic_s = self.ic_s[k] + interval

    def first_after(self, t_s: float, *, leg: int | None = None) -> int:
        """Index of the first step (of ``leg``, if given) with IC at or after ``t_s``."""
        self.extend_to(t_s + 2.0)  # at least two steps of each leg beyond t_s
        k = bisect.bisect_left(self.ic_s, t_s)
        if leg is not None and self.leg(k) != leg:
            k += 1
        return k

    def _interval(self, k: int, cadence_spm: float) -> float:
        z = float(indexed_random(self.seed, STREAM_STEPS, k, 1, STEP_NOISE_COLUMNS)[0, Z_INTERVAL])
        side = 1.0 if self.leg(k) == LEFT else -1.0
        jitter = 1.0 + self.profile.cadence_cv_pct / 100.0 * float(np.clip(z, -3, 3))
        return 60.0 / cadence_spm * jitter * (1.0 + side * self.profile.asymmetry_pct / 400.0)
