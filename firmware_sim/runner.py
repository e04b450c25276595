"""The simulated athlete: a seeded sample source with exact ground truth, open- or closed-loop.

Open loop, the runner follows the plan's clock. Closed loop, it jogs until the engine cues ``go``,
reacts after its reaction delay, holds stride pace until ``ease`` and reacts again; ``set_done``
sends it into the cool-down. A stride already in the air lands as planned: a pace change
re-plans only the steps that no emitted sample depends on yet.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsp.events import Cue, CueKind, Placement
from dsp.plan import SessionPlan
from dsp.samples import SampleBlock
from firmware_sim.gait import (
    LEFT,
    LEG_NAMES,
    STEP_NOISE_COLUMNS,
    STILL,
    STREAM_ACC_NOISE,
    STREAM_GYRO_NOISE,
    STREAM_SHOE,
    STREAM_STEPS,
    WALKING,
    AthleteProfile,
    PaceSchedule,
    StepTrack,
    indexed_random,
)
from firmware_sim.impair import Impairments
from firmware_sim.script import open_loop_script
from firmware_sim.signals import has_gyro, synthesize
from firmware_sim.waveforms import SHOE_COLUMNS, StepArrays

_ACC_NOISE_G = 0.02
_GYRO_NOISE_DPS = 2.0
_SENSOR_LEG = LEFT
_LOOKAHEAD_S = 2.0  # steps are generated this far beyond the samples asked for
_SAFETY_FACTOR = 3.0  # closed loop without any cue: stop after 3 × the nominal session


@dataclass(frozen=True, slots=True)
class Truth:
    """Ground truth of the samples read so far, in the SENSOR's time base (clock drift included).

    ``contacts_s``: (ic_s, to_s, leg) of every finished step of both legs, leg ``"left"`` or
    ``"right"``; ``sensor_leg``: the leg a foot or shank sensor is on (``None`` for trunk);
    ``reps_s``: (start, end) of every finished rep: the moment the runner starts accelerating and
    the moment they start easing. ``activity_s``: (start, end, activity) spans covering the stream
    so far, activity ``"running"``, ``"walking"`` or ``"still"``: a gait changes at the IC of its
    first step, standing starts once the feet have settled after the closing step and ends when
    the first foot lifts. ``surges_s``: (start, end) of the pick-ups of pace that are not reps.
    """

    contacts_s: tuple[tuple[float, float, str], ...]
    sensor_leg: str | None
    reps_s: tuple[tuple[float, float], ...]
    placement: Placement
    fs_hz: float
    seed: int
    impairments: Impairments
    activity_s: tuple[tuple[float, float, str], ...] = ()
    surges_s: tuple[tuple[float, float], ...] = ()

    def to_json_dict(self, template: str) -> dict[str, Any]:
        """The ``run.truth.json`` document, in the convention of the real recordings' metadata:
        ``contacts_s`` holds the sensor leg's contacts for foot/shank, every step for trunk."""
        if self.sensor_leg is None:
            contacts = [[ic, to] for ic, to, _ in self.contacts_s]
            note = "[initial contact, toe-off] of every step (either foot), exact by construction"
        else:
            contacts = [[ic, to] for ic, to, leg in self.contacts_s if leg == self.sensor_leg]
            note = f"[initial contact, toe-off] of the sensor ({self.sensor_leg}) leg, exact"
        return {
            "dataset": "simulated",
            "activity": template,
            "placement": self.placement.value,
            "sample_rate_hz": self.fs_hz,
            "sensor_leg": self.sensor_leg,
            "contacts_s": contacts,
            "contacts_note": note + "; sensor time base",
            "reps_s": [[start, end] for start, end in self.reps_s],
            "seed": self.seed,
            "impairments": self.impairments.to_dict(),
            "activity_s": [[start, end, activity] for start, end, activity in self.activity_s],
            "surges_s": [[start, end] for start, end in self.surges_s],
        }


class SimulatedAthlete:
    """A runner wearing one sensor, streaming blocks of samples with known truth.

    Parameters
    ----------
    plan
        The session. Open loop follows it on its own clock; closed loop uses its
        ``cooldown_s`` after ``set_done`` and ``nominal_duration_s`` for the safety end.
    placement
        ``foot`` (accelerometer + gyroscope), ``shank`` or ``trunk`` (accelerometer only).
    seed
        Everything random (athlete, steps, signal, impairments) follows from it.
    fs_hz
        Nominal sample rate (Hz).
    impairments
        Sensor and link impairments (none by default).
    closed_loop
        React to the engine's cues instead of following the plan's clock.
    profile
        The athlete; ``AthleteProfile.draw(seed)`` by default.
    recovery
        Open loop: ``jog`` (default), ``walk`` or ``stand`` between reps (see
        ``firmware_sim.script.open_loop_script``). Closed loop always jogs.
    surges
        Open loop: that many short pick-ups of pace in the warm-up and cool-down that are not reps.

    Notes
    -----
    ``read`` synthesises each sample from the step it falls in (closed-form waveforms, random
    numbers keyed by sample index), so reading the same session in any block sizes gives the same
    samples, and a 40-minute session at 200 Hz synthesises in about a second.
    """

    def __init__(
        self,
        plan: SessionPlan,
        placement: Placement,
        *,
        seed: int,
        fs_hz: float = 200.0,
        impairments: Impairments | None = None,
        closed_loop: bool = False,
        profile: AthleteProfile | None = None,
        recovery: str = "jog",
        surges: int = 0,
    ) -> None:
        if fs_hz <= 0:
            raise ValueError(f"fs_hz must be > 0, got {fs_hz}")
        self.plan = plan
        self.placement = Placement(placement)
        self.seed = seed
        self.fs_hz = fs_hz
        self.impairments = impairments if impairments is not None else Impairments()
        self.profile = profile if profile is not None else AthleteProfile.draw(seed)
        self.closed_loop = closed_loop
        self._drift = 1.0 + self.impairments.clock_drift_ppm * 1e-6
        if closed_loop:
            p = self.profile
            self._schedule = PaceSchedule(p.easy_cadence_spm, p.easy_gct_ms, p.transition_tau_s)
            self._reps: list[tuple[float, float]] = []
            self._end_s = plan.nominal_duration_s * _SAFETY_FACTOR
            self._surges: tuple[tuple[float, float], ...] = ()
        else:
            script = open_loop_script(plan, self.profile, seed, recovery=recovery, surges=surges)
            self._schedule, self._reps, self._end_s = (
                script.schedule,
                list(script.reps_s),
                script.end_s,
            )
            self._surges = script.surges_s
        self._steps = StepTrack(self.profile, self._schedule, seed)
        self._rep_start_s: float | None = None
        self._set_done = False
        self._requested_s = 0.0
        self._next = 0  # index of the next sample; sample n is taken at true time n / fs_hz

    @property
    def has_gyro(self) -> bool:
        """The stream carries angular rate: a foot pod that is not accelerometer-only."""
        return has_gyro(self.placement) and not self.impairments.accel_only

    @property
    def done(self) -> bool:
        """The session (cool-down included) is over: ``read`` returns only empty blocks."""
        return self._next >= self._total_samples()

    def read(self, duration_s: float) -> SampleBlock:
        """The next ``duration_s`` of samples (fewer if packets were lost or the session ends)."""
        if duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {duration_s}")
        self._requested_s += duration_s
        # The tolerance absorbs float error of summed durations (0.02 × 50 must reach sample 200).
        stop = min(math.floor(self._requested_s * self.fs_hz + 1e-6), self._total_samples())
        first, n = self._next, max(stop - self._next, 0)
        if n == 0:
            return SampleBlock.empty(with_gyro=self.has_gyro)
        self._next = stop
        t_true = np.arange(first, stop) / self.fs_hz
        acc, gyro = synthesize(self.placement, t_true, self._step_arrays(t_true), self.profile)
        acc = acc + _ACC_NOISE_G * indexed_random(self.seed, STREAM_ACC_NOISE, first, n, 3)
        if not self.has_gyro:
            gyro = None
        if gyro is not None:
            gyro = gyro + _GYRO_NOISE_DPS * indexed_random(
                self.seed, STREAM_GYRO_NOISE, first, n, 3
            )
        imp = self.impairments
        acc, gyro = imp.apply_values(acc, gyro, first, self.seed)
        t_s = imp.timestamps(first, n, self.fs_hz, self.seed)
        kept = imp.kept(first, n, self.seed)
        if kept is not None:
            t_s, acc = t_s[kept], acc[kept]
            gyro = None if gyro is None else gyro[kept]
        return SampleBlock(t_s, acc, gyro)

    def on_cue(self, cue: Cue) -> None:
        """Closed loop: react to ``go``, ``ease`` and ``set_done`` (others, and open loop, ignore).

        The reaction happens at ``cue.t_s`` + the athlete's reaction delay, or at once if the
        stream has already passed that moment.
        """
        if not self.closed_loop or self.done:
            return
        react_s = max(
            cue.t_s / self._drift + self.profile.reaction_delay_s,
            self._next / self.fs_hz,
            self._schedule.last_change_s,
        )
        if cue.kind is CueKind.GO and self._rep_start_s is None and not self._set_done:
            self._change_pace(react_s, *self.profile.stride_targets(len(self._reps) + 1))
            self._rep_start_s = react_s
        elif cue.kind is CueKind.EASE and self._rep_start_s is not None:
            self._ease(react_s)
        elif cue.kind is CueKind.SET_DONE and not self._set_done:
            if self._rep_start_s is not None:
                self._ease(react_s)
            self._set_done = True
            self._end_s = react_s + self.plan.cooldown_s

    def truth(self) -> Truth:
        """Ground truth of everything read so far (finished contacts and reps)."""
        now_s = self._next / self.fs_hz
        track, d = self._steps, self._drift
        first = bisect.bisect_left(track.ic_s, 0.0)
        contacts = tuple(
            (ic * d, (ic + gct) * d, LEG_NAMES[track.leg(k)])
            for k, (ic, gct) in enumerate(zip(track.ic_s, track.gct_s, strict=True))
            if k >= first and ic + gct < now_s
        )
        return Truth(
            contacts_s=contacts,
            sensor_leg=LEG_NAMES[_SENSOR_LEG] if self.placement.one_leg else None,
            reps_s=tuple((start * d, end * d) for start, end in self._reps if end <= now_s),
            placement=self.placement,
            fs_hz=self.fs_hz,
            seed=self.seed,
            impairments=self.impairments,
            activity_s=tuple((a * d, b * d, act) for a, b, act in self._activity_spans(now_s)),
            surges_s=tuple((a * d, b * d) for a, b in self._surges if b <= now_s),
        )

    def _activity_spans(self, now_s: float) -> list[tuple[float, float, str]]:
        """What the runner does from 0 to ``now_s``, in true time (see ``Truth.activity_s``)."""
        track = self._steps
        track.extend_to(now_s)
        marks: list[tuple[float, str]] = []  # (from, activity) in time order
        for k, (ic, activity) in enumerate(zip(track.ic_s, track.activity, strict=True)):
            if k in track.stands_s:
                still_from, still_until = track.stands_s[k]
                marks += [(ic, WALKING), (still_from, STILL), (still_until, WALKING)]
            else:
                marks.append((ic, activity))
        spans: list[tuple[float, float, str]] = []
        for (start, activity), (end, _) in zip(marks, [*marks[1:], (math.inf, "")], strict=True):
            start, end = max(start, 0.0), min(end, now_s)
            if end <= start:
                continue
            if spans and spans[-1][2] == activity:
                spans[-1] = (spans[-1][0], end, activity)
            else:
                spans.append((start, end, activity))
        return spans

    def _total_samples(self) -> int:
        return math.ceil(self._end_s * self.fs_hz - 1e-9)

    def _ease(self, at_s: float) -> None:
        assert self._rep_start_s is not None
        self._change_pace(at_s, self.profile.easy_cadence_spm, self.profile.easy_gct_ms)
        self._reps.append((self._rep_start_s, at_s))
        self._rep_start_s = None

    def _change_pace(self, at_s: float, cadence_spm: float, gct_ms: float) -> None:
        """Change the target from ``at_s`` and re-plan the steps no emitted sample depends on.

        A sample depends on the stride (foot, shank) or step (trunk) it falls in, up to the next
        IC: everything up to the first such IC after the stream position is kept.
        """
        self._schedule.change(at_s, cadence_spm, gct_ms)
        leg = _SENSOR_LEG if self.placement.one_leg else None
        keep = self._steps.first_after(self._next / self.fs_hz, leg=leg) + 1
        self._steps.truncate(keep)

    def _step_arrays(self, t_true: np.ndarray) -> StepArrays:
        """The steps covering ``t_true``: three sensor-leg strides before, two after."""
        track = self._steps
        track.extend_to(float(t_true[-1]) + _LOOKAHEAD_S)
        last = bisect.bisect_right(track.ic_s, float(t_true[-1]))
        while len(track) < last + 4:  # a stand holds no ICs: look past its end
            track.extend_to(track.ic_s[-1])
        lo = max(bisect.bisect_right(track.ic_s, float(t_true[0])) - 6, 0)
        hi = last + 4
        ic = np.array(track.ic_s[lo:hi])
        z = np.clip(indexed_random(self.seed, STREAM_STEPS, lo, hi - lo, STEP_NOISE_COLUMNS), -3, 3)
        z_shoe = np.clip(indexed_random(self.seed, STREAM_SHOE, lo, hi - lo, SHOE_COLUMNS), -3, 3)
        stands = [(track.ic_s[k], *track.stands_s[k]) for k in range(lo, hi) if k in track.stands_s]
        return StepArrays(
            ic_s=ic,
            to_s=ic + np.array(track.gct_s[lo:hi]),
            leg=(np.arange(lo, hi) + track.first_leg) % 2,
            intensity=self.profile.intensity(np.array(track.cadence_spm[lo:hi])),
            z=z,
            z_shoe=z_shoe,
            walking=np.array([a == WALKING for a in track.activity[lo:hi]], dtype=bool),
            stands_s=np.array(stands, dtype=np.float64).reshape(-1, 3),
        )
