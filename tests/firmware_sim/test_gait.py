"""The gait model: athlete profiles, first-order pace response, the step track, the script."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsp.plan import SessionPlan, template
from firmware_sim.gait import (
    STREAM_STEPS,
    AthleteProfile,
    PaceSchedule,
    StepTrack,
    indexed_random,
)
from firmware_sim.script import open_loop_script

SHORT = SessionPlan(
    name="short", warmup_s=60.0, reps=3, rep_s=20.0, min_recovery_s=40.0, cooldown_s=30.0
)


@pytest.mark.parametrize("seed", range(20))
def test_profile_draws_lie_in_the_field_ranges(seed: int) -> None:
    p = AthleteProfile.draw(seed)
    assert p == AthleteProfile.draw(seed)
    assert 150 <= p.easy_cadence_spm <= 170 and 250 <= p.easy_gct_ms <= 300
    assert 175 <= p.stride_cadence_spm <= 200 and 170 <= p.stride_gct_ms <= 220
    assert 1 <= p.cadence_cv_pct <= 2 and 2 <= p.gct_cv_pct <= 4
    assert 0.3 <= p.reaction_delay_s <= 0.8 and 0.6 <= p.transition_tau_s <= 1.0
    assert 25 <= p.shank_impact_lag_ms <= 35 and 10 <= p.shank_to_offset_ms <= 25
    assert 5 <= p.trunk_lag_ms <= 15
    assert p.fatigue_onset_rep is None


def test_seeds_draw_different_athletes() -> None:
    cadences = {AthleteProfile.draw(seed).easy_cadence_spm for seed in range(10)}
    assert len(cadences) == 10


def test_default_fatigue_stays_below_the_flag_thresholds() -> None:
    p = AthleteProfile.draw(3)
    cad1, gct1 = p.stride_targets(1)
    cad10, gct10 = p.stride_targets(10)
    assert 0 < gct10 / gct1 - 1 < 0.06
    assert 0 < 1 - cad10 / cad1 < 0.04


def test_fatiguing_athlete_degrades_from_the_onset_rep() -> None:
    p = AthleteProfile.draw(3, fatiguing=True, fatigue_onset_rep=4)
    cad1, gct1 = p.stride_targets(1)
    for rep in (2, 3):
        cad, gct = p.stride_targets(rep)
        assert gct / gct1 - 1 < 0.02 and 1 - cad / cad1 < 0.01
    for rep in (4, 5, 8):
        cad, gct = p.stride_targets(rep)
        assert gct / gct1 - 1 >= 0.06
        assert 1 - cad / cad1 >= 0.04


def test_pace_schedule_is_a_first_order_response_starting_at_the_change() -> None:
    sched = PaceSchedule(160.0, 280.0, tau_s=0.8)
    sched.change(100.0, 190.0, 190.0)
    assert sched.at(99.999) == (160.0, 280.0)
    assert sched.at(100.0) == pytest.approx((160.0, 280.0))
    cad, gct = sched.at(100.8)
    assert cad == pytest.approx(160.0 + 30.0 * (1 - math.exp(-1)))
    assert gct == pytest.approx(280.0 - 90.0 * (1 - math.exp(-1)))
    # Easing mid-transition starts from where the runner is, not from the target.
    sched.change(101.0, 160.0, 280.0)
    start = sched.at(101.0)
    assert start[0] == pytest.approx(160.0 + 30.0 * (1 - math.exp(-1 / 0.8)))
    assert sched.at(101.0 + 8.0)[0] == pytest.approx(160.0, abs=0.01)
    with pytest.raises(ValueError, match="precedes"):
        sched.change(100.5, 190.0, 190.0)


def test_open_loop_script_follows_the_plan() -> None:
    p = AthleteProfile.draw(5)
    script = open_loop_script(SHORT, p, seed=5)
    assert len(script.reps_s) == SHORT.reps
    assert script.reps_s[0][0] == SHORT.warmup_s
    for start, end in script.reps_s:
        assert end - start == pytest.approx(SHORT.rep_s)
    for (_, end), (start, _) in zip(script.reps_s, script.reps_s[1:], strict=False):
        assert SHORT.min_recovery_s + 15 <= start - end <= SHORT.min_recovery_s + 30
    assert script.end_s == pytest.approx(script.reps_s[-1][1] + SHORT.cooldown_s)
    nrr = template("nrr")
    assert len(open_loop_script(nrr, p, seed=5).reps_s) == nrr.reps


def test_indexed_random_does_not_depend_on_how_it_is_sliced() -> None:
    whole = indexed_random(11, STREAM_STEPS, 1000, 3000, 4)
    parts = np.concatenate(
        [
            indexed_random(11, STREAM_STEPS, a, b - a, 4)
            for a, b in [(1000, 1023), (1023, 2049), (2049, 4000)]
        ]
    )
    assert np.array_equal(whole, parts)
    assert not np.array_equal(whole, indexed_random(12, STREAM_STEPS, 1000, 3000, 4))


def test_step_track_alternates_legs_with_flight_and_regenerates_identically() -> None:
    p = AthleteProfile.draw(2)
    sched = PaceSchedule(p.easy_cadence_spm, p.easy_gct_ms, p.transition_tau_s)
    track = StepTrack(p, sched, seed=2)
    track.extend_to(120.0)
    ic = np.array(track.ic_s)
    gct = np.array(track.gct_s)
    assert ic[0] < -1.0  # the stream opens mid-run
    assert np.all(gct < 0.9 * np.diff(ic, append=np.inf))  # a flight phase after every contact
    assert {track.leg(k) for k in range(0, len(track), 2)} == {track.leg(0)}
    assert track.leg(1) != track.leg(0)
    before = (list(track.ic_s), list(track.gct_s))
    track.truncate(100)
    track.extend_to(120.0)
    assert (track.ic_s, track.gct_s) == before
