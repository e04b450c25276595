"""StepDetector on real recordings against force-plate contacts, and its streaming invariances.

Accuracy targets (per dataset, pooled over its running trials, eval protocol of
``recordings.evaluate.score_contacts``): recall and precision >= 0.98, |contact-time bias| <= 10 ms,
contact-time MAE <= 20 ms, and every step confirmed within 150 ms of its toe-off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.events import Gap, Placement, StepEvent
from dsp.plan import SessionPlan
from dsp.quality import QualityMonitor
from dsp.samples import SampleBlock
from dsp.steps import CONFIGS, StepDetector
from firmware_sim.gait import STRIKES, AthleteProfile
from firmware_sim.impair import Impairments
from firmware_sim.runner import SimulatedAthlete
from recordings.evaluate import ContactScore, score_contacts
from recordings.trials import Trial, find_trials
from tests.dsp.calibration import (
    alternate_of,
    cross_validate,
    runner_of,
    running_trials,
    walking_folds,
)
from tests.dsp.conftest import (
    UPSIDE_DOWN,
    Recording,
    detect,
    detect_one,
    random_bounds,
    random_rotation,
)

FloatArray = NDArray[np.float64]
MIN_RECALL = 0.98
MIN_PRECISION = 0.98
MAX_GCT_BIAS_MS = 10.0
MAX_GCT_MAE_MS = 20.0
MAX_LATENCY_S = 0.150
DATASETS = [
    # (fixture, trials, placement)
    ("bach_running", 5, Placement.SHANK),
    ("alcantara_running", 16, Placement.TRUNK),
]


def score(rec: Recording, steps: list[StepEvent], gaps: tuple[Gap, ...] = ()) -> ContactScore:
    return score_contacts(
        steps,
        rec.contacts_s,
        one_leg=rec.placement.one_leg,
        t_end_s=float(rec.t_s[-1]),
        gaps=gaps,
    )


def pooled_recall(scores: list[ContactScore]) -> float:
    return sum(s.matched for s in scores) / sum(s.n_contacts for s in scores)


@pytest.fixture(scope="module")
def whole(
    bach_running: list[Recording], alcantara_running: list[Recording]
) -> dict[str, list[StepEvent]]:
    """Every running trial's steps, the stream fed in one block."""
    return {rec.name: detect_one(rec) for rec in bach_running + alcantara_running}


@pytest.mark.shared
@pytest.mark.parametrize(("fixture", "n_trials", "placement"), DATASETS)
def test_accuracy_against_force_plates(
    fixture: str,
    n_trials: int,
    placement: Placement,
    whole: dict[str, list[StepEvent]],
    request: pytest.FixtureRequest,
) -> None:
    recordings: list[Recording] = request.getfixturevalue(fixture)
    assert len(recordings) == n_trials
    scores = []
    for rec in recordings:
        assert rec.placement is placement
        steps = whole[rec.name]
        latency_s = np.array([s.emitted_s - s.to_s for s in steps])
        assert latency_s.max() <= MAX_LATENCY_S, rec.name
        assert {s.foot for s in steps} == ({"left"} if placement.one_leg else {None})
        scores.append(score(rec, steps))
    matched = sum(s.matched for s in scores)
    assert sum(s.n_contacts for s in scores) > 100  # enough contacts for the figures to mean much
    assert pooled_recall(scores) >= MIN_RECALL
    assert matched / sum(s.n_detected for s in scores) >= MIN_PRECISION
    gct_errors_ms = np.concatenate([s.gct_errors_ms for s in scores])
    assert abs(gct_errors_ms.mean()) <= MAX_GCT_BIAS_MS
    assert np.abs(gct_errors_ms).mean() <= MAX_GCT_MAE_MS


@pytest.mark.shared
@pytest.mark.parametrize("seed", [0, 1])
def test_same_steps_whatever_the_blocks(
    seed: int,
    bach_running: list[Recording],
    alcantara_running: list[Recording],
    whole: dict[str, list[StepEvent]],
) -> None:
    rng = np.random.default_rng(seed)
    for rec in bach_running + alcantara_running:
        bounds = random_bounds(rng, len(rec.t_s), max_block=50, empty_fraction=0.0)
        assert detect_one(rec, bounds=bounds) == whole[rec.name], rec.name


@pytest.mark.shared
@pytest.mark.parametrize("fixture", ["bach_running", "alcantara_running"])
def test_empty_blocks_are_legal(
    fixture: str, whole: dict[str, list[StepEvent]], request: pytest.FixtureRequest
) -> None:
    """Empty blocks, the very first one included, change nothing (house rule: they are legal)."""
    rec: Recording = request.getfixturevalue(fixture)[0]
    rng = np.random.default_rng(5)
    bounds = random_bounds(rng, len(rec.t_s), max_block=50, empty_fraction=0.2)
    assert detect_one(rec, bounds=[0, 0, *bounds[1:]]) == whole[rec.name]


@pytest.mark.shared
def test_orientation_free_on_real_shank_data(
    bach_running: list[Recording], whole: dict[str, list[StepEvent]]
) -> None:
    rng = np.random.default_rng(11)
    for name, transform in [
        ("every axis flipped", -np.eye(3)),
        ("upside down", UPSIDE_DOWN),
        ("random rotation", random_rotation(rng)),
        ("random rotation, upside down", random_rotation(rng) @ UPSIDE_DOWN),
    ]:
        scores = []
        for rec in bach_running:
            steps = detect_one(rec, acc_g=rec.acc_g @ transform.T)
            reference = whole[rec.name]
            assert len(steps) == len(reference), (name, rec.name)
            ic_shift_s = np.array([s.ic_s for s in steps]) - [s.ic_s for s in reference]
            assert np.abs(ic_shift_s).max() <= 1e-3, (name, rec.name)
            scores.append(score(rec, steps))
        assert pooled_recall(scores) >= MIN_RECALL, name


@pytest.mark.shared
@pytest.mark.parametrize("hole_s", [0.5, 0.12])
def test_no_step_across_a_hole_in_the_data(hole_s: float, bach_running: list[Recording]) -> None:
    """A hole opening mid-stance: the impact before it and the toe-off after it never pair up."""
    rec = max(bach_running, key=lambda r: len(r.t_s))
    n = len(rec.t_s)
    true_ic_s = rec.contacts_s[len(rec.contacts_s) // 2, 0]
    start = int(np.searchsorted(rec.t_s, true_ic_s + 0.06))  # just after the impact peak
    lost = round(hole_s * rec.fs_hz)
    keep = np.r_[0:start, start + lost : n]
    before_s, after_s = float(rec.t_s[start - 1]), float(rec.t_s[start + lost])
    steps = detect(rec.placement, rec.fs_hz, rec.t_s[keep][None], rec.acc_g[keep][None])[0]
    for s in steps:  # [ic, to] never overlaps the hole (before_s, after_s)
        assert s.to_s <= before_s or s.ic_s >= after_s, s
    # Away from the hole, every contact is still found.
    result = score(rec, steps, (Gap(before_s, after_s, lost),))
    assert result.n_contacts >= 25
    assert result.matched == result.n_contacts == result.n_detected


@pytest.mark.shared
def test_bank_equals_single_stream_detectors(bach_running: list[Recording]) -> None:
    rec = bach_running[0]
    rng = np.random.default_rng(2)
    rotations = [np.eye(3), UPSIDE_DOWN, random_rotation(rng)]
    acc = np.stack([rec.acc_g @ r.T for r in rotations])
    t = np.tile(rec.t_s, (3, 1))
    singles = [detect_one(rec, acc_g=a) for a in acc]
    assert all(len(s) >= 15 for s in singles)
    assert detect(rec.placement, rec.fs_hz, t, acc) == singles
    bounds = random_bounds(rng, len(rec.t_s), max_block=40, empty_fraction=0.0)
    assert detect(rec.placement, rec.fs_hz, t, acc, bounds) == singles


@pytest.mark.parametrize("fs_hz", [0.0, 10.0, 19.9, 5000.0])
def test_sample_rate_guard(fs_hz: float) -> None:
    with pytest.raises(ValueError, match="sample rate"):
        StepDetector(Placement.SHANK, fs_hz)


def test_stationary_sensor_gives_no_steps() -> None:
    """A sensor lying still (1 g, sensor noise) for 10 s: no contact is invented."""
    rng = np.random.default_rng(0)
    fs_hz, n = 200.0, 2000
    t = (np.arange(n) / fs_hz)[None]
    acc = (random_rotation(rng) @ np.array([0.0, 0.0, 1.0]))[None, None, :] + 0.01 * rng.normal(
        size=(1, n, 3)
    )
    for placement in Placement:
        monitor = QualityMonitor(1, fs_hz)
        detector = StepDetector(placement, fs_hz)
        acc_t = np.moveaxis(acc, 2, 1)
        assert detector.process(t, acc_t, None, monitor.process(t, acc_t)) == [[]]


# --- real runs without contact truth: agreement with the signal's own periodicity -------------

AGREEMENT_WINDOW_S = 10.0
AGREEMENT_SPM = 3.0


def stride_period_s(norm_g: FloatArray, fs_hz: float) -> tuple[float, float]:
    """Dominant autocorrelation peak of ``|a|`` between 0.5 and 1.8 s: (stride period, height)."""
    x = norm_g - norm_g.mean()
    ac = np.correlate(x, x, "full")[len(x) - 1 :]
    ac = ac / ac[0]
    lo, hi = round(0.5 * fs_hz), round(1.8 * fs_hz)
    k = lo + int(np.argmax(ac[lo : hi + 1]))
    height = float(ac[k])
    if lo < k < hi:  # parabolic refinement between samples
        y0, y1, y2 = ac[k - 1], ac[k], ac[k + 1]
        k = k + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    return k / fs_hz, height


def load_real_run(shared_dir: Path, name: str) -> tuple[Recording, float]:
    """One ADEPT recording (no contact truth) and its duration."""
    path = shared_dir / "data" / "real-runs" / "adept2018" / f"{name}.csv"
    if not path.is_file():
        pytest.skip(f"../shared lacks {path.name}")
    (trial,) = find_trials([path])
    samples = trial.samples()
    rec = Recording(
        trial.name,
        Placement.parse(trial.placement),
        trial.sample_rate_hz,
        samples.t_s,
        samples.acc_g,
        np.empty((0, 2)),
    )
    return rec, float(samples.t_s[-1])


@pytest.fixture(scope="module")
def adept(shared_dir: Path) -> dict[str, tuple[Recording, list[StepEvent]]]:
    """The shoe and the hip sensor of one real outdoor run, with their detected steps."""
    out = {}
    for name in ("run_part1_left_ankle", "run_part1_left_hip"):
        rec, _ = load_real_run(shared_dir, name)
        out[rec.placement.value] = (rec, detect_one(rec))
    return out


@pytest.mark.shared
def test_shoe_and_hip_contacts_agree_with_the_stride_periodicity(
    adept: dict[str, tuple[Recording, list[StepEvent]]],
) -> None:
    """A running window: both sensors' periodicity agrees (within 5 spm), is above 135 spm and
    clearly periodic (autocorrelation peak >= 0.6). In it, the contact cadence (mean rate of the
    ICs in the window) must lie within 3 spm of the shoe's periodicity."""
    shoe, shoe_steps = adept["foot"]
    hip, hip_steps = adept["trunk"]
    ok: dict[str, list[bool]] = {"foot": [], "trunk": []}
    for start_s in np.arange(0.0, shoe.t_s[-1] - AGREEMENT_WINDOW_S, AGREEMENT_WINDOW_S):
        periodicity = {}
        for rec in (shoe, hip):
            sel = (rec.t_s >= start_s) & (rec.t_s < start_s + AGREEMENT_WINDOW_S)
            period_s, height = stride_period_s(np.linalg.norm(rec.acc_g[sel], axis=1), rec.fs_hz)
            periodicity[rec.placement.value] = (120.0 / period_s, height)
        (shoe_spm, shoe_h), (hip_spm, hip_h) = periodicity["foot"], periodicity["trunk"]
        if not (min(shoe_spm, hip_spm) > 135 and abs(shoe_spm - hip_spm) < 5):
            continue
        if min(shoe_h, hip_h) < 0.6:
            continue
        for key, steps, per_interval in (("foot", shoe_steps, 2), ("trunk", hip_steps, 1)):
            ic = np.array([s.ic_s for s in steps])
            ic = ic[(ic >= start_s) & (ic < start_s + AGREEMENT_WINDOW_S)]
            spm = per_interval * 60.0 * (len(ic) - 1) / (ic[-1] - ic[0]) if len(ic) > 2 else 0.0
            ok[key].append(abs(spm - shoe_spm) <= AGREEMENT_SPM)
    assert len(ok["foot"]) >= 40  # most of the 10 minutes is running
    assert np.mean(ok["foot"]) >= 0.95  # measured 0.958
    # The hip misses steps in two windows around a walk-to-run change (measured 0.938).
    assert np.mean(ok["trunk"]) >= 0.93


@pytest.mark.shared
def test_real_shoe_steps_do_not_depend_on_the_blocks(
    adept: dict[str, tuple[Recording, list[StepEvent]]],
) -> None:
    shoe, steps = adept["foot"]
    n = round(120 * shoe.fs_hz)  # two minutes are plenty
    part = Recording(
        shoe.name, shoe.placement, shoe.fs_hz, shoe.t_s[:n], shoe.acc_g[:n], shoe.contacts_s
    )
    whole = detect_one(part)
    assert whole == [s for s in steps if s.emitted_s <= part.t_s[-1]]
    rng = np.random.default_rng(3)
    bounds = random_bounds(rng, n, max_block=30, empty_fraction=0.1)
    assert detect_one(part, bounds=bounds) == whole


# --- walking on the shank, and calibration out of sample ----------------------------------------


@pytest.mark.shared
def test_walking_contacts_on_the_shank(running_truth: Path) -> None:
    trials = [t for t in find_trials([running_truth / "bach2022"]) if t.activity == "walking"]
    assert len(trials) == 11
    scores = []
    for trial in trials:
        samples = trial.samples()
        rec = Recording(
            trial.name,
            Placement.SHANK,
            trial.sample_rate_hz,
            samples.t_s,
            samples.acc_g,
            trial.contacts_s,
        )
        steps = detect_one(rec)
        scores.append(score(rec, steps))
        if trial.name.endswith("trial03_walking"):
            # The swing test looks back past the last step: the same steps however cut.
            bounds = random_bounds(np.random.default_rng(5), rec.t_s.size, max_block=40)
            assert detect_one(rec, bounds=bounds) == steps
    # Measured: recall 0.970, precision 0.983 (one walker's late-swing hump, 90-130 ms before
    # force onset and as high as his impact, is taken for the contact on a few strides).
    assert pooled_recall(scores) >= 0.95
    assert sum(s.matched for s in scores) / sum(s.n_detected for s in scores) >= 0.95


@pytest.mark.shared
def test_walking_contacts_out_of_sample(running_truth: Path) -> None:
    """The walking settings chosen on the other walkers, detection scored on the held-out one."""
    folds = walking_folds(running_truth)
    assert len(folds) == 5
    matched = sum(f.matched for f in folds)
    # Measured: recall 0.970, precision 0.983 (the same as in sample).
    assert matched / sum(f.n_contacts for f in folds) >= 0.95
    assert matched / sum(f.n_detected for f in folds) >= 0.95


@pytest.mark.shared
@pytest.mark.parametrize(
    ("dataset", "group", "max_mae_ms"),
    [("bach2022", runner_of, 12.0), ("alcantara2022", alternate_of, 18.0)],
)
def test_contact_time_out_of_sample(
    running_truth: Path, dataset: str, group: Callable[[Trial], str], max_mae_ms: float
) -> None:
    """Lags fitted on some runners (or trials), contact time scored on the others."""
    folds = cross_validate(running_trials(running_truth, dataset), group)
    assert len(folds) >= 2
    errors_ms = np.concatenate([f.gct_errors_ms for f in folds])
    assert errors_ms.size > 100
    assert np.abs(errors_ms).mean() <= max_mae_ms
    # The shipped constants lie within the spread of the fitted ones.
    config = CONFIGS[Placement.parse(running_trials(running_truth, dataset)[0].placement)]
    for f in folds:
        assert abs(f.ic_lag_s - config.ic_lag_s) <= 0.01
        assert abs(f.to_lag_s - config.to_lag_s) <= 0.01


# --- the messy simulator: non-rigid shoes, strike patterns, no gyroscope ------------------------


def simulated_contacts(
    placement: Placement, seed: int, fs_hz: float, spec: str, strike: str | None = None
) -> tuple[list[StepEvent], FloatArray, SampleBlock]:
    """Steps detected on a simulated session with easy and 5K-pace running (a step's
    ``emitted_s`` is the sample that confirmed it, whatever the blocks), the true running
    contacts (IC, TO) of the sensor leg, and the samples."""
    plan = SessionPlan(name="t", warmup_s=40, reps=2, rep_s=20, min_recovery_s=30, cooldown_s=10)
    profile = AthleteProfile.draw(seed)
    if strike is not None:
        profile = dataclasses.replace(profile, strike=strike)
    athlete = SimulatedAthlete(
        plan,
        placement,
        seed=seed,
        fs_hz=fs_hz,
        impairments=Impairments.from_spec(spec),
        profile=profile,
    )
    quality = QualityMonitor(1, fs_hz)
    detector = StepDetector(placement, fs_hz)
    steps: list[StepEvent] = []
    parts = []
    while not athlete.done:
        block = athlete.read(5.0)
        parts.append(block)
        t, acc = block.t_s[None], block.acc_g.T[None]
        gyro = None if block.gyro_dps is None else block.gyro_dps.T[None]
        steps += detector.process(t, acc, gyro, quality.process(t, acc))[0]
    samples = SampleBlock.concat(parts)
    truth = athlete.truth().to_json_dict("t")
    contacts = np.asarray(truth["contacts_s"])
    running = [(a, b) for a, b, kind in truth["activity_s"] if kind == "running"]
    inside = np.array([any(a <= ic < b for a, b in running) for ic in contacts[:, 0]])
    end_s = float(samples.t_s[-1]) - MAX_LATENCY_S
    return steps, contacts[inside & (contacts[:, 0] > 1.0) & (contacts[:, 1] < end_s)], samples


@pytest.mark.parametrize(
    ("spec", "fs_hz", "strike", "seed"),
    [
        # A shoe clip: accelerometer only, 100 Hz, +-8 g (the adept2018 sensor's kind).
        *[("accel-only,saturation=8,noise=0.03", 100.0, strike, 3) for strike in STRIKES],
        ("accel-only,noise=0.02", 200.0, "heel", 4),
        # A footpod with a gyroscope.
        *[("noise=0.02", 200.0, strike, 5) for strike in STRIKES],
        ("saturation=8", 100.0, "heel", 6),
    ],
)
def test_every_simulated_shoe_contact_is_found_and_timed(
    spec: str, fs_hz: float, strike: str, seed: int
) -> None:
    """Recall and precision >= 99.5 % at easy and 5K pace, whatever the strike pattern (a heel
    striker at 5K pace slaps and rolls through the whole contact: no still stance to anchor on),
    every step emitted within 150 ms of its true toe-off, contact time within a few ms."""
    steps, truth, _ = simulated_contacts(Placement.FOOT, seed, fs_hz, spec, strike)
    assert len(truth) > 150
    matched = 0
    gct_errors_ms = []
    for step in steps:
        k = int(np.argmin(np.abs(truth[:, 0] - step.ic_s)))
        if abs(truth[k, 0] - step.ic_s) < 0.06:
            matched += 1
            assert step.emitted_s - truth[k, 1] <= MAX_LATENCY_S
            gct_errors_ms.append(step.gct_ms - 1000.0 * (truth[k, 1] - truth[k, 0]))
    in_span = [s for s in steps if truth[0, 0] - 0.06 < s.ic_s < truth[-1, 0] + 0.06]
    assert matched / len(truth) >= 0.995
    assert matched / len(in_span) >= 0.995
    assert np.mean(np.abs(gct_errors_ms)) <= 10.0


# --- walked recoveries on the simulator ----------------------------------------------------------


def walked_session_score(
    placement: Placement, seed: int, fs_hz: float, spec: str
) -> tuple[float, float, float, int]:
    """Recall (running), recall (walking) and precision over a simulated session whose recoveries
    are walked, and the number of true walking contacts (the sensor leg's, IC within 60 ms)."""
    plan = SessionPlan(name="t", warmup_s=40, reps=2, rep_s=20, min_recovery_s=60, cooldown_s=10)
    athlete = SimulatedAthlete(
        plan,
        placement,
        seed=seed,
        fs_hz=fs_hz,
        impairments=Impairments.from_spec(spec),
        recovery="walk",
    )
    quality = QualityMonitor(1, fs_hz)
    detector = StepDetector(placement, fs_hz)
    steps: list[StepEvent] = []
    t_end_s = 0.0
    while not athlete.done:
        block = athlete.read(5.0)
        t, acc = block.t_s[None], block.acc_g.T[None]
        gyro = None if block.gyro_dps is None else block.gyro_dps.T[None]
        steps += detector.process(t, acc, gyro, quality.process(t, acc))[0]
        t_end_s = float(block.t_s[-1]) if block.t_s.size else t_end_s
    truth = athlete.truth().to_json_dict("t")
    contacts = np.asarray(truth["contacts_s"])
    contacts = contacts[(contacts[:, 0] > 1.0) & (contacts[:, 1] < t_end_s - MAX_LATENCY_S)]
    walks = [(a, b) for a, b, kind in truth["activity_s"] if kind == "walking"]
    walking = np.array([any(a <= ic < b for a, b in walks) for ic in contacts[:, 0]])
    ics = np.array([s.ic_s for s in steps])
    found = np.array([np.min(np.abs(ics - ic)) < 0.06 for ic in contacts[:, 0]])
    in_span = ics[(ics > contacts[0, 0] - 0.06) & (ics < contacts[-1, 0] + 0.06)]
    true_step = [np.min(np.abs(contacts[:, 0] - ic)) < 0.06 for ic in in_span]
    return (
        float(found[~walking].mean()),
        float(found[walking].mean()),
        float(np.mean(true_step)),
        int(walking.sum()),
    )


@pytest.mark.parametrize(
    ("spec", "fs_hz", "seed"),
    [("saturation=8", 100.0, seed) for seed in (1, 2, 3)]
    + [("noise=0.02", 200.0, seed) for seed in (4, 5)],
)
def test_walked_recoveries_on_a_footpod(spec: str, fs_hz: float, seed: int) -> None:
    """A walked contact (0.55-0.7 s, a stance quiet for 0.3 s and more) is found as a running one:
    its stance holds past the running gct_max_s, and the walked swing's pauses of the pitch rate
    (just after toe-off, and before the contact while the foot decelerates at 1.4-2.4 g) are no
    stance. Measured: walking recall, precision and running recall 1.0 on every seed here
    (a longer session, seeds 1-5: walking recall 98.4-100 %, precision 99.7-100 %)."""
    running, walking, precision, n_walking = walked_session_score(Placement.FOOT, seed, fs_hz, spec)
    assert n_walking > 40
    assert running >= 0.995
    assert walking >= 0.98
    assert precision >= 0.99
