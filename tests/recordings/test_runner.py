"""The session runner: sources through the engine, sinks, cues back to the runner, pacing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from dsp.events import Cue, CueKind, Event, Metrics, Placement, RepSummary
from dsp.plan import template
from dsp.samples import CadenceReading, SampleBlock
from dsp.session import Readiness
from firmware_sim.gait import AthleteProfile
from firmware_sim.runner import SimulatedAthlete
from recordings.evaluate import run_trial
from recordings.logfile import LogHeader, LogWriter
from recordings.runner import Pacer, build_engine, run_session
from recordings.sources import Reading, RecordedSource, SimulatedSource
from recordings.trials import Trial, truth_path_for, write_truth

PLAN = template("nrr").with_overrides(
    warmup_s=120.0, reps=3, rep_s=25.0, min_recovery_s=60.0, cooldown_s=40.0
)


@dataclass
class ListSource:
    """Readings from a list; remembers every cue it is told (a source the test can inspect)."""

    readings: Sequence[Reading]
    placement: Placement = Placement.FOOT
    fs_hz: float | None = 200.0
    cues: list[Cue] = field(default_factory=list)

    def __iter__(self) -> Iterator[Reading]:
        yield from self.readings

    def on_cue(self, cue: Cue) -> None:
        self.cues.append(cue)


class Collector:
    """A sink keeping every batch it receives."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


def cues(events: Sequence[Event], kind: CueKind | None = None) -> list[Cue]:
    return [e for e in events if isinstance(e, Cue) and (kind is None or e.kind is kind)]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Trial:
    """A short open-loop session written as a log with its truth (``stridecue simulate``)."""
    path = tmp_path_factory.mktemp("runner") / "run.log"
    source = SimulatedSource(SimulatedAthlete(PLAN, Placement.FOOT, seed=11), block_s=1.0)
    with LogWriter(path, LogHeader("firmware_sim", "foot", 200.0, "2024-05-01T06:30:00Z")) as w:
        for block in source:
            w.write(block)
    truth = source.athlete.truth().to_json_dict(PLAN.name)
    write_truth(truth_path_for(path), truth)
    return Trial("run", truth, path)


def recorded_blocks(trial: Trial, seconds: float) -> list[SampleBlock]:
    """The first ``seconds`` of the recording in 1 s blocks."""
    samples = trial.samples()
    n = int(np.searchsorted(samples.t_s, seconds))
    return [samples.slice(i, min(i + 200, n)) for i in range(0, n, 200)]


# --- sinks and sources ---------------------------------------------------------------------------


def test_recorded_source_feeds_every_event_to_every_sink_once(recorded: Trial) -> None:
    source = RecordedSource.open(recorded.path)
    first, second = Collector(), Collector()
    stats = asyncio.run(run_session(source, build_engine(source, None), [first, second]))
    # The engine's output does not depend on blocking, so the same recording streamed in other
    # blocks is the reference: nothing lost, nothing repeated, nothing reordered.
    reference = run_trial(recorded)
    assert first.events == reference
    assert second.batches == first.batches
    assert stats.events == len(reference)
    assert stats.samples == len(recorded.samples())
    assert stats.stream_s == pytest.approx(float(recorded.samples().t_s[-1]))
    assert len(cues(reference, CueKind.REP_START)) == PLAN.reps


def test_every_cue_goes_back_to_the_source(recorded: Trial) -> None:
    source = ListSource(recorded_blocks(recorded, 200.0))
    sink = Collector()
    asyncio.run(run_session(source, build_engine(source, PLAN), [sink]))
    # Every cue, the end-of-stream batch's included (session_done closes the session).
    heard = cues([e for batch in sink.batches for e in batch])
    assert heard[-1].kind is CueKind.SESSION_DONE
    assert [c.kind for c in heard[:5]] == [
        CueKind.GET_READY,
        CueKind.COUNTDOWN,
        CueKind.COUNTDOWN,
        CueKind.COUNTDOWN,
        CueKind.GO,
    ]
    assert source.cues == heard


def test_simulated_source_closes_the_loop() -> None:
    # Blocks shorter than the reaction delay (0.3-0.8 s): the athlete hears each cue in time.
    athlete = SimulatedAthlete(PLAN, Placement.FOOT, seed=3, closed_loop=True)
    source = SimulatedSource(athlete, block_s=0.2)
    sink = Collector()
    asyncio.run(run_session(source, build_engine(source, PLAN), [sink]))
    events = sink.events
    truth = source.athlete.truth()
    delay_s = source.athlete.profile.reaction_delay_s
    gos = [c.t_s for c in cues(events, CueKind.GO)]
    eases = [c.t_s for c in cues(events, CueKind.EASE)]
    assert len(gos) == len(eases) == len(truth.reps_s) == PLAN.reps
    for go_s, ease_s, (start_s, end_s) in zip(gos, eases, truth.reps_s, strict=True):
        assert go_s < start_s <= go_s + 1.0
        assert start_s == pytest.approx(go_s + delay_s, abs=1e-9)  # the runner heard "go"
        assert end_s == pytest.approx(ease_s + delay_s, abs=1e-9)  # ... and "ease off"
    # The reps the engine then measured are the ones the runner ran.
    summaries = [e for e in events if isinstance(e, RepSummary)]
    assert len(summaries) == PLAN.reps
    for s, (start_s, end_s) in zip(summaries, truth.reps_s, strict=True):
        assert s.start_s == pytest.approx(start_s, abs=1.0)
        assert s.end_s == pytest.approx(end_s, abs=1.0)
    assert [c.kind for c in cues(events)][-2:] == [CueKind.SET_DONE, CueKind.SESSION_DONE]


# --- pacing --------------------------------------------------------------------------------------


def test_pacer_holds_stream_time_to_speed_times_wall_time(recorded: Trial) -> None:
    blocks = recorded_blocks(recorded, 51.0)
    source = ListSource(blocks)
    expected_s = (float(blocks[-1].t_s[-1]) - float(blocks[0].t_s[-1])) / 50.0  # about 1 s
    start = time.monotonic()
    asyncio.run(run_session(source, build_engine(source, None), [], speed=50.0))
    elapsed_s = time.monotonic() - start
    assert elapsed_s >= 0.9 * expected_s  # never faster than asked (no upper bound: busy CI)


@pytest.mark.parametrize("speed", [None, 50.0])
def test_pacer_waits_exactly_what_the_speed_needs(
    recorded: Trial, monkeypatch: pytest.MonkeyPatch, speed: float | None
) -> None:
    # A virtual wall clock that only the runner's waits advance: the waits are exact numbers.
    clock = {"now_s": 1000.0}
    waits: list[float] = []

    async def sleep(delay_s: float) -> None:
        waits.append(delay_s)
        clock["now_s"] += delay_s

    monkeypatch.setattr("recordings.runner.time", SimpleNamespace(monotonic=lambda: clock["now_s"]))
    monkeypatch.setattr("recordings.runner.asyncio", SimpleNamespace(sleep=sleep))
    blocks = recorded_blocks(recorded, 31.0)
    source = ListSource(blocks)
    asyncio.run(run_session(source, build_engine(source, None), [], speed=speed))
    if speed is None:
        assert waits == []
        return
    block_s = np.diff([float(b.t_s[-1]) for b in blocks])
    np.testing.assert_allclose(waits, block_s / speed, rtol=1e-9)
    assert clock["now_s"] - 1000.0 == pytest.approx(
        (float(blocks[-1].t_s[-1]) - float(blocks[0].t_s[-1])) / speed
    )


@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_pacer_refuses_a_speed_that_is_not_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        Pacer(speed)


# --- the session engine through the runner -------------------------------------------------------


def test_a_fatiguing_runner_gets_the_set_stopped_early() -> None:
    plan = PLAN.with_overrides(reps=6)
    profile = AthleteProfile.draw(1, fatiguing=True, fatigue_onset_rep=3)
    athlete = SimulatedAthlete(plan, Placement.FOOT, seed=1, closed_loop=True, profile=profile)
    source = SimulatedSource(athlete, block_s=0.2)
    sink = Collector()
    asyncio.run(run_session(source, build_engine(source, plan), [sink]))
    events = sink.events
    (set_done,) = cues(events, CueKind.SET_DONE)
    assert set_done.rep is not None and set_done.rep < plan.reps
    assert set_done.reason is not None
    assert "contact time" in set_done.reason or "cadence" in set_done.reason
    # Reps 1-2 are the reference; fatigue from rep 3 on, two flagged reps in a row stop the set.
    summaries = [e for e in events if isinstance(e, RepSummary)]
    assert [s.fatigue_flag for s in summaries] == [False, False, True, True]
    assert set_done.rep == len(summaries) == len(cues(events, CueKind.REP_END))
    assert len(athlete.truth().reps_s) == set_done.rep  # the runner stopped striding too
    last = cues(events)[-1]
    assert last.kind is CueKind.SESSION_DONE
    assert last.t_s == pytest.approx(set_done.t_s + plan.cooldown_s)


def test_readiness_flags_advise_postponing_first(recorded: Trial) -> None:
    blocks = recorded_blocks(recorded, 10.0)
    source = ListSource(blocks)
    engine = build_engine(source, PLAN, Readiness(soreness=True, poor_sleep=True))
    sink = Collector()
    asyncio.run(run_session(source, engine, [sink]))
    first = sink.events[0]
    assert isinstance(first, Cue)
    assert first.kind is CueKind.READINESS
    assert first.t_s == float(blocks[0].t_s[0])
    assert "postpone" in first.text.lower()
    assert "soreness" in first.text.lower() and "poor sleep" in first.text
    assert first.reason == "soreness, poor sleep"
    assert source.cues[0] == first  # the runner hears it too
    rested = ListSource(blocks)
    sink = Collector()
    asyncio.run(run_session(rested, build_engine(rested, PLAN, Readiness()), [sink]))
    assert cues(sink.events, CueKind.READINESS) == []


# --- cadence-only input --------------------------------------------------------------------------

EASY_SPM, STRIDE_SPM, TAU_S = 162.0, 188.0, 0.8
CADENCE_REPS_S = np.array([[120.0, 150.0], [240.0, 270.0], [360.0, 390.0]])


def cadence_profile(t_s: np.ndarray) -> np.ndarray:
    """Easy jogging with strides: a first-order response toward each new target."""
    cadence = np.full_like(t_s, EASY_SPM)
    value_spm = EASY_SPM
    changes = [
        (t, STRIDE_SPM if k % 2 == 0 else EASY_SPM) for k, t in enumerate(CADENCE_REPS_S.ravel())
    ]
    for k, (start_s, target_spm) in enumerate(changes):
        stop_s = changes[k + 1][0] if k + 1 < len(changes) else np.inf
        inside = (t_s >= start_s) & (t_s < stop_s)
        cadence[inside] = target_spm + (value_spm - target_spm) * np.exp(
            -(t_s[inside] - start_s) / TAU_S
        )
        value_spm = target_spm + (value_spm - target_spm) * np.exp(-(stop_s - start_s) / TAU_S)
    return cadence


def test_cadence_only_input_drives_auto_mode() -> None:
    rng = np.random.default_rng(5)
    t_s = np.arange(0.0, 450.0, 0.5)  # an RSC footpod's 2 Hz readings
    spm = cadence_profile(t_s) + rng.normal(0.0, 1.0, t_s.size)
    source = ListSource(
        [CadenceReading(float(t), float(c)) for t, c in zip(t_s, spm, strict=True)], fs_hz=None
    )
    sink = Collector()
    asyncio.run(run_session(source, build_engine(source, None), [sink]))
    events = sink.events
    starts = cues(events, CueKind.REP_START)
    ends = cues(events, CueKind.REP_END)
    assert [c.rep for c in starts] == [c.rep for c in ends] == [1, 2, 3]
    # Coarser than with steps (2 Hz, no contacts), still within 1.5 s of the truth.
    found = np.array([[s.at_s, e.at_s] for s, e in zip(starts, ends, strict=True)], dtype=float)
    np.testing.assert_allclose(found, CADENCE_REPS_S, atol=1.5)
    summaries = [e for e in events if isinstance(e, RepSummary)]
    assert [s.mean_cadence_spm for s in summaries] == pytest.approx([STRIDE_SPM] * 3, rel=0.02)
    assert all(s.mean_gct_ms is None for s in summaries)
    metrics = [e for e in events if isinstance(e, Metrics)]
    assert [m.t_s for m in metrics] == [float(t) for t in range(1, 450)]
    assert all(m.gct_ms is None and m.intensity_g is None for m in metrics)
    easy = [m.cadence_spm for m in metrics if 60 <= m.t_s < 110]
    assert easy == pytest.approx([EASY_SPM] * len(easy), abs=3.0)
