"""The rep engine against a synthetic runner whose true rep boundaries are known exactly.

The runner's cadence follows first-order transitions (easy -> stride -> easy); steps come from
integrating it, with seeded timing jitter. In cued tests the runner reacts to the engine's GO and
EASE cues after a fixed reaction time, so the true start and end of every rep are known.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from dsp.events import Activity, Cue, CueKind, Metrics, RepSummary, SignalQuality, StepEvent
from dsp.plan import SessionPlan, template
from dsp.session import Output, Readiness, RepEngine

QUALITY = SignalQuality(samples=0, saturated_samples=0, gaps=0, lost_samples=0)
REACTION_S = 0.5
SHORT_PLAN = SessionPlan(
    name="nrr", warmup_s=120.0, reps=3, rep_s=30.0, min_recovery_s=60.0, cooldown_s=30.0
)


@dataclass
class Runner:
    """Cadence (steps/min, both feet) and contact time following first-order transitions."""

    seed: int
    one_leg: bool
    easy_spm: float = 160.0
    tau_s: float = 0.8
    cv: float = 0.015
    easy_gct_ms: float = 270.0
    # (onset_s, target_spm, target_gct_ms), in time order
    transitions: list[tuple[float, float, float]] = field(default_factory=list)
    grid_s: float = 0.001

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._t_s = 0.0
        self._phase = 0.0  # steps since t = 0
        self._all_ic_s: list[float] = []
        self._all_gct_ms: list[float] = []

    def add(self, onset_s: float, target_spm: float, target_gct_ms: float) -> None:
        assert onset_s >= self._t_s, "a transition cannot change steps already taken"
        self.transitions.append((onset_s, target_spm, target_gct_ms))

    def profile(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cadence and contact time at ``t_s``."""
        cadence = np.full_like(t_s, self.easy_spm)
        gct = np.full_like(t_s, self.easy_gct_ms)
        c_from, g_from = self.easy_spm, self.easy_gct_ms  # values at the current onset
        previous: tuple[float, float, float] | None = None
        for onset_s, c_to, g_to in self.transitions:
            if previous is not None:
                p_onset_s, p_c, p_g = previous
                decay = math.exp(-(onset_s - p_onset_s) / self.tau_s)
                c_from, g_from = p_c + (c_from - p_c) * decay, p_g + (g_from - p_g) * decay
            after = t_s >= onset_s
            decay_t = np.exp(-(t_s[after] - onset_s) / self.tau_s)
            cadence[after] = c_to + (c_from - c_to) * decay_t
            gct[after] = g_to + (g_from - g_to) * decay_t
            previous = (onset_s, c_to, g_to)
        return cadence, gct

    def steps_until(self, end_s: float) -> list[StepEvent]:
        """The sensor's step events with contact in ``[previous end, end_s)``."""
        n = round((end_s - self._t_s) / self.grid_s)
        t = self._t_s + self.grid_s * np.arange(n + 1)
        rate_hz = self.profile(t)[0] / 60.0
        increments = 0.5 * (rate_hz[1:] + rate_hz[:-1]) * self.grid_s
        phase = self._phase + np.concatenate(([0.0], np.cumsum(increments)))
        k = np.arange(math.floor(self._phase) + 1, math.floor(phase[-1]) + 1)
        nominal_s = np.interp(k, phase, t)
        self._t_s, self._phase = float(t[-1]), float(phase[-1])
        c_k, g_k = self.profile(nominal_s)
        # Independent timing jitter: the step-to-step cadence CV is ``cv``.
        ic_s = nominal_s + self._rng.normal(0.0, self.cv / math.sqrt(2) * 60.0 / c_k)
        gct_ms = g_k * (1.0 + 0.02 * self._rng.normal(size=k.size))
        emit_s = ic_s + gct_ms / 1000.0 + self._rng.uniform(0.02, 0.15, size=k.size)
        self._all_ic_s.extend(ic_s.tolist())
        self._all_gct_ms.extend(gct_ms.tolist())
        keep = (k % 2 == 0) if self.one_leg else np.ones(k.size, dtype=bool)
        foot = "left" if self.one_leg else None
        return [
            StepEvent(float(i), float(i + g / 1000.0), float(g), foot, 0.95, float(e))
            for i, g, e in zip(ic_s[keep], gct_ms[keep], emit_s[keep], strict=True)
        ]

    def metrics(self, t_s: float, *, cadence_only: bool) -> Metrics:
        """What a step detector (or a cadence-only footpod) reports at ``t_s``: 6-step medians."""
        n = int(np.searchsorted(self._all_ic_s, t_s, side="right"))
        ic = np.asarray(self._all_ic_s[max(0, n - 7) : n])
        gct = np.asarray(self._all_gct_ms[max(0, n - 6) : n])
        cadence = 60.0 / float(np.median(np.diff(ic))) if ic.size >= 3 else None
        return Metrics(
            t_s=t_s,
            cadence_spm=cadence,
            gct_ms=None if cadence_only or gct.size == 0 else float(np.median(gct)),
            step_count=n,
            intensity_g=None,
            speed_m_s=None,
            quality=QUALITY,
        )


Reaction = Callable[[Cue, Runner], None]


@dataclass
class Run:
    outputs: list[Output]
    events: list[StepEvent | Metrics]
    probes: list[tuple[float, str, float | None]]  # (t_s, state, recovery_remaining_s) per block

    def cues(self, kind: CueKind | None = None) -> list[Cue]:
        return [o for o in self.outputs if isinstance(o, Cue) and kind in (None, o.kind)]

    def at(self, kind: CueKind) -> list[float]:
        """The moments the cues of ``kind`` refer to (the detected boundaries)."""
        moments = [c.at_s for c in self.cues(kind)]
        assert all(m is not None for m in moments)
        return [m for m in moments if m is not None]

    @property
    def summaries(self) -> list[RepSummary]:
        return [o for o in self.outputs if isinstance(o, RepSummary)]


def feed(engine: RepEngine, event: StepEvent | Metrics) -> list[Output]:
    if isinstance(event, StepEvent):
        return engine.advance(event.emitted_s) + engine.on_step(event)
    return engine.advance(event.t_s) + engine.on_metrics(event)


def event_time(event: StepEvent | Metrics) -> float:
    return event.emitted_s if isinstance(event, StepEvent) else event.t_s


def drive(
    engine: RepEngine,
    runner: Runner,
    end_s: float,
    *,
    react: Reaction | None = None,
    steps: bool = True,
    metrics: bool = False,
    cadence_only: bool = False,
    blocks_per_s: int = 10,
) -> Run:
    """Stream the runner into the engine block by block; the runner hears cues as they come."""
    run = Run([], [], [])

    def take(got: list[Output]) -> None:
        run.outputs.extend(got)
        for cue in got:
            if react is not None and isinstance(cue, Cue):
                react(cue, runner)

    take([*engine.start(0.0)])
    pending: list[StepEvent | Metrics] = []
    for i in range(round(end_s * blocks_per_s)):
        t_b = (i + 1) / blocks_per_s
        new = runner.steps_until(t_b)
        if steps:
            pending.extend(new)
        if metrics and (i + 1) % blocks_per_s == 0:
            pending.append(runner.metrics(t_b, cadence_only=cadence_only))
        pending.sort(key=event_time)
        while pending and event_time(pending[0]) <= t_b:
            event = pending.pop(0)
            run.events.append(event)
            take(feed(engine, event))
        take(engine.advance(t_b))
        run.probes.append((t_b, engine.state, engine.recovery_remaining_s))
    take(engine.finish(end_s))
    return run


def open_loop(
    engine: RepEngine,
    runner: Runner,
    end_s: float,
    *,
    steps: bool = True,
    metrics: bool = False,
    cadence_only: bool = False,
) -> Run:
    """A runner who does not listen: the whole stream is generated first, then fed in order."""
    events: list[StepEvent | Metrics] = list(runner.steps_until(end_s)) if steps else []
    if not steps:
        runner.steps_until(end_s)  # a cadence-only footpod still counts the steps inside
    if metrics:
        seconds = np.arange(1.0, math.floor(end_s) + 1.0)
        events += [runner.metrics(float(t), cadence_only=cadence_only) for t in seconds]
    events.sort(key=event_time)
    return Run(replay(engine, events, end_s, np.empty(0)), events, [])


def replay(
    engine: RepEngine, events: list[StepEvent | Metrics], end_s: float, extra_s: np.ndarray
) -> list[Output]:
    """The same events again, with ``advance`` called at extra times in between."""
    out: list[Output] = [*engine.start(0.0)]
    extra = iter(np.sort(extra_s).tolist())
    next_extra = next(extra, math.inf)
    for event in events:
        while next_extra < event_time(event):
            out += engine.advance(next_extra)
            next_extra = next(extra, math.inf)
        out += feed(engine, event)
    return out + engine.finish(end_s)


def follow_cues(
    stride_spm: list[float] | float = 185.0,
    stride_gct_ms: list[float] | float = 200.0,
    easy_spm: float = 160.0,
    easy_gct_ms: float = 270.0,
) -> Reaction:
    """A runner who starts REACTION_S after GO and eases REACTION_S after EASE (per-rep levels)."""

    def react(cue: Cue, runner: Runner) -> None:
        k = (cue.rep or 1) - 1
        if cue.kind is CueKind.GO:
            spm = stride_spm[k] if isinstance(stride_spm, list) else stride_spm
            gct = stride_gct_ms[k] if isinstance(stride_gct_ms, list) else stride_gct_ms
            runner.add(cue.t_s + REACTION_S, spm, gct)
        elif cue.kind is CueKind.EASE:
            runner.add(cue.t_s + REACTION_S, easy_spm, easy_gct_ms)

    return react


def kinds(run: Run) -> list[str]:
    return [o.kind.value if isinstance(o, Cue) else "summary" for o in run.outputs]


# --- cued mode --------------------------------------------------------------------------------


@pytest.mark.parametrize("one_leg", [False, True], ids=["trunk", "one_leg"])
def test_cued_session_cue_sequence_and_timing(one_leg: bool) -> None:
    engine = RepEngine(SHORT_PLAN, one_leg=one_leg)
    run = drive(engine, Runner(seed=1, one_leg=one_leg), 500.0, react=follow_cues())

    rep_cycle = ["get_ready", "countdown", "countdown", "countdown", "go", "rep_start", "ease"]
    rep_cycle += ["rep_end", "summary"]
    assert kinds(run) == rep_cycle * 3 + ["set_done", "session_done"]
    assert engine.state == "done"

    ready, gos = run.cues(CueKind.GET_READY), run.cues(CueKind.GO)
    starts, eases, ends = (
        run.cues(CueKind.REP_START),
        run.cues(CueKind.EASE),
        run.cues(CueKind.REP_END),
    )
    start_at, end_at = run.at(CueKind.REP_START), run.at(CueKind.REP_END)

    assert ready[0].t_s == SHORT_PLAN.warmup_s
    assert ready[0].text == "Rep 1 of 3: get ready"
    assert [(c.text, c.rep, c.reps) for c in gos] == [
        (f"Go! Rep {k} of 3", k, 3) for k in (1, 2, 3)
    ]
    for k in range(3):
        countdown = [c for c in run.cues(CueKind.COUNTDOWN) if c.rep == k + 1]
        assert [c.text for c in countdown] == ["3", "2", "1"]
        lead_s = ready[k].t_s + SHORT_PLAN.get_ready_lead_s
        assert [c.t_s for c in countdown] == [lead_s, lead_s + 1.0, lead_s + 2.0]
        assert gos[k].t_s == lead_s + 3.0
        true_start_s, true_end_s = gos[k].t_s + REACTION_S, eases[k].t_s + REACTION_S
        assert starts[k].text == f"Rep {k + 1} of 3 started"
        assert start_at[k] == pytest.approx(true_start_s, abs=0.5)
        assert starts[k].t_s > start_at[k]
        assert eases[k].t_s == pytest.approx(start_at[k] + SHORT_PLAN.rep_s, abs=1e-9)
        assert end_at[k] == pytest.approx(true_end_s, abs=0.5)
        if k > 0:  # the cadence settled at once, so the minimum recovery decides
            assert ready[k].t_s == pytest.approx(end_at[k - 1] + SHORT_PLAN.min_recovery_s)
    set_done, session_done = run.cues(CueKind.SET_DONE)[0], run.cues(CueKind.SESSION_DONE)[0]
    assert set_done.t_s == ends[-1].t_s and set_done.reason is None
    assert session_done.t_s == pytest.approx(set_done.t_s + SHORT_PLAN.cooldown_s)
    assert session_done.text == "Workout complete"

    # Summaries against the runner's truth: 185 spm, 200 ms plateau, tau 0.8 s, CV 1.5 % per step.
    cv_truth_pct = 1.5 / math.sqrt(2) if one_leg else 1.5  # a stride interval spans two steps
    for k, s in enumerate(run.summaries):
        assert s.rep == k + 1
        assert s.duration_s == pytest.approx(
            eases[k].t_s + REACTION_S - gos[k].t_s - REACTION_S, abs=1.0
        )
        assert s.mean_cadence_spm == pytest.approx(184.0, abs=2.0)  # 185 less the 1 s ramp
        assert s.mean_gct_ms == pytest.approx(203.0, abs=4.0)
        assert s.gct_drift_ms is not None and abs(s.gct_drift_ms) < 6.0  # truth 0, SE ~2 ms
        assert s.cadence_cv_pct == pytest.approx(cv_truth_pct, abs=0.5)
        # 95 % of 185 from 160 is 63 % of the rise: one time constant.
        assert s.time_to_stride_cadence_s == pytest.approx(0.8, abs=0.6)
        assert not s.fatigue_flag


def test_recovery_waits_until_cadence_has_been_near_baseline_for_the_hold() -> None:
    drop_s: list[float] = []

    def react(cue: Cue, runner: Runner) -> None:
        if cue.kind is CueKind.EASE and cue.rep == 1:
            # Jog back at +8 % (outside the 5 % band) for 100 s, longer than the 60 s minimum.
            runner.add(cue.t_s + REACTION_S, 160.0 * 1.08, 270.0)
            drop_s.append(cue.t_s + REACTION_S + 100.0)
            runner.add(drop_s[0], 160.0, 270.0)
        else:
            follow_cues()(cue, runner)

    engine = RepEngine(SHORT_PLAN, one_leg=False)
    run = drive(engine, Runner(seed=2, one_leg=False), 360.0, react=react)
    end_s = run.at(CueKind.REP_END)[0]
    second_ready = run.cues(CueKind.GET_READY)[1]
    assert second_ready.rep == 2
    assert drop_s[0] + SHORT_PLAN.baseline_hold_s <= second_ready.t_s <= drop_s[0] + 23.0

    # The countdown shows the minimum recovery, then 0 while the cadence settles.
    first = [p for p in run.probes if p[0] < second_ready.t_s]
    recovery = [(t, left) for t, state, left in first if state == "recovery"]
    assert recovery[0][0] < end_s + SHORT_PLAN.min_recovery_s < recovery[-1][0]
    for t_s, left_s in recovery:
        expected_s = max(0.0, end_s + SHORT_PLAN.min_recovery_s - t_s)
        assert left_s == pytest.approx(expected_s, abs=1e-9)


def test_a_walked_recovery_is_full_after_the_minimum() -> None:
    """Walking (110 steps/min, far below the easy jog) is recovery, not a cadence to wait out."""

    def react(cue: Cue, runner: Runner) -> None:
        if cue.kind is CueKind.EASE:
            runner.add(cue.t_s + REACTION_S, 110.0, 620.0)
        elif cue.kind is CueKind.GO:
            runner.add(cue.t_s + REACTION_S, 185.0, 200.0)

    engine = RepEngine(SHORT_PLAN, one_leg=True)
    run = drive(engine, Runner(seed=4, one_leg=True), 500.0, react=react)
    ends, ready = run.at(CueKind.REP_END), run.cues(CueKind.GET_READY)
    assert len(ready) == 3
    for end_s, cue in zip(ends[:2], ready[1:], strict=True):
        assert cue.reason is None
        assert end_s + SHORT_PLAN.min_recovery_s <= cue.t_s <= end_s + SHORT_PLAN.min_recovery_s + 1


def test_a_stood_recovery_is_full_after_the_minimum() -> None:
    """Standing still: no cadence at all, the activity says still; that is a full recovery."""
    engine = RepEngine(SHORT_PLAN, one_leg=False)
    runner = Runner(seed=5, one_leg=False)
    out: list[Output] = list(engine.start(0.0))
    still = False
    end_s = math.inf
    for t_b in np.arange(0.1, 400.0, 0.1):
        t = float(round(t_b, 1))
        if not still:
            for step in runner.steps_until(t):
                out += feed(engine, step)
        if t == math.floor(t) and still:
            m = Metrics(t, None, None, 0, None, None, QUALITY, activity=Activity.STILL)
            out += feed(engine, m)
        out += engine.advance(t)
        cues = [o for o in out if isinstance(o, Cue)]
        if cues and cues[-1].kind is CueKind.GO and runner.transitions == []:
            runner.add(cues[-1].t_s + REACTION_S, 185.0, 200.0)
        if cues and cues[-1].kind is CueKind.EASE and not still:
            still = True  # stops dead on "ease" and stands
        if cues and cues[-1].kind is CueKind.REP_END:
            end_s = min(end_s, cues[-1].at_s or math.inf)
        if any(c.kind is CueKind.GET_READY and c.rep == 2 for c in cues):
            break
    second = next(
        o for o in out if isinstance(o, Cue) and o.kind is CueKind.GET_READY and o.rep == 2
    )
    assert second.reason is None
    assert second.t_s <= end_s + SHORT_PLAN.min_recovery_s + SHORT_PLAN.baseline_hold_s


def test_a_brisk_recovery_jog_never_stalls_the_session() -> None:
    """Recovery jogged 10 % above the warm-up: the next rep comes at the longest wait, and says
    why."""

    def react(cue: Cue, runner: Runner) -> None:
        if cue.kind is CueKind.EASE:
            runner.add(cue.t_s + REACTION_S, 176.0, 250.0)
        elif cue.kind is CueKind.GO:
            runner.add(cue.t_s + REACTION_S, 195.0, 200.0)

    engine = RepEngine(SHORT_PLAN, one_leg=False)
    run = drive(engine, Runner(seed=6, one_leg=False), 800.0, react=react)
    ends, ready = run.at(CueKind.REP_END), run.cues(CueKind.GET_READY)
    assert [c.rep for c in ready] == [1, 2, 3]
    wait_s = SHORT_PLAN.min_recovery_s + SHORT_PLAN.max_recovery_wait_s
    for end_s, cue in zip(ends[:2], ready[1:], strict=True):
        assert cue.t_s == pytest.approx(end_s + wait_s)
        assert cue.reason is not None
        # The jog is 176 spm with step jitter: the smoothed figure reads 17x.
        assert re.fullmatch(
            r"recovery time reached; cadence still high \(17\d spm, easy is 160\)", cue.reason
        )
    assert engine.state == "done"


def test_no_rise_after_go_re_arms_the_same_rep() -> None:
    skipped: list[Cue] = []

    def react(cue: Cue, runner: Runner) -> None:
        if cue.kind is CueKind.GO and not skipped:
            skipped.append(cue)  # the runner misses the first GO and keeps jogging
        else:
            follow_cues()(cue, runner)

    engine = RepEngine(SHORT_PLAN.with_overrides(reps=1), one_leg=False)
    run = drive(engine, Runner(seed=3, one_leg=False), 220.0, react=react)
    ready = run.cues(CueKind.GET_READY)
    assert [c.rep for c in ready] == [1, 1]
    assert ready[1].t_s == pytest.approx(skipped[0].t_s + 20.0)  # already near baseline: at once
    assert len(run.summaries) == 1 and run.summaries[0].rep == 1
    assert run.cues(CueKind.REP_START)[0].at_s == pytest.approx(
        run.cues(CueKind.GO)[1].t_s + REACTION_S, abs=0.5
    )


# --- fatigue and readiness --------------------------------------------------------------------

FATIGUE_PLAN = SHORT_PLAN.with_overrides(reps=5, min_recovery_s=40.0)


def test_two_reps_with_longer_contact_stop_the_set_early() -> None:
    react = follow_cues(stride_gct_ms=[200.0, 200.0, 214.0, 214.0, 200.0])  # +7 % on reps 3-4
    engine = RepEngine(FATIGUE_PLAN, one_leg=False)
    run = drive(engine, Runner(seed=4, one_leg=False), 560.0, react=react)
    assert [s.fatigue_flag for s in run.summaries] == [False, False, True, True]
    assert "contact time +" in (run.summaries[2].fatigue_reason or "")
    set_done = run.cues(CueKind.SET_DONE)[0]
    assert set_done.t_s == run.cues(CueKind.REP_END)[3].t_s
    assert set_done.reason is not None and set_done.reason.startswith("contact time +")
    assert set_done.reason.endswith(": stopping the set, cool down")
    assert float(set_done.reason.split("+")[1].split(" %")[0]) == pytest.approx(7.0, abs=1.5)
    assert max(c.rep or 0 for c in run.cues(CueKind.GET_READY)) == 4
    assert run.cues(CueKind.SESSION_DONE)[0].t_s == pytest.approx(set_done.t_s + 30.0)


def test_cadence_sag_is_named_in_the_reason() -> None:
    react = follow_cues(stride_spm=[185.0, 185.0, 178.0, 178.0, 185.0])  # -3.8 % on reps 3-4
    engine = RepEngine(FATIGUE_PLAN, one_leg=True)
    run = drive(engine, Runner(seed=5, one_leg=True), 560.0, react=react)
    assert [s.fatigue_flag for s in run.summaries] == [False, False, True, True]
    reason = run.cues(CueKind.SET_DONE)[0].reason or ""
    assert reason.startswith("cadence -") and "contact" not in reason


def test_single_fatigued_rep_only_flags() -> None:
    react = follow_cues(stride_gct_ms=[200.0, 200.0, 214.0])
    run = drive(
        RepEngine(SHORT_PLAN, one_leg=False), Runner(seed=6, one_leg=False), 500.0, react=react
    )
    assert [s.fatigue_flag for s in run.summaries] == [False, False, True]
    assert run.cues(CueKind.SET_DONE)[0].reason is None  # the last rep: a normal end


def test_readiness_flags_advise_postponing_but_the_session_runs() -> None:
    readiness = Readiness(soreness=True, poor_sleep=True)
    engine = RepEngine(template("nrr"), one_leg=True, readiness=readiness)
    (cue,) = engine.start(5.0)
    assert cue.kind is CueKind.READINESS and cue.t_s == 5.0
    assert cue.text == (
        "Soreness and poor sleep reported: postpone today's strides (NRR) and run easy instead"
    )
    assert cue.reason == "soreness, poor sleep"
    (ready,) = engine.advance(605.0)
    assert isinstance(ready, Cue) and ready.kind is CueKind.GET_READY and ready.t_s == 605.0
    assert RepEngine(template("nrr"), one_leg=True).start(5.0) == []


# --- auto mode --------------------------------------------------------------------------------


def auto_runner(seed: int, one_leg: bool) -> tuple[Runner, list[tuple[float, float]]]:
    """Easy running with 6 reps at random times; returns the runner and the true (start, end)s."""
    rng = np.random.default_rng(100 + seed)
    easy = float(rng.uniform(150.0, 165.0))
    stride = float(rng.uniform(max(175.0, easy + 15.0), 200.0))
    runner = Runner(seed=seed, one_leg=one_leg, easy_spm=easy, tau_s=float(rng.uniform(0.6, 1.0)))
    truth, t_s = [], float(rng.uniform(60.0, 90.0))
    for _ in range(6):
        rep_s = float(rng.uniform(30.0, 45.0))
        runner.add(t_s, stride, 200.0)
        runner.add(t_s + rep_s, easy, 270.0)
        truth.append((t_s, t_s + rep_s))
        t_s += rep_s + float(rng.uniform(60.0, 90.0))
    return runner, truth


def boundary_errors(run: Run, truth: list[tuple[float, float]]) -> np.ndarray:
    found = [(s.start_s, s.end_s) for s in run.summaries]
    assert len(found) == len(truth), f"found {found}, truth {truth}"
    return np.abs(np.asarray(found) - np.asarray(truth))


@pytest.mark.parametrize("one_leg", [False, True], ids=["trunk", "one_leg"])
def test_auto_mode_finds_every_rep_within_a_second(one_leg: bool) -> None:
    errors = []
    for seed in range(3):
        runner, truth = auto_runner(seed, one_leg)
        engine = RepEngine(None, one_leg=one_leg)
        run = open_loop(engine, runner, truth[-1][1] + 60.0)
        errors.append(boundary_errors(run, truth))
        starts, ends = run.cues(CueKind.REP_START), run.cues(CueKind.REP_END)
        assert [c.rep for c in starts] == [c.rep for c in ends] == list(range(1, 7))
        assert all(c.reps is None for c in starts + ends)
        assert [c.at_s for c in starts] == [s.start_s for s in run.summaries]
        assert kinds(run)[-1] == "session_done" and engine.state == "done"
        assert not any(s.fatigue_flag for s in run.summaries)
    err = np.concatenate(errors)
    assert err.max() <= 1.0
    assert np.median(err) <= 0.5


def test_auto_mode_closes_an_open_rep_at_finish() -> None:
    runner = Runner(seed=7, one_leg=False)
    runner.add(80.0, 185.0, 200.0)
    run = open_loop(RepEngine(None, one_leg=False), runner, 100.0)
    assert kinds(run)[-4:] == ["rep_start", "rep_end", "summary", "session_done"]
    assert run.summaries[0].start_s == pytest.approx(80.0, abs=0.5)
    last_contact_s = max(e.ic_s for e in run.events if isinstance(e, StepEvent))
    assert run.summaries[0].end_s == last_contact_s  # the last contact seen before the end


def test_auto_mode_ignores_surges() -> None:
    runner = Runner(seed=8, one_leg=False)
    runner.add(80.0, 185.0, 200.0)
    runner.add(90.0, 160.0, 270.0)  # a 10 s surge at stride pace, as real runs hold: not a rep
    runner.add(150.0, 185.0, 200.0)
    runner.add(180.0, 160.0, 270.0)
    run = open_loop(RepEngine(None, one_leg=False), runner, 220.0)
    assert len(run.summaries) == 1
    assert run.summaries[0].start_s == pytest.approx(150.0, abs=0.5)


# --- cadence-only input -----------------------------------------------------------------------

CADENCE_ONLY_TOLERANCE_S = 2.0  # 1 Hz readings smoothed over ~6 steps: coarser than step events


def test_cadence_only_cued_session() -> None:
    engine = RepEngine(SHORT_PLAN.with_overrides(reps=2), one_leg=False)
    runner = Runner(seed=9, one_leg=False)
    run = drive(
        engine, runner, 400.0, react=follow_cues(), steps=False, metrics=True, cadence_only=True
    )
    assert kinds(run)[:7] == [
        "get_ready",
        "countdown",
        "countdown",
        "countdown",
        "go",
        "rep_start",
        "ease",
    ]
    gos, starts = run.cues(CueKind.GO), run.cues(CueKind.REP_START)
    eases, ends = run.cues(CueKind.EASE), run.cues(CueKind.REP_END)
    start_at, end_at = run.at(CueKind.REP_START), run.at(CueKind.REP_END)
    assert len(starts) == len(ends) == 2
    for k in range(2):
        assert start_at[k] == pytest.approx(gos[k].t_s + REACTION_S, abs=CADENCE_ONLY_TOLERANCE_S)
        assert eases[k].t_s == pytest.approx(start_at[k] + SHORT_PLAN.rep_s, abs=1e-9)
        assert end_at[k] == pytest.approx(eases[k].t_s + REACTION_S, abs=CADENCE_ONLY_TOLERANCE_S)
    assert all(s.mean_gct_ms is None and s.gct_drift_ms is None for s in run.summaries)
    assert run.summaries[0].mean_cadence_spm == pytest.approx(185.0, abs=4.0)


def test_cadence_only_auto_mode() -> None:
    errors = []
    for seed in range(2):
        runner, truth = auto_runner(seed, one_leg=False)
        run = open_loop(
            RepEngine(None, one_leg=False),
            runner,
            truth[-1][1] + 60.0,
            steps=False,
            metrics=True,
            cadence_only=True,
        )
        errors.append(boundary_errors(run, truth))
    assert np.concatenate(errors).max() <= CADENCE_ONLY_TOLERANCE_S


def test_metrics_do_not_override_step_events() -> None:
    runner, truth = auto_runner(0, one_leg=False)
    both = open_loop(RepEngine(None, one_leg=False), runner, truth[-1][1] + 60.0, metrics=True)
    assert boundary_errors(both, truth).max() <= 1.0


# --- streaming properties ---------------------------------------------------------------------


@pytest.mark.parametrize("plan", [SHORT_PLAN, None], ids=["cued", "auto"])
def test_chunk_invariance_and_reset(plan: SessionPlan | None) -> None:
    engine = RepEngine(plan, one_leg=False)
    if plan is None:
        runner, truth = auto_runner(1, one_leg=False)
        end_s = truth[-1][1] + 60.0
        run = open_loop(engine, runner, end_s, metrics=True)
    else:
        end_s = 500.0
        run = drive(
            engine, Runner(seed=10, one_leg=False), end_s, react=follow_cues(), metrics=True
        )
    assert len(run.summaries) >= 3
    rng = np.random.default_rng(11)
    for extra_s in (np.empty(0), rng.uniform(0.0, end_s, 3000), rng.uniform(0.0, end_s, 50)):
        engine.reset()
        assert replay(engine, run.events, end_s, extra_s) == run.outputs


def test_memory_stays_flat_over_two_hours() -> None:
    runner = Runner(seed=12, one_leg=False, grid_s=0.005)
    truth = []
    for k in range(40):  # a rep every 3 minutes for two hours
        start_s = 120.0 + 180.0 * k
        runner.add(start_s, 185.0, 200.0)
        runner.add(start_s + 30.0, 160.0, 270.0)
        truth.append((start_s, start_s + 30.0))
    engine = RepEngine(None, one_leg=False)
    events = runner.steps_until(7200.0)
    out = replay(engine, list(events), 7200.0, np.empty(0))
    history = engine.detector.history
    assert len(history) == history.capacity <= 800  # ~3 min of steps, never the session
    found = [(o.start_s, o.end_s) for o in out if isinstance(o, RepSummary)]
    assert len(found) == 40
    assert np.abs(np.asarray(found) - np.asarray(truth)).max() <= 1.0
