"""A hole in the stream is one Gap event, however long: no metrics for seconds without samples."""

from __future__ import annotations

import numpy as np

from dsp.engine import StrideEngine
from dsp.events import Gap, Metrics, Placement
from dsp.samples import CadenceReading, SampleBlock


def test_a_clock_jump_of_ten_million_seconds_is_one_gap() -> None:
    """A crafted log's timestamps jump 10^7 s: once a metric per second of it (and gigabytes)."""
    t = np.concatenate([np.arange(0.0, 5.0, 0.01), 1e7 + np.arange(0.0, 5.0, 0.01)])
    acc = np.tile([0.0, 0.0, 1.0], (t.size, 1))
    engine = StrideEngine(Placement.TRUNK, 100.0)
    events = engine.process(SampleBlock(t, acc)) + engine.finish()
    gaps = [e for e in events if isinstance(e, Gap)]
    assert gaps == [Gap(float(t[499]), float(t[500]), gaps[0].lost_samples)]
    seconds = [e.t_s for e in events if isinstance(e, Metrics)]
    # Second 5 holds the last samples before the jump: reported when the next sample comes.
    assert seconds == [1.0, 2.0, 3.0, 4.0, 5.0, 1e7 + 1.0, 1e7 + 2.0, 1e7 + 3.0, 1e7 + 4.0]


def test_gaps_do_not_depend_on_blocks() -> None:
    t = np.concatenate([np.arange(0.0, 5.0, 0.01), 100.0 + np.arange(0.0, 5.0, 0.01)])
    acc = np.tile([0.0, 0.0, 1.0], (t.size, 1))
    whole = StrideEngine(Placement.TRUNK, 100.0).process(SampleBlock(t, acc))
    engine = StrideEngine(Placement.TRUNK, 100.0)
    cut = []
    for a in range(0, t.size, 7):
        cut += engine.process(SampleBlock(t[a : a + 7], acc[a : a + 7]))
    assert cut == whole


def test_cadence_readings_across_a_long_hole() -> None:
    engine = StrideEngine(Placement.FOOT, None)
    events = []
    for t_s in [*np.arange(0.0, 5.0, 1.0), *(1e7 + np.arange(0.0, 5.0, 1.0))]:
        events += engine.process_cadence(CadenceReading(float(t_s), 170.0))
    seconds = [e.t_s for e in events if isinstance(e, Metrics)]
    # The last reading before the hole stays fresh for its stale span, then nothing until after.
    assert seconds == [
        1.0,
        2.0,
        3.0,
        4.0,
        5.0,
        6.0,
        7.0,
        8.0,
        1e7 + 1.0,
        1e7 + 2.0,
        1e7 + 3.0,
        1e7 + 4.0,
    ]
