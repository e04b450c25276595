"""The streaming engine on real recordings: event order and content, gaps, banks, cadence input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dsp.engine import AthleteConfig, EngineBank, StrideEngine
from dsp.events import Event, Gap, Metrics, Placement, StepEvent
from dsp.plan import SessionPlan
from dsp.samples import CadenceReading, SampleBlock
from firmware_sim.impair import Impairments
from firmware_sim.runner import SimulatedAthlete
from tests.dsp.conftest import Recording, detect_one, random_bounds


def run(
    rec: Recording,
    bounds: list[int] | None = None,
    t_s: np.ndarray | None = None,
    acc_g: np.ndarray | None = None,
) -> list[Event]:
    """Every event of one engine in auto mode, ``finish()`` included."""
    t = rec.t_s if t_s is None else t_s
    acc = rec.acc_g if acc_g is None else acc_g
    bounds = [0, len(t)] if bounds is None else bounds
    engine = StrideEngine(rec.placement, rec.fs_hz)
    events: list[Event] = []
    for a, b in itertools.pairwise(bounds):
        events += engine.process(SampleBlock(t[a:b], acc[a:b]))
    return events + engine.finish()


@pytest.fixture(scope="module")
def two_trials(
    bach_running: list[Recording], alcantara_running: list[Recording]
) -> list[Recording]:
    """The longest shank trial and a trunk trial."""
    return [max(bach_running, key=lambda r: len(r.t_s)), alcantara_running[0]]


@pytest.fixture(scope="module")
def whole_events(two_trials: list[Recording]) -> dict[str, list[Event]]:
    return {rec.name: run(rec) for rec in two_trials}


@pytest.mark.shared
def test_metrics_every_stream_second_and_steps_as_detected(
    two_trials: list[Recording], whole_events: dict[str, list[Event]]
) -> None:
    for rec in two_trials:
        events = whole_events[rec.name]
        metrics = [e for e in events if isinstance(e, Metrics)]
        steps = [e for e in events if isinstance(e, StepEvent)]
        # One metric per stream second: t = 1, 2, ... up to the last sample.
        assert [m.t_s for m in metrics] == [float(k) for k in range(1, math.floor(rec.t_s[-1]) + 1)]
        # The engine emits exactly the detector's steps, in order.
        assert steps == detect_one(rec)
        # Each metric counts the steps before it (two per contact for a one-leg sensor) and the
        # samples before its second.
        per_contact = 2 if rec.placement.one_leg else 1
        seen = 0
        for e in events:
            if isinstance(e, StepEvent):
                seen += 1
            elif isinstance(e, Metrics):
                assert e.step_count == per_contact * seen
                assert e.quality.samples == int(np.searchsorted(rec.t_s, e.t_s, side="left"))
                assert (e.quality.gaps, e.quality.lost_samples) == (0, 0)
        counts = [m.step_count for m in metrics]
        assert counts == sorted(counts)
        assert counts[-1] > counts[0]
        # Running cadence: the last metric is fresh and near the cadence of the true contacts.
        true_ics = rec.contacts_s[:, 0]
        true_spm = (120.0 if rec.placement.one_leg else 60.0) / np.median(np.diff(true_ics))
        assert metrics[-1].cadence_spm == pytest.approx(true_spm, rel=0.03)
        assert metrics[-1].gct_ms is not None


@pytest.mark.shared
@pytest.mark.parametrize("seed", [0, 1])
def test_events_do_not_depend_on_blocks(
    seed: int, two_trials: list[Recording], whole_events: dict[str, list[Event]]
) -> None:
    rng = np.random.default_rng(seed)
    for rec in two_trials:
        for max_block in (1, 37, 400):
            bounds = random_bounds(rng, len(rec.t_s), max_block)
            assert run(rec, bounds) == whole_events[rec.name], (rec.name, max_block)


@pytest.mark.shared
def test_gap_event_and_quality_counters(two_trials: list[Recording]) -> None:
    rec = two_trials[0]
    n = len(rec.t_s)
    start, lost = n // 2, round(0.5 * rec.fs_hz)
    keep = np.r_[0:start, start + lost : n]
    events = run(rec, t_s=rec.t_s[keep], acc_g=rec.acc_g[keep])
    gaps = [e for e in events if isinstance(e, Gap)]
    assert gaps == [Gap(float(rec.t_s[start - 1]), float(rec.t_s[start + lost]), lost)]
    at = events.index(gaps[0])
    before = [e for e in events[:at] if isinstance(e, Metrics)]
    after = [e for e in events[at:] if isinstance(e, Metrics)]
    assert before
    assert after
    assert all((m.quality.gaps, m.quality.lost_samples) == (0, 0) for m in before)
    assert all((m.quality.gaps, m.quality.lost_samples) == (1, lost) for m in after)
    t_kept = rec.t_s[keep]
    assert all(m.quality.samples == np.searchsorted(t_kept, m.t_s) for m in after)
    # Cadence intervals restart after the hole: no interval spans it.
    first_after = next(e for e in events[at:] if isinstance(e, Metrics))
    steps_after = [e for e in events[at:] if isinstance(e, StepEvent)]
    assert sum(s.emitted_s < first_after.t_s for s in steps_after) < 2
    assert first_after.cadence_spm is None


@pytest.mark.shared
def test_saturation_counted_in_metrics(two_trials: list[Recording]) -> None:
    """Bach's shank sensor clips at ±8 g: the final count matches the plateau rule."""
    rec = two_trials[0]
    events = run(rec)
    last = [e for e in events if isinstance(e, Metrics)][-1]
    acc = rec.acc_g[: last.quality.samples]
    repeats = (np.diff(acc, axis=0) == 0) & (np.abs(acc[1:]) >= 4.0)
    assert last.quality.saturated_samples == int(repeats.any(axis=1).sum()) > 0


@pytest.mark.shared
def test_bank_equals_single_engines(alcantara_running: list[Recording]) -> None:
    trio = alcantara_running[:3]
    n = min(len(r.t_s) for r in trio)
    assert all(np.array_equal(r.t_s[:n], trio[0].t_s[:n]) for r in trio)
    trimmed = [
        Recording(r.name, r.placement, r.fs_hz, r.t_s[:n], r.acc_g[:n], r.contacts_s) for r in trio
    ]
    t = np.stack([r.t_s for r in trimmed])
    acc = np.stack([r.acc_g for r in trimmed])
    rng = np.random.default_rng(4)
    bounds = random_bounds(rng, n, 60)
    bank = EngineBank(Placement.TRUNK, trio[0].fs_hz, [AthleteConfig()] * 3)
    got: list[list[Event]] = [[] for _ in trio]
    for a, b in itertools.pairwise(bounds):
        for row, events in enumerate(bank.process(t[:, a:b], acc[:, a:b])):
            got[row] += events
    for row, events in enumerate(bank.finish()):
        got[row] += events
    singles = [run(r) for r in trimmed]
    assert all(sum(isinstance(e, StepEvent) for e in s) >= 8 for s in singles)
    assert got == singles


def test_cadence_only_engine() -> None:
    engine = StrideEngine(Placement.FOOT, None)
    events: list[Event] = []
    for k in range(30):  # an RSC footpod: 1 Hz readings at 170 steps/min, 3.5 m/s
        events += engine.process_cadence(CadenceReading(k + 0.5, 170.0, 3.5))
    events += engine.finish()
    metrics = [e for e in events if isinstance(e, Metrics)]
    assert [m.t_s for m in metrics] == [float(k) for k in range(1, 30)]
    assert all(m.cadence_spm == 170.0 and m.speed_m_s == 3.5 for m in metrics)
    assert all(m.gct_ms is None and m.intensity_g is None for m in metrics)
    # At second T the readings up to T - 0.5 have come in: 170 steps/min for T - 1 seconds
    # (to the step: the exact count is the tracker's test).
    counts = np.array([m.step_count for m in metrics])
    assert np.abs(counts - 170.0 * np.arange(29) / 60.0).max() <= 1.0
    assert not any(isinstance(e, StepEvent) for e in events)
    with pytest.raises(ValueError, match="process_cadence"):
        engine.process(SampleBlock.empty())
    with pytest.raises(ValueError, match="fs_hz=None"):
        StrideEngine(Placement.FOOT, 100.0).process_cadence(CadenceReading(0.0, 170.0))


@pytest.mark.parametrize("with_gyro", [True, False], ids=["gyro", "accelerometer-only"])
def test_foot_events_do_not_depend_on_block_boundaries(with_gyro: bool) -> None:
    # The real recordings are shank and sacrum: the foot path is checked on the simulator,
    # with impairments that exercise gaps, jitter and clipping.
    plan = SessionPlan(name="t", warmup_s=60, reps=1, rep_s=15, min_recovery_s=30, cooldown_s=15)
    athlete = SimulatedAthlete(
        plan,
        Placement.FOOT,
        seed=4,
        impairments=Impairments.from_spec("noise=0.03,jitter=1,drop=0.005,saturation=8"),
    )
    parts = []
    while not athlete.done:
        parts.append(athlete.read(5.0))
    block = SampleBlock.concat(parts)
    if not with_gyro:
        block = SampleBlock(block.t_s, block.acc_g)

    def run(bounds: list[int]) -> list[Event]:
        engine = StrideEngine(Placement.FOOT, 200.0, plan=plan)
        events: list[Event] = []
        for a, b in itertools.pairwise(bounds):
            events += engine.process(block.slice(a, b))
        return events + engine.finish()

    whole = run([0, len(block)])
    assert sum(isinstance(e, StepEvent) for e in whole) > 100
    assert any(isinstance(e, Gap) for e in whole)
    rng = np.random.default_rng(9)
    assert run(random_bounds(rng, len(block), 40)) == whole
    assert run(random_bounds(rng, len(block), 3)) == whole


@pytest.mark.parametrize("placement", list(Placement), ids=lambda p: p.value)
def test_every_step_is_emitted_within_150_ms_of_its_true_toe_off(placement: Placement) -> None:
    plan = SessionPlan(name="t", warmup_s=60, reps=1, rep_s=20, min_recovery_s=30, cooldown_s=15)
    athlete = SimulatedAthlete(plan, placement, seed=2)
    engine = StrideEngine(placement, 200.0)
    steps: list[StepEvent] = []
    while not athlete.done:  # live-sized blocks of 20 ms
        steps += [e for e in engine.process(athlete.read(0.02)) if isinstance(e, StepEvent)]
    truth = np.asarray(athlete.truth().to_json_dict("t")["contacts_s"])
    for step in steps:
        k = int(np.argmin(np.abs(truth[:, 0] - step.ic_s)))
        assert abs(truth[k, 0] - step.ic_s) < 0.06  # a real contact
        assert step.emitted_s - truth[k, 1] <= 0.150
    assert len(steps) >= 0.99 * len(truth[truth[:, 0] > 1.0])
