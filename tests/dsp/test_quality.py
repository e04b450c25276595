"""QualityMonitor: gaps from timestamps, segment numbers, saturation plateaus, chunk invariance."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.quality import QualityBlock, QualityMonitor
from tests.dsp.conftest import random_bounds

FloatArray = NDArray[np.float64]
FS_HZ = 100.0


def live_acc(n: int, rng: np.random.Generator) -> FloatArray:
    """(3, n): large, never-repeating values (6 g swings), the opposite of a clipped channel."""
    t = np.arange(n) / FS_HZ
    return np.stack([6.0 * np.sin(2 * np.pi * 1.37 * t + p) for p in (0.0, 1.0, 2.0)]) + (
        1e-3 * rng.normal(size=(3, n))
    )


def feed(
    monitor: QualityMonitor, t: FloatArray, acc: FloatArray, bounds: list[int]
) -> dict[str, Any]:
    """Concatenate the per-block annotations; gap positions made absolute."""
    parts: list[tuple[int, QualityBlock]] = []
    for a, b in itertools.pairwise(bounds):
        q = monitor.process(t[:, a:b], acc[:, :, a:b])
        assert q.segment.shape == q.saturated.shape == (t.shape[0], b - a)
        parts.append((a, q))
    return {
        "segment": np.concatenate([q.segment for _, q in parts], axis=1),
        "saturated": np.concatenate([q.saturated for _, q in parts], axis=1),
        "gaps": sorted(
            (int(r), int(i) + a, float(s), float(e), int(lost))
            for a, q in parts
            for r, i, s, e, lost in zip(
                q.gap_rows, q.gap_index, q.gap_start_s, q.gap_end_s, q.gap_lost, strict=True
            )
        ),
    }


def test_gap_exact_start_end_and_lost_samples() -> None:
    n = 1000
    keep = np.ones(n, dtype=bool)
    keep[300:305] = False  # 5 samples lost in stream 0
    t0 = np.arange(n)[keep] / FS_HZ
    keep1 = np.ones(n, dtype=bool)
    keep1[[100, 101, 600, 601, 602]] = False  # 2 then 3 lost in stream 1
    t1 = np.arange(n)[keep1] / FS_HZ
    m = len(t0)
    t = np.stack([t0, t1])
    acc = np.ones((2, 3, m))
    monitor = QualityMonitor(2, FS_HZ)
    got = feed(monitor, t, acc, [0, m])
    assert got["gaps"] == [
        (0, 300, 2.99, 3.05, 5),
        (1, 100, 0.99, 1.02, 2),
        (1, 598, 5.99, 6.03, 3),
    ]
    assert monitor.gaps.tolist() == [1, 2]
    assert monitor.lost_samples.tolist() == [5, 5]
    assert monitor.samples.tolist() == [m, m]
    # These holes (30-60 ms) cannot hold a whole contact: one segment throughout.
    assert not got["segment"].any()


def test_jitter_below_the_threshold_is_no_gap() -> None:
    rng = np.random.default_rng(3)
    dt = (1.0 + rng.uniform(-0.4, 0.4, size=999)) / FS_HZ
    dt[[200, 500]] = 2.4 / FS_HZ  # late, but within gap_periods = 2.5
    dt[700] = 2.6 / FS_HZ  # beyond: a gap of 2 lost samples (2.6 periods rounds to 3)
    t = np.r_[0.0, np.cumsum(dt)][None]
    monitor = QualityMonitor(1, FS_HZ)
    got = feed(monitor, t, np.ones((1, 3, 1000)), [0, 1000])
    assert [(r, i, lost) for r, i, _, _, lost in got["gaps"]] == [(0, 701, 2)]
    assert not got["segment"].any()  # 13 ms: far too short to split the stream


@pytest.mark.parametrize("plateau", [2, 3, 9])
def test_saturation_plateau_of_k_samples_counts_k_minus_one(plateau: int) -> None:
    rng = np.random.default_rng(plateau)
    n = 400
    acc = live_acc(n, rng)[None]
    acc[0, 2, 100 : 100 + plateau] = 8.0  # clipped at +8 g
    acc[0, 0, 250 : 250 + plateau] = -8.0  # and at -8 g on another axis
    t = (np.arange(n) / FS_HZ)[None]
    monitor = QualityMonitor(1, FS_HZ)
    got = feed(monitor, t, acc, [0, n])
    expected = np.zeros(n, dtype=bool)
    expected[101 : 100 + plateau] = True
    expected[251 : 250 + plateau] = True
    assert np.array_equal(got["saturated"][0], expected)
    assert monitor.saturated_samples.tolist() == [2 * (plateau - 1)]


def test_live_signal_and_still_sensor_count_no_saturation() -> None:
    rng = np.random.default_rng(4)
    n = 500
    still = np.tile(np.array([0.0, 0.0, 1.0])[:, None], n)  # repeats exactly, but at 1 g
    acc = np.stack([live_acc(n, rng), still])
    monitor = QualityMonitor(2, FS_HZ)
    feed(monitor, np.tile(np.arange(n) / FS_HZ, (2, 1)), acc, [0, n])
    assert monitor.saturated_samples.tolist() == [0, 0]


@pytest.mark.parametrize("seed", range(3))
def test_annotations_do_not_depend_on_blocks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1500
    acc = np.stack([live_acc(n, rng) for _ in range(3)])
    t = np.tile(np.arange(n) / FS_HZ, (3, 1))
    for row in range(3):
        # Clipped plateaus and holes at random places, some straddling block boundaries.
        for start in rng.integers(0, n - 10, size=5):
            acc[row, rng.integers(3), start : start + rng.integers(2, 8)] = 8.0
        for start in rng.integers(1, n - 10, size=3):
            t[row, start:] += rng.integers(2, 20) / FS_HZ
    whole_monitor = QualityMonitor(3, FS_HZ)
    whole = feed(whole_monitor, t, acc, [0, n])
    assert len(whole["gaps"]) == 9
    assert whole["saturated"].any()
    for max_block in (1, 13, 200):
        monitor = QualityMonitor(3, FS_HZ)
        got = feed(monitor, t, acc, random_bounds(rng, n, max_block))
        assert got["gaps"] == whole["gaps"]
        assert np.array_equal(got["segment"], whole["segment"])
        assert np.array_equal(got["saturated"], whole["saturated"])
        for counter in ("samples", "saturated_samples", "gaps", "lost_samples"):
            assert np.array_equal(getattr(monitor, counter), getattr(whole_monitor, counter))


def test_segment_steps_up_only_at_gaps_that_could_hold_a_contact() -> None:
    t = np.arange(1000) / FS_HZ
    t[400:] += 0.08  # an 85 ms interval: a gap, but shorter than any contact
    t[700:] += 0.5  # a 505 ms interval: a new segment
    acc = np.zeros((1, 3, t.size))
    acc[0, 2] = 1.0
    got = feed(QualityMonitor(1, FS_HZ), t[None], acc, [0, 350, 1000])
    assert np.array_equal(got["segment"][0], np.r_[np.zeros(700), np.ones(300)])
    assert [g[1] for g in got["gaps"]] == [400, 700]
