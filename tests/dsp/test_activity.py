"""Activity per second and the rep engine through recoveries walked or stood, on the simulator.

The simulated runner walks (double support, no flight) or stops between reps, and surges for a
few seconds in the warm-up and cool-down; its truth holds the activity spans, the surges and the
reps, so every figure here is checked against what really happened.
"""

from __future__ import annotations

import numpy as np
import pytest

from dsp.engine import StrideEngine
from dsp.events import Activity, Cue, CueKind, Event, Metrics, Placement, RepSummary
from dsp.plan import SessionPlan
from firmware_sim.runner import SimulatedAthlete, Truth

PLAN = SessionPlan("nrr", warmup_s=180.0, reps=3, rep_s=30.0, min_recovery_s=60.0, cooldown_s=120.0)


def _session(placement: Placement, recovery: str, seed: int) -> tuple[list[Event], Truth]:
    athlete = SimulatedAthlete(PLAN, placement, seed=seed, fs_hz=100.0, recovery=recovery, surges=2)
    engine = StrideEngine(placement, 100.0)  # auto mode: the reps come from the data alone
    events: list[Event] = []
    while not athlete.done:
        events += engine.process(athlete.read(0.5))
    events += engine.finish()
    return events, athlete.truth()


def _activity_at(truth: Truth, t_s: float) -> str | None:
    for start, end, activity in truth.activity_s:
        if start <= t_s < end:
            return activity
    return None


@pytest.mark.parametrize("placement", [Placement.SHANK, Placement.TRUNK])
@pytest.mark.parametrize("recovery", ["walk", "stand"])
def test_recoveries_walked_or_stood(placement: Placement, recovery: str) -> None:
    events, truth = _session(placement, recovery, seed=3)
    metrics = [e for e in events if isinstance(e, Metrics)]

    # Every rep found once, where it really was; no rep invented in a walk, a stop or a surge.
    assert len(truth.surges_s) == 2
    starts = [c.at_s for c in events if isinstance(c, Cue) and c.kind is CueKind.REP_START]
    assert len(starts) == len(truth.reps_s) == PLAN.reps
    for at_s, (true_start, _) in zip(starts, truth.reps_s, strict=True):
        assert at_s is not None and abs(at_s - true_start) <= 2.0
    reps = [e for e in events if isinstance(e, RepSummary)]
    assert all(r.complete and r.mean_cadence_spm is not None for r in reps), reps

    # The activity of each second matches the truth 2 s earlier (the estimate looks back), away
    # from the changes; standing never reports a cadence.
    settled = []
    for m in metrics:
        now, before = _activity_at(truth, m.t_s), _activity_at(truth, m.t_s - 4.0)
        if now is not None and now == before and m.activity is not None:
            settled.append((now, m))
    for activity in ("running", recovery.replace("stand", "still").replace("walk", "walking")):
        seconds = [m for now, m in settled if now == activity]
        assert seconds, activity
        right = sum(m.activity is Activity(activity) for m in seconds)
        assert right / len(seconds) >= 0.9, (activity, right, len(seconds))
    assert all(m.cadence_spm is None for now, m in settled if now == "still")


@pytest.mark.parametrize("placement", [Placement.SHANK, Placement.TRUNK])
def test_walking_cadence_is_reported(placement: Placement) -> None:
    events, truth = _session(placement, "walk", seed=4)
    legs = [(ic, leg) for ic, _, leg in truth.contacts_s]
    ic = np.array([t for t, leg in legs if truth.sensor_leg in (None, leg)])
    one = placement.one_leg
    walking = [
        m
        for m in (e for e in events if isinstance(e, Metrics))
        if m.activity is Activity.WALKING
        and all(_activity_at(truth, m.t_s - d) == "walking" for d in np.arange(0.0, 8.5, 0.5))
    ]
    assert len(walking) >= 20
    for m in walking:
        assert m.cadence_spm is not None and m.trusted
        inside = ic[(ic >= m.t_s - 6.0) & (ic < m.t_s)]
        true_spm = (120.0 if one else 60.0) * (len(inside) - 1) / (inside[-1] - inside[0])
        assert abs(m.cadence_spm - true_spm) <= 3.0, (m.t_s, m.cadence_spm, true_spm)
