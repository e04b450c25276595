"""SlidingExtremum and RunningMin against brute-force references, whatever the block boundaries."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from dsp.windows import RunningMin, SlidingExtremum

FloatArray = NDArray[np.float64]


def reference(x: FloatArray, back: int, ahead: int, troughs: bool) -> list[tuple[int, int]]:
    """(row, k) of every extremum decidable in ``x`` (S, n), straight from the definition."""
    y = -x if troughs else x
    s, n = y.shape
    padded = np.concatenate([np.full((s, back), -np.inf), y], axis=1)  # before the start: -inf
    hits = []
    for r in range(s):
        for k in range(n - ahead):  # only samples with their full look-ahead
            before = padded[r, k : k + back].max()
            after = y[r, k + 1 : k + ahead + 1].max()
            if y[r, k] > before and y[r, k] >= after:
                hits.append((r, k))
    return hits


def run(picker: SlidingExtremum, x: FloatArray, bounds: list[int]) -> list[tuple[int, int]]:
    """Feed ``x`` in blocks; (row, index) pairs sorted by row, then index."""
    found = []
    for a, b in itertools.pairwise(bounds):
        rows, idx = picker.process(x[:, a:b])
        assert rows.shape == idx.shape
        found += list(zip(rows.tolist(), idx.tolist(), strict=True))
    return sorted(found)


@st.composite
def streams(draw: st.DrawFn) -> tuple[FloatArray, list[int], int, int, bool]:
    """A bank of 1-3 streams (few distinct values: ties and plateaus), cuts, back, ahead, kind."""
    s = draw(st.integers(1, 3))
    n = draw(st.integers(0, 80))
    values = draw(st.lists(st.integers(0, 4), min_size=s * n, max_size=s * n))
    x = np.asarray(values, dtype=float).reshape(s, n)
    cuts = draw(st.lists(st.integers(0, n), max_size=12))
    bounds = [0, *sorted(cuts), n]  # repeated cuts make empty blocks
    back = draw(st.integers(1, 9))
    ahead = draw(st.integers(1, 9))
    return x, bounds, back, ahead, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(streams())
def test_matches_reference_whatever_the_blocks(
    case: tuple[FloatArray, list[int], int, int, bool],
) -> None:
    x, bounds, back, ahead, troughs = case
    expected = reference(x, back, ahead, troughs)
    n = x.shape[1]
    assert run(SlidingExtremum(x.shape[0], back, ahead, troughs=troughs), x, [0, n]) == expected
    assert run(SlidingExtremum(x.shape[0], back, ahead, troughs=troughs), x, bounds) == expected


@pytest.mark.parametrize(("back", "ahead"), [(1, 1), (2, 7), (7, 2), (25, 4), (50, 50)])
@pytest.mark.parametrize("troughs", [False, True])
def test_random_signal_bank_in_one_sample_and_random_blocks(
    back: int, ahead: int, troughs: bool
) -> None:
    rng = np.random.default_rng(back * 100 + ahead)
    x = rng.normal(size=(4, 600)).cumsum(axis=1)  # random walks: extrema of every width
    expected = reference(x, back, ahead, troughs)
    assert len(expected) > 4  # the case exercises something
    cuts = np.sort(rng.integers(0, 600, size=40)).tolist()
    for bounds in ([0, 600], list(range(601)), [0, *cuts, 600]):
        picker = SlidingExtremum(4, back, ahead, troughs=troughs)
        assert run(picker, x, bounds) == expected


def test_decision_waits_exactly_ahead_samples() -> None:
    picker = SlidingExtremum(1, back=3, ahead=2)
    x = np.array([[0.0, 1.0, 5.0, 2.0, 1.0, 0.0]])
    rows, idx = picker.process(x[:, :3])  # the peak at 2 has no look-ahead yet
    assert idx.size == 0
    rows, idx = picker.process(x[:, 3:4])  # one sample of look-ahead: still undecided
    assert idx.size == 0
    rows, idx = picker.process(x[:, 4:5])  # sample 2 + ahead arrived: decided now
    assert rows.tolist() == [0]
    assert idx.tolist() == [2]


def test_plateau_and_refractory_span() -> None:
    # A plateau yields its first sample only (strictly above the past, not below the future);
    # a second, higher peak within `back` samples counts, a lower one does not.
    x = np.array([[0.0, 3.0, 3.0, 3.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0]])
    picker = SlidingExtremum(1, back=5, ahead=2)
    assert run(picker, x, [0, 14]) == [(0, 1), (0, 11)]


def test_reset_restarts_indices_and_history() -> None:
    picker = SlidingExtremum(1, back=4, ahead=1)
    x = np.array([[0.0, 2.0, 0.0, 1.0, 0.0]])
    first = run(picker, x, [0, 5])
    picker.reset()
    assert run(picker, x, [0, 5]) == first == [(0, 1)]


def test_rejects_zero_spans() -> None:
    with pytest.raises(ValueError, match="back and ahead"):
        SlidingExtremum(1, back=0, ahead=1)
    with pytest.raises(ValueError, match="back and ahead"):
        SlidingExtremum(1, back=1, ahead=0)


@settings(max_examples=60, deadline=None)
@given(streams())
def test_running_min_matches_reference_whatever_the_blocks(
    case: tuple[FloatArray, list[int], int, int, bool],
) -> None:
    x, bounds, span, _, _ = case
    s, n = x.shape
    expected = np.array(
        [[x[r, max(0, k - span + 1) : k + 1].min() for k in range(n)] for r in range(s)]
    ).reshape(s, n)
    running = RunningMin(s, span)
    blocks = [running.process(x[:, a:b]) for a, b in itertools.pairwise(bounds)]
    assert all(
        out.shape == (s, b - a)
        for out, (a, b) in zip(blocks, itertools.pairwise(bounds), strict=True)
    )
    assert np.array_equal(np.concatenate(blocks, axis=1), expected)


def test_segments_are_walls_for_the_windows() -> None:
    # A big peak just before a hole must not hide the first, smaller peak after it.
    x = np.full((1, 40), -1.0)
    x[0, 6] = 9.0  # segment 0, confirmed before the hole
    x[0, 14] = 3.0  # segment 1, within `back` (8) samples of the big peak
    segment = np.r_[np.zeros(12, dtype=np.int64), np.ones(28, dtype=np.int64)][None]

    def peaks(found: tuple[NDArray[np.intp], NDArray[np.intp]], signal: FloatArray) -> list[int]:
        return [int(i) for i in found[1] if signal[0, i] > 0]

    assert peaks(SlidingExtremum(1, back=8, ahead=3).process(x, segment), x) == [6, 14]
    assert peaks(SlidingExtremum(1, back=8, ahead=3).process(x), x) == [6]  # without walls
    # A peak whose look-ahead reaches into the next segment is not decided as one.
    y = np.full((1, 40), -1.0)
    y[0, 11] = 5.0
    assert peaks(SlidingExtremum(1, back=8, ahead=3).process(y, segment), y) == []
    # Walls do not depend on the block boundaries.
    picker = SlidingExtremum(1, back=8, ahead=3)
    bounds = [(0, 11), (11, 13), (13, 40)]
    idx = np.concatenate([picker.process(x[:, a:b], segment[:, a:b])[1] for a, b in bounds])
    assert [int(i) for i in idx if x[0, i] > 0] == [6, 14]
