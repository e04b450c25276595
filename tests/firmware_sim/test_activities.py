"""Real runs hold walking, standing and surges: the script, the gait and the truth of them."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from dsp.events import Placement
from dsp.plan import SessionPlan
from dsp.samples import SampleBlock
from firmware_sim import Impairments, SimulatedAthlete, Truth
from firmware_sim.gait import STRIKES, AthleteProfile

PLAN = SessionPlan(
    name="short", warmup_s=60.0, reps=3, rep_s=20.0, min_recovery_s=60.0, cooldown_s=30.0
)
LONG = dataclasses.replace(PLAN, warmup_s=150.0, cooldown_s=100.0)  # room for surges
FS_HZ = 100.0
SETTLED_S = 3.0  # a gait settles within a few steps of a change


def _session(
    placement: Placement, recovery: str, seed: int = 2, surges: int = 0
) -> tuple[SampleBlock, Truth, SimulatedAthlete]:
    plan = LONG if surges else PLAN
    athlete = SimulatedAthlete(
        plan, placement, seed=seed, fs_hz=FS_HZ, recovery=recovery, surges=surges
    )
    block = athlete.read(1e4)
    assert athlete.done
    return block, athlete.truth(), athlete


def _spans(truth: Truth, activity: str) -> list[tuple[float, float]]:
    return [(a, b) for a, b, act in truth.activity_s if act == activity]


def _inside(t_s: np.ndarray, spans: list[tuple[float, float]], margin_s: float) -> np.ndarray:
    mask = np.zeros(t_s.size, dtype=bool)
    for a, b in spans:
        mask |= (t_s >= a + margin_s) & (t_s <= b - margin_s)
    return mask


@pytest.mark.parametrize("recovery", ["jog", "walk", "stand"])
def test_activity_spans_tile_the_session(recovery: str) -> None:
    block, truth, _ = _session(Placement.TRUNK, recovery)
    spans = truth.activity_s
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(block.t_s[-1] + 1 / FS_HZ)
    assert all(a[1] == b[0] and a[2] != b[2] for a, b in itertools.pairwise(spans))
    kinds = {act for _, _, act in spans}
    expected = {"jog": {"running"}, "walk": {"running", "walking"}}
    assert kinds == expected.get(recovery, {"running", "walking", "still"})
    # Reps are run; walks and stands lie in the recoveries.
    for start, end in truth.reps_s:
        assert all(act == "running" for a, b, act in spans if a < end and b > start)
    if recovery != "jog":
        assert len(_spans(truth, "walking")) >= PLAN.reps - 1


def test_walking_has_double_support_walking_cadence_and_no_flight() -> None:
    block, truth, athlete = _session(Placement.TRUNK, "walk")
    p = athlete.profile
    walks = _spans(truth, "walking")
    ic = np.array([c[0] for c in truth.contacts_s])
    to = np.array([c[1] for c in truth.contacts_s])
    for a, b in walks:
        k = np.flatnonzero((ic >= a + SETTLED_S) & (ic < b - 1.0))
        assert k.size >= 10
        interval = ic[k + 1] - ic[k]
        # Double support: each contact outlasts its step; walking cadence and contact time.
        assert np.all(to[k] > ic[k + 1])
        assert 95.0 <= np.median(60.0 / interval) <= 130.0
        assert np.median(60.0 / interval) == pytest.approx(p.walk_cadence_spm, rel=0.05)
        assert 500.0 <= np.median(to[k] - ic[k]) * 1000 <= 760.0
    # The trunk never falls to 0 g while walking (no flight phase).
    walking = _inside(block.t_s, walks, SETTLED_S)
    assert walking.sum() > 10 * FS_HZ
    assert block.acc_g[walking, 2].min() > 0.3


@pytest.mark.parametrize("placement", list(Placement))
def test_standing_is_still_with_a_small_sway_and_no_contacts(placement: Placement) -> None:
    block, truth, _ = _session(placement, "stand")
    stands = _spans(truth, "still")
    assert len(stands) == PLAN.reps - 1
    assert all(b - a > 10.0 for a, b in stands)
    still = _inside(block.t_s, stands, 0.3)
    norm = np.linalg.norm(block.acc_g[still], axis=1)
    assert np.abs(norm - 1.0).max() < 0.15
    assert 0.002 < np.std(block.acc_g[still, 0]) < 0.05  # postural sway, not a frozen signal
    if block.gyro_dps is not None:
        assert np.abs(block.gyro_dps[still]).max() < 15.0
    # Both feet are down: no contact starts or ends inside a stand.
    for ic, to, _ in truth.contacts_s:
        assert not any(a < ic < b or a < to < b for a, b in stands)


@pytest.mark.parametrize("recovery", ["walk", "stand"])
def test_recoveries_do_not_depend_on_block_boundaries(recovery: str) -> None:
    def make() -> SimulatedAthlete:
        return SimulatedAthlete(PLAN, Placement.FOOT, seed=5, fs_hz=FS_HZ, recovery=recovery)

    whole = make().read(1e4)
    athlete, rng, parts = make(), np.random.default_rng(1), []
    while not athlete.done:
        parts.append(athlete.read(float(rng.choice([0.0, 0.013, 0.2, 1.7, 6.1]))))
    block = SampleBlock.concat(parts)
    assert np.array_equal(whole.acc_g, block.acc_g)
    assert whole.gyro_dps is not None and block.gyro_dps is not None
    assert np.array_equal(whole.gyro_dps, block.gyro_dps)


def test_surges_are_short_pickups_outside_the_reps() -> None:
    _, truth, athlete = _session(Placement.TRUNK, "jog", surges=2)
    assert len(truth.surges_s) == 2
    ic = np.array([c[0] for c in truth.contacts_s])
    for a, b in truth.surges_s:
        assert 6.0 <= b - a <= 12.0
        assert not any(a < end and b > start for start, end in truth.reps_s)
        during = np.diff(ic[(ic >= a + SETTLED_S) & (ic <= b)])
        assert 60.0 / np.median(during) > athlete.profile.easy_cadence_spm + 8.0


def test_truth_json_adds_activity_and_surges() -> None:
    _, truth, _ = _session(Placement.SHANK, "stand", surges=1)
    doc = json.loads(json.dumps(truth.to_json_dict("nrr")))
    assert {"contacts_s", "reps_s", "seed", "impairments"} <= doc.keys()
    assert doc["activity_s"] == [[a, b, act] for a, b, act in truth.activity_s]
    assert doc["surges_s"] == [[a, b] for a, b in truth.surges_s]


def test_bad_recovery_and_surges_are_refused() -> None:
    with pytest.raises(ValueError, match="recovery must be one of"):
        SimulatedAthlete(PLAN, Placement.FOOT, seed=1, recovery="swim")
    with pytest.raises(ValueError, match="do not fit"):
        SimulatedAthlete(PLAN, Placement.FOOT, seed=1, surges=12)


def test_accelerometer_only_shoe_at_100_hz_clips_at_8_g() -> None:
    impairments = Impairments.from_spec("accel-only,saturation=8")
    assert impairments == Impairments(accel_only=True, saturation_g=8.0)
    athlete = SimulatedAthlete(PLAN, Placement.FOOT, seed=3, fs_hz=100.0, impairments=impairments)
    assert not athlete.has_gyro
    assert athlete.read(0.0).gyro_dps is None
    block = athlete.read(1e4)
    assert block.gyro_dps is None
    assert np.abs(block.acc_g).max() == 8.0
    # At stride pace the swing goes beyond the range on some strides, not on most samples.
    assert 0.0 < np.mean(np.abs(block.acc_g) >= 8.0) < 0.01


def test_strike_patterns_are_drawn_and_shape_the_impact() -> None:
    strikes = {AthleteProfile.draw(seed).strike for seed in range(40)}
    assert strikes == set(STRIKES)
    base = AthleteProfile.draw(4)
    peaks = {}
    for strike in STRIKES:
        profile = dataclasses.replace(base, strike=strike)
        athlete = SimulatedAthlete(PLAN, Placement.FOOT, seed=4, fs_hz=500.0, profile=profile)
        block = athlete.read(50.0)
        norm = np.linalg.norm(block.acc_g, axis=1)
        own = [ic for ic, _, leg in athlete.truth().contacts_s if leg == "left"][1:-1]
        peaks[strike] = np.median(
            [norm[round(ic * 500) : round(ic * 500) + 10].max() for ic in own]
        )
    assert peaks["heel"] > peaks["mid"] > peaks["fore"]
    with pytest.raises(ValueError, match="strike must be one of"):
        dataclasses.replace(base, strike="toe")
