"""The simulated athlete: determinism, block-size invariance, truth, closed loop and speed."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from dsp.events import Cue, CueKind, Placement
from dsp.plan import SessionPlan, template
from dsp.samples import SampleBlock
from firmware_sim import AthleteProfile, Impairments, SimulatedAthlete, Truth

SHORT = SessionPlan(
    name="short", warmup_s=60.0, reps=3, rep_s=20.0, min_recovery_s=40.0, cooldown_s=30.0
)
FS_HZ = 200.0
EVERYTHING = Impairments.from_spec(
    "noise=0.05,bias=0.1,orientation,saturation=8,jitter=2,drop=0.02,drift=80"
)
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "running-truth"


def _gyro(block: SampleBlock) -> np.ndarray:
    assert block.gyro_dps is not None
    return block.gyro_dps


def _whole(athlete: SimulatedAthlete) -> SampleBlock:
    block = athlete.read(1e5)
    assert athlete.done
    return block


def _in_blocks(athlete: SimulatedAthlete, rng: np.random.Generator) -> SampleBlock:
    blocks = []
    while not athlete.done:
        blocks.append(athlete.read(float(rng.choice([0.0, 0.003, 0.02, 0.137, 1.0, 4.9]))))
    return SampleBlock.concat(blocks)


def _cadence(truth: Truth, start_s: float, stop_s: float) -> float:
    ic = np.array([c[0] for c in truth.contacts_s])
    sel = (ic[:-1] >= start_s) & (ic[:-1] < stop_s)
    return float(np.median(60.0 / np.diff(ic)[sel]))


def _gct_ms(truth: Truth, start_s: float, stop_s: float) -> float:
    return float(
        np.median([(to - ic) * 1000 for ic, to, _ in truth.contacts_s if start_s <= ic < stop_s])
    )


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    a, b, c = (
        _whole(SimulatedAthlete(SHORT, Placement.FOOT, seed=s, impairments=EVERYTHING))
        for s in (7, 7, 8)
    )
    for x, y in ((a.t_s, b.t_s), (a.acc_g, b.acc_g), (_gyro(a), _gyro(b))):
        assert np.array_equal(x, y)
    n = min(len(a), len(c))
    assert not np.allclose(a.acc_g[:n], c.acc_g[:n])


@pytest.mark.parametrize("placement", list(Placement))
@pytest.mark.parametrize("impairments", [None, EVERYTHING], ids=["clean", "impaired"])
def test_block_sizes_do_not_change_the_samples(
    placement: Placement, impairments: Impairments | None
) -> None:
    whole = _whole(SimulatedAthlete(SHORT, placement, seed=3, impairments=impairments))
    parts = _in_blocks(
        SimulatedAthlete(SHORT, placement, seed=3, impairments=impairments),
        np.random.default_rng(0),
    )
    assert np.array_equal(whole.t_s, parts.t_s)
    assert np.array_equal(whole.acc_g, parts.acc_g)
    assert (whole.gyro_dps is None) == (placement is not Placement.FOOT)
    if whole.gyro_dps is not None:
        assert parts.gyro_dps is not None and np.array_equal(whole.gyro_dps, parts.gyro_dps)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_open_loop_truth_is_consistent_with_the_plan_and_profile(seed: int) -> None:
    athlete = SimulatedAthlete(SHORT, Placement.TRUNK, seed=seed, fs_hz=FS_HZ)
    block = _whole(athlete)
    truth, p = athlete.truth(), athlete.profile
    ic = np.array([c[0] for c in truth.contacts_s])
    to = np.array([c[1] for c in truth.contacts_s])
    legs = [c[2] for c in truth.contacts_s]
    assert ic[0] >= 0 and to[-1] <= block.t_s[-1] + 1 / FS_HZ
    assert np.all(np.diff(ic) > 0) and np.all(to > ic) and np.all(to[:-1] < ic[1:])
    assert all(a != b for a, b in itertools.pairwise(legs))
    # Per-step variability is clipped at 3 sigma; legs differ by the asymmetry.
    cadence = 60.0 / np.diff(ic)
    cv, side = 3 * p.cadence_cv_pct / 100, p.asymmetry_pct / 400
    assert p.easy_cadence_spm / ((1 + cv) * (1 + side)) * (1 - 1e-12) <= cadence.min()
    assert cadence.max() <= p.stride_cadence_spm / ((1 - cv) * (1 - side)) * (1 + 1e-12)
    gct_ms = (to - ic) * 1000
    cv, side = 3 * p.gct_cv_pct / 100, p.asymmetry_pct / 200
    assert p.stride_gct_ms * (1 - cv) * (1 - side) * (1 - 1e-12) <= gct_ms.min()
    assert gct_ms.max() <= p.easy_gct_ms * (1 + cv) * (1 + side) * (1 + 1e-12)
    # Reps: as planned, and the runner really runs them at stride pace.
    assert len(truth.reps_s) == SHORT.reps
    assert truth.reps_s[0][0] == SHORT.warmup_s
    for rep, (start, end) in enumerate(truth.reps_s, start=1):
        assert end - start == pytest.approx(SHORT.rep_s)
        cad, gct = p.stride_targets(rep)
        assert _cadence(truth, start + 5 * p.transition_tau_s, end) == pytest.approx(cad, rel=0.02)
        assert _gct_ms(truth, start + 5 * p.transition_tau_s, end) == pytest.approx(gct, rel=0.04)
        # No anticipation: the seconds before the rep are still easy.
        assert _cadence(truth, start - 4.0, start) == pytest.approx(p.easy_cadence_spm, rel=0.02)
    assert _cadence(truth, 5.0, SHORT.warmup_s) == pytest.approx(p.easy_cadence_spm, rel=0.02)
    end_s = truth.reps_s[-1][1] + SHORT.cooldown_s
    assert end_s - 1 / FS_HZ <= block.t_s[-1] < end_s


def test_fatiguing_athlete_shows_it_in_the_truth() -> None:
    profile = AthleteProfile.draw(5, fatiguing=True, fatigue_onset_rep=2)
    athlete = SimulatedAthlete(SHORT, Placement.FOOT, seed=5, profile=profile)
    _whole(athlete)
    truth = athlete.truth()
    settle = 5 * profile.transition_tau_s
    (s1, e1), *later = truth.reps_s
    for start, end in later:
        assert _gct_ms(truth, start + settle, end) >= 1.05 * _gct_ms(truth, s1 + settle, e1)
        assert _cadence(truth, start + settle, end) <= 0.97 * _cadence(truth, s1 + settle, e1)


def test_truth_json_follows_the_recordings_convention() -> None:
    foot = SimulatedAthlete(SHORT, Placement.FOOT, seed=2, impairments=Impairments(noise_g=0.01))
    trunk = SimulatedAthlete(SHORT, Placement.TRUNK, seed=2)
    for athlete in (foot, trunk):
        athlete.read(100.0)
    foot_doc = json.loads(json.dumps(foot.truth().to_json_dict("nrr")))
    trunk_doc = json.loads(json.dumps(trunk.truth().to_json_dict("nrr")))
    assert foot_doc["dataset"] == "simulated" and foot_doc["activity"] == "nrr"
    assert foot_doc["placement"] == "foot" and foot_doc["sample_rate_hz"] == 200.0
    assert foot_doc["seed"] == 2 and foot_doc["impairments"]["noise_g"] == 0.01
    assert foot_doc["reps_s"] == [[60.0, 80.0]]
    own = [[ic, to] for ic, to, leg in foot.truth().contacts_s if leg == "left"]
    assert foot_doc["contacts_s"] == own
    every = [[ic, to] for ic, to, _ in trunk.truth().contacts_s]
    assert trunk_doc["contacts_s"] == every and len(every) > 1.8 * len(own)


@pytest.mark.shared
def test_truth_json_has_the_keys_of_the_real_recordings() -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    real = json.loads(next(SHARED.glob("*/*.json")).read_text())
    athlete = SimulatedAthlete(SHORT, Placement.SHANK, seed=1)
    athlete.read(10.0)
    doc = athlete.truth().to_json_dict("nrr")
    for key in ("dataset", "activity", "placement", "sample_rate_hz", "contacts_s"):
        assert key in real and key in doc
        assert type(doc[key]) is type(real[key])


def _closed(seed: int = 6, plan: SessionPlan = SHORT) -> SimulatedAthlete:
    return SimulatedAthlete(plan, Placement.FOOT, seed=seed, closed_loop=True)


def test_closed_loop_reacts_to_go_and_ease_after_the_reaction_delay() -> None:
    athlete = _closed()
    delay, tau = athlete.profile.reaction_delay_s, athlete.profile.transition_tau_s
    blocks = [athlete.read(40.0)]
    athlete.on_cue(Cue(t_s=39.99, kind=CueKind.GO, text="go", rep=1, reps=3))
    blocks += [athlete.read(0.02) for _ in range(1000)]  # 20 s in live-demo blocks of 20 ms
    athlete.on_cue(Cue(t_s=59.99, kind=CueKind.EASE, text="ease", rep=1, reps=3))
    blocks.append(athlete.read(30.0))
    truth = athlete.truth()
    assert truth.reps_s == ((pytest.approx(39.99 + delay), pytest.approx(59.99 + delay)),)
    p = athlete.profile
    assert _cadence(truth, 30.0, 39.99) == pytest.approx(p.easy_cadence_spm, rel=0.02)
    stride = _cadence(truth, 39.99 + delay + 5 * tau, 59.99 + delay)
    assert stride == pytest.approx(p.stride_cadence_spm, rel=0.02)
    assert _cadence(truth, 59.99 + delay + 5 * tau, 89.0) == pytest.approx(
        p.easy_cadence_spm, rel=0.02
    )
    # Only what follows the stride in the air at the cue changes: no seam in the stream.
    samples = SampleBlock.concat(blocks)
    assert np.all(np.diff(samples.t_s) > 0) and len(samples) == round(90.0 * FS_HZ)
    uncued = _closed().read(90.0)
    landing = min(ic for ic, _, leg in truth.contacts_s if leg == "left" and ic >= 40.0)
    same = samples.t_s < landing
    assert np.array_equal(_gyro(samples)[same], _gyro(uncued)[same])
    assert not np.allclose(_gyro(samples)[~same], _gyro(uncued)[~same])


def test_closed_loop_is_deterministic_for_the_same_cues() -> None:
    runs = []
    for _ in range(2):
        athlete = _closed(seed=9)
        athlete.read(30.0)
        athlete.on_cue(Cue(t_s=30.0, kind=CueKind.GO, text="go"))
        athlete.read(15.0)
        athlete.on_cue(Cue(t_s=45.0, kind=CueKind.EASE, text="ease"))
        athlete.read(20.0)
        runs.append(athlete.truth())
    assert runs[0] == runs[1]


def test_set_done_sends_the_runner_into_the_cool_down() -> None:
    athlete = _closed()
    delay = athlete.profile.reaction_delay_s
    athlete.read(30.0)
    athlete.on_cue(Cue(t_s=30.0, kind=CueKind.GO, text="go"))
    athlete.read(10.0)
    # Set done mid-rep (the engine saw fatigue): the runner eases, then cools down.
    athlete.on_cue(Cue(t_s=40.0, kind=CueKind.SET_DONE, text="set done"))
    athlete.on_cue(Cue(t_s=40.0, kind=CueKind.GO, text="ignored"))
    last = athlete.read(1000.0)
    assert athlete.done and len(athlete.read(1.0)) == 0
    end_s = 40.0 + delay + SHORT.cooldown_s
    assert end_s - 1 / FS_HZ <= last.t_s[-1] < end_s
    truth = athlete.truth()
    assert truth.reps_s == ((pytest.approx(30.0 + delay), pytest.approx(40.0 + delay)),)
    cool = _cadence(truth, 45.0 + delay, 40.0 + SHORT.cooldown_s)
    assert cool == pytest.approx(athlete.profile.easy_cadence_spm, rel=0.02)


def test_closed_loop_without_cues_jogs_to_the_safety_end() -> None:
    plan = SessionPlan(
        name="tiny", warmup_s=10.0, reps=1, rep_s=5.0, min_recovery_s=0.0, cooldown_s=5.0
    )
    athlete = _closed(plan=plan)
    block = athlete.read(1000.0)
    assert athlete.done
    assert 3 * plan.nominal_duration_s - 1 / FS_HZ <= block.t_s[-1] < 3 * plan.nominal_duration_s
    assert athlete.truth().reps_s == ()


def test_open_loop_ignores_cues() -> None:
    cued, plain = (SimulatedAthlete(SHORT, Placement.SHANK, seed=2) for _ in range(2))
    cued.read(10.0)
    plain.read(10.0)
    cued.on_cue(Cue(t_s=10.0, kind=CueKind.GO, text="go"))
    assert np.array_equal(cued.read(30.0).acc_g, plain.read(30.0).acc_g)


def test_drifted_cue_reaction_is_in_the_sensor_time_base() -> None:
    ppm = 1000.0
    athlete = SimulatedAthlete(
        SHORT,
        Placement.TRUNK,
        seed=6,
        closed_loop=True,
        impairments=Impairments(clock_drift_ppm=ppm),
    )
    athlete.read(20.0)
    athlete.on_cue(Cue(t_s=20.0, kind=CueKind.GO, text="go"))
    athlete.read(10.0)
    athlete.on_cue(Cue(t_s=30.0, kind=CueKind.EASE, text="ease"))
    athlete.read(5.0)
    start, end = athlete.truth().reps_s[0]
    delay_sensor = athlete.profile.reaction_delay_s * (1 + ppm * 1e-6)
    assert start == pytest.approx(20.0 + delay_sensor) and end == pytest.approx(30.0 + delay_sensor)


def test_a_forty_minute_session_synthesises_fast() -> None:
    plan = template("nrr")
    athlete = SimulatedAthlete(plan, Placement.FOOT, seed=1, impairments=EVERYTHING)
    began = time.perf_counter()
    blocks = [athlete.read(60.0) for _ in range(40)]
    elapsed = time.perf_counter() - began
    assert athlete.done and plan.nominal_duration_s > 35 * 60
    assert sum(len(b) for b in blocks) > 0.95 * plan.nominal_duration_s * FS_HZ
    assert len(athlete.truth().reps_s) == plan.reps
    assert elapsed < 12.0  # >= 200x real time on a small machine
