"""Event-based cadence and the per-second metrics tracker, on contacts whose times are exact."""

from __future__ import annotations

import pytest

from dsp.events import Gap, SignalQuality, StepEvent
from dsp.metrics import MetricsTracker, cadence_from_ics
from dsp.samples import CadenceReading

QUALITY = SignalQuality(samples=100, saturated_samples=1, gaps=0, lost_samples=0)


def step(ic_s: float, gct_ms: float = 200.0, impact_g: float | None = 3.0) -> StepEvent:
    return StepEvent(
        ic_s=ic_s,
        to_s=ic_s + gct_ms / 1000.0,
        gct_ms=gct_ms,
        foot=None,
        confidence=1.0,
        emitted_s=ic_s + gct_ms / 1000.0 + 0.1,
        impact_g=impact_g,
    )


@pytest.mark.parametrize(
    ("interval_s", "one_leg", "cadence_spm"),
    [
        (0.75, True, 160.0),  # one leg: a stride of 0.75 s is two steps
        (0.375, False, 160.0),  # trunk: every step
        (0.6, True, 200.0),
        (0.4, False, 150.0),
    ],
)
def test_cadence_from_exact_contacts(interval_s: float, one_leg: bool, cadence_spm: float) -> None:
    ics = [10.0 + k * interval_s for k in range(6)]
    assert cadence_from_ics(ics, one_leg) == pytest.approx(cadence_spm, rel=1e-12)


def test_cadence_needs_two_contacts_and_ignores_one_outlier() -> None:
    assert cadence_from_ics([], one_leg=False) is None
    assert cadence_from_ics([3.0], one_leg=False) is None
    # One missed step doubles one interval; the median of the rest holds.
    assert cadence_from_ics([0.0, 0.4, 0.8, 1.6, 2.0], one_leg=False) == pytest.approx(150.0)


def test_tracker_rolling_cadence_contact_time_and_intensity() -> None:
    tracker = MetricsTracker(one_leg=False, window_steps=5)
    gcts = [300.0, 180.0, 200.0, 220.0, 210.0, 190.0, 205.0]
    impacts = [9.0, 2.0, 2.5, 3.0, 2.5, 2.0, 3.5]
    for k, (gct, impact) in enumerate(zip(gcts, impacts, strict=True)):
        tracker.on_step(step(k * 0.4, gct, impact))
    m = tracker.at(3.0, QUALITY)
    assert m.t_s == 3.0
    assert m.cadence_spm == pytest.approx(150.0)
    assert m.gct_ms == 205.0  # median of the last five contacts: the 300 ms one has left
    assert m.intensity_g == pytest.approx(sum(impacts[-5:]) / 5 - 1.0)
    assert m.step_count == 7
    assert m.speed_m_s is None
    assert m.quality is QUALITY


def test_one_leg_sensor_counts_two_steps_per_contact() -> None:
    tracker = MetricsTracker(one_leg=True)
    for k in range(5):
        tracker.on_step(step(k * 0.7))
    m = tracker.at(3.0, QUALITY)
    assert m.step_count == 10
    assert m.cadence_spm == pytest.approx(120.0 / 0.7)


def test_metrics_go_stale_without_steps() -> None:
    tracker = MetricsTracker(one_leg=False, stale_s=3.0)
    for k in range(6):
        tracker.on_step(step(k * 0.4))  # last contact at 2.0 s
    fresh = tracker.at(5.0, QUALITY)  # exactly stale_s later: still fresh
    assert fresh.cadence_spm == pytest.approx(150.0)
    stale = tracker.at(5.01, QUALITY)
    assert (stale.cadence_spm, stale.gct_ms, stale.intensity_g) == (None, None, None)
    assert stale.step_count == 6  # the count survives


def test_short_gap_keeps_intervals_and_the_median_absorbs_a_missed_contact() -> None:
    tracker = MetricsTracker(one_leg=False)
    for k in range(6):
        tracker.on_step(step(k * 0.4))  # 150 steps/min
    tracker.on_gap(Gap(start_s=2.2, end_s=2.25, lost_samples=9))  # 50 ms: a few packets
    tracker.on_step(step(2.8))  # the contact at 2.4 s was lost in the hole: one doubled interval
    assert tracker.at(3.0, QUALITY).cadence_spm == pytest.approx(150.0)


def test_long_gap_clears_intervals() -> None:
    tracker = MetricsTracker(one_leg=False)
    for k in range(6):
        tracker.on_step(step(k * 0.4))  # 150 steps/min before the gap
    tracker.on_gap(Gap(start_s=2.1, end_s=3.9, lost_samples=359))
    tracker.on_step(step(4.0))
    # One contact since the gap: no interval yet (the one across the hole does not count).
    assert tracker.at(4.5, QUALITY).cadence_spm is None
    tracker.on_step(step(4.3))
    # From the post-gap interval alone: 200 steps/min, nothing of the 150 before.
    assert tracker.at(5.0, QUALITY).cadence_spm == pytest.approx(200.0)
    assert tracker.at(5.0, QUALITY).step_count == 8


def test_cadence_only_readings() -> None:
    tracker = MetricsTracker(one_leg=True, stale_s=3.0)
    for k in range(11):  # 1 Hz readings, 180 steps/min for 10 s
        tracker.on_reading(CadenceReading(t_s=float(k), cadence_spm=180.0, speed_m_s=4.2))
    m = tracker.at(10.5, QUALITY)
    assert m.cadence_spm == 180.0
    assert m.speed_m_s == 4.2
    assert (m.gct_ms, m.intensity_g) == (None, None)
    assert m.step_count == 30  # 180 steps/min for 10 s
    stale = tracker.at(13.5, QUALITY)
    assert (stale.cadence_spm, stale.speed_m_s) == (None, None)
    # A reading after a long silence adds at most stale_s worth of steps.
    tracker.on_reading(CadenceReading(t_s=30.0, cadence_spm=180.0))
    assert tracker.at(30.0, QUALITY).step_count == 39


@pytest.mark.parametrize("cadence_spm", [150.0, 170.0, 190.0])
def test_cadence_only_step_count_is_exact_at_whole_steps(cadence_spm: float) -> None:
    tracker = MetricsTracker(one_leg=False)
    for k in range(61):  # 1 Hz readings for 60 s
        tracker.on_reading(CadenceReading(t_s=float(k), cadence_spm=cadence_spm))
        # cadence_spm · k / 60 steps so far, rounded down only when not a whole number
        assert tracker.at(float(k), QUALITY).step_count == (int(cadence_spm) * k) // 60


def test_reset_forgets_everything() -> None:
    tracker = MetricsTracker(one_leg=False)
    for k in range(4):
        tracker.on_step(step(k * 0.4))
    tracker.reset()
    m = tracker.at(1.5, QUALITY)
    assert (m.cadence_spm, m.gct_ms, m.step_count) == (None, None, 0)
