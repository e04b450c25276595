"""Rep maths against exact synthetic data: onset fit, ring buffer, rep summary, fatigue rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsp.events import Metrics, RepSummary, SignalQuality, StepEvent
from dsp.rep_detector import BoundaryConfig, RepBoundaryDetector
from dsp.reps import CADENCE, END, FatigueRule, Ring, assess_fatigue, fit_onset, measure_rep

TAU_GRID_S = BoundaryConfig().tau_grid_s


def contacts(c0_spm: float, c1_spm: float, t0_s: float, tau_s: float, span_s: tuple[float, float]):
    """Exact contact times of a runner whose cadence steps from c0 to c1 (first order) at t0."""
    t = np.arange(span_s[0], span_s[1], 1e-4)
    x = np.maximum(t - t0_s, 0.0)
    steps = (c0_spm * (t - span_s[0]) + (c1_spm - c0_spm) * (x + tau_s * np.expm1(-x / tau_s))) / 60
    return np.interp(np.arange(0.0, math.floor(steps[-1]) + 1.0), steps, t)


@pytest.mark.parametrize(
    ("c0", "c1", "tau_s", "every"),
    [
        (160.0, 185.0, 0.8, 1),
        (160.0, 185.0, 0.6, 2),
        (185.0, 160.0, 1.0, 1),
        (150.0, 200.0, 1.0, 2),
    ],
)
def test_fit_onset_recovers_the_true_onset_from_step_intervals(
    c0: float, c1: float, tau_s: float, every: int
) -> None:
    ic_s = contacts(c0, c1, 20.0, tau_s, (10.0, 24.0))[::every]  # every=2: a one-leg sensor
    onset_s = fit_onset(
        ic_s[:-1], ic_s[1:], 60.0 * every / np.diff(ic_s),
        t_lo_s=17.0, t_hi_s=21.5, tau_grid_s=TAU_GRID_S, step_s=0.02,
    )  # fmt: skip
    assert onset_s == pytest.approx(20.0, abs=0.05)


def test_fit_onset_with_jitter_and_point_samples() -> None:
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(20):
        ic_s = contacts(160.0, 185.0, 20.0, 0.8, (10.0, 24.0))
        ic_s = ic_s + rng.normal(0.0, 0.004, ic_s.size)  # 1.5 % step-to-step cadence CV
        onset_s = fit_onset(
            ic_s[:-1], ic_s[1:], 60.0 / np.diff(ic_s),
            t_lo_s=17.0, t_hi_s=21.5, tau_grid_s=TAU_GRID_S, step_s=0.02,
        )  # fmt: skip
        errors.append(onset_s - 20.0)
    assert np.max(np.abs(errors)) < 0.3
    # Point samples (zero-width intervals): the instantaneous cadence at each time.
    t = np.arange(10.0, 24.0, 1.0)
    cadence = 160.0 + 25.0 * -np.expm1(-np.maximum(t - 18.3, 0.0) / 0.8)
    onset_s = fit_onset(t, t, cadence, t_lo_s=15.0, t_hi_s=21.0, tau_grid_s=(0.8,), step_s=0.01)
    assert onset_s == pytest.approx(18.3, abs=0.02)


def test_ring_keeps_the_newest_rows_in_order() -> None:
    ring = Ring(capacity=5, columns=2)
    assert len(ring) == 0 and ring.last(3).shape == (0, 2)
    for i in range(12):
        ring.append((float(i), 10.0 * i))
    assert len(ring) == ring.capacity == 5
    np.testing.assert_array_equal(ring.last(3)[:, 0], [9.0, 10.0, 11.0])
    np.testing.assert_array_equal(ring.since(0, 8.5)[:, 1], [90.0, 100.0, 110.0])
    np.testing.assert_array_equal(ring.last(99)[:, 0], [7.0, 8.0, 9.0, 10.0, 11.0])


def summary(rep: int, gct_ms: float | None, cadence_spm: float) -> RepSummary:
    return RepSummary(rep, 0.0, 30.0, 30.0, cadence_spm, gct_ms, 0.0, 1.0, 1.0, False, None)


def test_fatigue_rule_compares_with_the_best_two_earlier_reps() -> None:
    rule = FatigueRule()
    earlier = [summary(1, 200.0, 186.0), summary(2, 202.0, 184.0), summary(3, 230.0, 170.0)]
    # Best two contacts average 201 ms; best two cadences 185 spm.
    assert assess_fatigue(rule, earlier, 215.07, 185.0) == "contact time +7.0 % vs your best reps"
    assert assess_fatigue(rule, earlier, 211.0, 185.0) is None  # +4.98 %
    assert assess_fatigue(rule, earlier, 201.0, 179.0) == "cadence -3.2 % vs your best reps"
    assert assess_fatigue(rule, earlier, 201.0, 180.0) is None  # -2.7 %
    both = assess_fatigue(rule, earlier, 220.0, 170.0)
    assert both == "contact time +9.5 % vs your best reps; cadence -8.1 % vs your best reps"
    # Two earlier reps are needed; without contact times only the cadence rule applies.
    assert assess_fatigue(rule, earlier[:1], 260.0, 150.0) is None
    no_gct = [summary(1, None, 186.0), summary(2, None, 184.0)]
    assert assess_fatigue(rule, no_gct, None, 179.0) == "cadence -3.2 % vs your best reps"
    strict = FatigueRule(gct_increase_pct=2.0)
    assert assess_fatigue(strict, earlier, 206.0, 185.0) == "contact time +2.5 % vs your best reps"


@pytest.mark.parametrize("kwargs", [{"gct_increase_pct": 0.0}, {"consecutive_reps": 0}])
def test_fatigue_rule_rejects_meaningless_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FatigueRule(**kwargs)  # type: ignore[arg-type]


def rep_samples(ic_s: np.ndarray, gct_ms: np.ndarray) -> np.ndarray:
    """History rows (start, end, cadence, smooth, gct, emit) for a trunk sensor."""
    cadence = 60.0 / np.diff(ic_s)
    return np.column_stack([ic_s[:-1], ic_s[1:], cadence, cadence, gct_ms[1:], ic_s[1:]])


def test_measure_rep_against_exact_truth() -> None:
    ic_s = contacts(160.0, 185.0, 20.0, 0.8, (10.0, 60.0))
    gct_ms = 200.0 + 0.4 * np.maximum(ic_s - 20.0, 0.0)  # contacts lengthen 0.4 ms per second
    s = measure_rep(3, 20.0, 50.0, rep_samples(ic_s, gct_ms))
    assert (s.rep, s.start_s, s.end_s, s.duration_s) == (3, 20.0, 50.0, 30.0)
    inside = (ic_s >= 20.0) & (ic_s <= 50.0)
    steps_per_min = 60.0 * (np.count_nonzero(inside) - 1) / np.ptp(ic_s[inside])
    assert s.mean_cadence_spm == pytest.approx(steps_per_min, rel=0.003)
    # 95 % of 185 spm from 160 is 63.2 % of the rise: one time constant.
    rise_fraction = (0.95 * 185.0 - 160.0) / 25.0
    assert s.time_to_stride_cadence_s == pytest.approx(-0.8 * math.log1p(-rise_fraction), abs=0.1)
    assert s.time_to_stride_cadence_s is not None
    mid_s = 0.5 * (ic_s[:-1] + ic_s[1:])
    plateau = mid_s[(mid_s >= 20.0 + 3.0 * s.time_to_stride_cadence_s) & (mid_s <= 50.0)]
    assert s.gct_drift_ms == pytest.approx(0.4 * (plateau[-1] - plateau[0]), rel=1e-4)
    assert s.mean_gct_ms == pytest.approx(200.0 + 0.4 * 15.0, abs=0.2)
    assert s.cadence_cv_pct < 0.1  # no jitter: the plateau is flat
    assert not s.fatigue_flag and s.fatigue_reason is None


def test_measure_rep_without_contact_times() -> None:
    ic_s = contacts(160.0, 185.0, 20.0, 0.8, (10.0, 60.0))
    s = measure_rep(1, 20.0, 50.0, rep_samples(ic_s, np.full(ic_s.size, np.nan)))
    assert s.mean_gct_ms is None and s.gct_drift_ms is None
    assert s.mean_cadence_spm == pytest.approx(184.3, abs=0.3)


@pytest.mark.parametrize(("hole_s", "complete"), [(1.5, True), (20.0, False)])
def test_a_rep_with_a_hole_is_flagged_not_summarised(hole_s: float, complete: bool) -> None:
    """A 20-s hole in a 30-s rep once read as a +52 spm drift: now its figures are withheld."""
    ic_s = contacts(160.0, 185.0, 20.0, 0.8, (10.0, 60.0))
    rows = rep_samples(ic_s, np.full(ic_s.size, 210.0))
    # No interval spans a hole: the rows whose interval touches it are gone.
    keep = (rows[:, 1] <= 30.0) | (rows[:, 0] >= 30.0 + hole_s)
    s = measure_rep(2, 20.0, 50.0, rows[keep])
    lost = rows[~keep]
    assert s.missing_s == pytest.approx(min(lost[-1, 1], 50.0) - lost[0, 0], abs=1e-3)
    assert s.complete is complete
    figures = (s.mean_cadence_spm, s.mean_gct_ms, s.gct_drift_ms, s.cadence_cv_pct)
    assert all(f is not None for f in figures) if complete else all(f is None for f in figures)


QUALITY = SignalQuality(0, 0, 0, 0)


def metrics(t_s: float, cadence_spm: float) -> Metrics:
    return Metrics(t_s, cadence_spm, None, 0, None, None, QUALITY)


def detector(one_leg: bool = False) -> RepBoundaryDetector:
    return RepBoundaryDetector(
        one_leg=one_leg, config=BoundaryConfig(), confirm_start_s=2.0, tolerance_pct=5.0
    )


def step(ic_s: float) -> StepEvent:
    return StepEvent(ic_s, ic_s + 0.25, 250.0, None, 1.0, ic_s + 0.3)


def test_detector_learns_the_baseline_and_the_easy_hold() -> None:
    det = detector(one_leg=True)
    for ic_s in np.arange(0.0, 40.0, 0.75):  # one leg, 0.75 s strides: 160 steps/min
        det.push_step(step(float(ic_s)))
    assert det.baseline_spm == pytest.approx(160.0)
    # Near baseline from the first contact 20 s (baseline_min_span_s) after the first interval's:
    # that is when the baseline became known.
    assert det.near_since_s == pytest.approx(21.0 + 0.3)
    # A pause longer than max_gap_s restarts the hold: no data, no evidence of easy running.
    det.push_step(step(45.0))  # a 5 s interval is no cadence: dropped
    assert det.history.last(1)[0, END] == pytest.approx(39.75)
    det.push_step(step(45.75))
    assert det.near_since_s == pytest.approx(45.75 + 0.3)


def test_detector_uses_metrics_only_without_steps() -> None:
    det = detector()
    det.push_step(step(0.0))
    det.push_step(step(0.375))
    det.push_metrics(metrics(1.0, 200.0))  # steps are flowing: ignored
    assert len(det.history) == 1
    det.push_metrics(metrics(10.0, 170.0))  # no step for 9 s: the footpod's cadence is used
    assert len(det.history) == 2 and det.history.last(1)[0, CADENCE] == 170.0
    det.push_metrics(metrics(11.0, 20.0))  # outside the plausible range
    assert len(det.history) == 2


def test_detector_history_is_bounded() -> None:
    det = detector()
    for ic_s in np.arange(0.0, 1200.0, 0.3):
        det.push_step(step(float(ic_s)))
    assert len(det.history) == det.history.capacity
    assert det.history.capacity == math.ceil(BoundaryConfig().history_s * 260.0 / 60.0)
