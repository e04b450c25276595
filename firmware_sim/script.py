"""The open-loop session script: warm-up, reps, recoveries (jogged, walked or stood), surges.

Real runs are not a jog interrupted by strides: runners walk or stand between reps, and speed up
for a few seconds now and then without meaning a rep. The script says when the runner changes
pace and activity; the gait model (``firmware_sim.gait``) turns it into steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.plan import SessionPlan
from firmware_sim.gait import STILL, STREAM_SCRIPT, WALKING, AthleteProfile, PaceSchedule

RECOVERIES = ("jog", "walk", "stand")
_EASE_TO_WALK_S = 6.0  # a runner jogs a few seconds out of a rep before walking
_WALK_TO_STAND_S = 4.0  # ... and walks a few more before stopping
_JOG_BEFORE_REP_S = 20.0  # ... and jogs this long before the next rep
_MIN_SPAN_S = 5.0  # a walk or a stand shorter than this is not scripted (the runner jogs)
_SURGE_S = (6.0, 12.0)
_SURGE_SHARE = 0.75  # a surge's cadence and contact: this share of the way from easy to stride
_SURGE_MARGIN_S = 30.0  # surges stay this far from the ends of the warm-up and cool-down


@dataclass(frozen=True, slots=True)
class Script:
    """An open-loop session: the pace schedule, the true rep and surge spans, and the end time."""

    schedule: PaceSchedule
    reps_s: tuple[tuple[float, float], ...]
    end_s: float
    surges_s: tuple[tuple[float, float], ...] = ()


def open_loop_script(
    plan: SessionPlan,
    profile: AthleteProfile,
    seed: int,
    *,
    recovery: str = "jog",
    surges: int = 0,
) -> Script:
    """Warm-up, ``plan.reps`` strides, recoveries, cool-down, on the plan's clock.

    Each recovery lasts ``plan.min_recovery_s`` plus a seeded 15–30 s: a real runner waits for
    the engine's cue, which comes only once the recovery is full. ``recovery``: ``jog``
    (throughout), ``walk`` (jog out of the rep for 6 s, walk, jog the last 20 s) or ``stand``
    (the same with a stop in the middle of the walk). ``surges``: that many 6–12 s pick-ups of
    pace that are not reps, spread over the warm-up and cool-down.
    """
    if recovery not in RECOVERIES:
        raise ValueError(f"recovery must be one of {', '.join(RECOVERIES)}, got {recovery!r}")
    if surges < 0:
        raise ValueError(f"surges must be >= 0, got {surges}")
    rng = np.random.default_rng([seed, STREAM_SCRIPT])
    extra_s = rng.uniform(15.0, 30.0, size=plan.reps)
    p = profile
    schedule = PaceSchedule(p.easy_cadence_spm, p.easy_gct_ms, p.transition_tau_s)
    reps: list[tuple[float, float]] = []
    start = plan.warmup_s
    surge_spans = _surge_spans(rng, surges, plan, extra_s)
    for s0, s1 in (s for s in surge_spans if s[1] <= plan.warmup_s):
        _surge(schedule, profile, s0, s1)
    for rep in range(1, plan.reps + 1):
        end = start + plan.rep_s
        schedule.change(start, *profile.stride_targets(rep))
        schedule.change(end, p.easy_cadence_spm, p.easy_gct_ms)
        reps.append((start, end))
        start = end + plan.min_recovery_s + float(extra_s[rep - 1])
        if rep < plan.reps:
            _recover(schedule, profile, recovery, end, start)
    for s0, s1 in (s for s in surge_spans if s[0] > plan.warmup_s):
        _surge(schedule, profile, s0, s1)
    return Script(schedule, tuple(reps), reps[-1][1] + plan.cooldown_s, tuple(surge_spans))


def _recover(
    schedule: PaceSchedule, p: AthleteProfile, recovery: str, end_s: float, next_s: float
) -> None:
    """Walk (or walk, stand, walk) between a rep's end and the jog before the next rep."""
    walk_s, jog_s = end_s + _EASE_TO_WALK_S, next_s - _JOG_BEFORE_REP_S
    if recovery == "jog" or jog_s - walk_s < _MIN_SPAN_S:
        return
    schedule.change(walk_s, p.walk_cadence_spm, p.walk_gct_ms, WALKING)
    stand_s = walk_s + _WALK_TO_STAND_S
    if recovery == "stand" and jog_s - _WALK_TO_STAND_S - stand_s >= _MIN_SPAN_S:
        schedule.change(stand_s, p.walk_cadence_spm, p.walk_gct_ms, STILL)
        schedule.change(jog_s - _WALK_TO_STAND_S, p.walk_cadence_spm, p.walk_gct_ms, WALKING)
    schedule.change(jog_s, p.easy_cadence_spm, p.easy_gct_ms)


def _surge_spans(
    rng: np.random.Generator, count: int, plan: SessionPlan, extra_s: np.ndarray
) -> list[tuple[float, float]]:
    """``count`` surges, alternately in the warm-up and the cool-down, in time order."""
    if count == 0:
        return []
    last_end = plan.warmup_s + plan.reps * plan.rep_s
    last_end += (plan.reps - 1) * plan.min_recovery_s + float(extra_s[:-1].sum())
    windows = [(0.0, plan.warmup_s), (last_end, last_end + plan.cooldown_s)]
    spans: list[tuple[float, float]] = []
    for i in range(count):
        lo, hi = windows[i % 2]
        per = (count + 1 - i % 2) // 2  # surges in this window
        slot = (hi - lo - 2 * _SURGE_MARGIN_S) / per
        if slot < 2 * _SURGE_S[1]:
            raise ValueError(f"{count} surges do not fit in the warm-up and cool-down")
        begin = lo + _SURGE_MARGIN_S + slot * (i // 2) + rng.uniform(0.0, slot - _SURGE_S[1])
        spans.append((begin, begin + rng.uniform(*_SURGE_S)))
    return sorted(spans)


def _surge(schedule: PaceSchedule, p: AthleteProfile, start_s: float, end_s: float) -> None:
    cadence = p.easy_cadence_spm + _SURGE_SHARE * (p.stride_cadence_spm - p.easy_cadence_spm)
    gct = p.easy_gct_ms + _SURGE_SHARE * (p.stride_gct_ms - p.easy_gct_ms)
    schedule.change(start_s, cadence, gct)
    schedule.change(end_s, p.easy_cadence_spm, p.easy_gct_ms)
