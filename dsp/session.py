"""The rep engine: the session state machine that cues a stride workout and summarises its reps.

Cued mode follows a ``SessionPlan`` (warm-up, get ready, 3-2-1, go, ease, full recovery, cool-down)
and measures what the runner really did; auto mode (no plan) only segments reps from the data, for
replaying someone's run. Timed cues are deadlines: each fires once the stream reaches it, stamped
with its due time, so the output does not depend on how the stream was cut into blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from dsp.events import Activity, Cue, CueKind, Gap, Metrics, RepSummary, StepEvent
from dsp.plan import SessionPlan
from dsp.rep_detector import Boundary, BoundaryConfig, RepBoundaryDetector
from dsp.reps import FatigueRule, assess_fatigue

Output = Cue | RepSummary

_SESSION_LABELS = {"nrr": "strides (NRR)", "bursts": "bursts"}
_DEFAULT_FATIGUE = FatigueRule()
_DEFAULT_BOUNDARIES = BoundaryConfig()


@dataclass(frozen=True, slots=True)
class Readiness:
    """What the runner reports before the session; any flag means the session should wait.

    An NRR is postponed on soreness, accumulated fatigue, poor sleep or illness: its aim is
    stimulus without fatigue, which a tired runner cannot get.
    """

    soreness: bool = False
    poor_sleep: bool = False
    illness: bool = False
    accumulated_fatigue: bool = False

    @property
    def flags(self) -> list[str]:
        """The reported problems, in words."""
        named = (
            (self.soreness, "soreness"),
            (self.poor_sleep, "poor sleep"),
            (self.illness, "illness"),
            (self.accumulated_fatigue, "accumulated fatigue"),
        )
        return [name for flag, name in named if flag]


def _best_reps(summaries: list[RepSummary]) -> list[RepSummary]:
    """The two shortest-contact and the two highest-cadence reps (the fatigue rule's reference)."""
    timed = [s for s in summaries if s.mean_gct_ms is not None]
    by_gct = sorted(timed, key=lambda s: s.mean_gct_ms or 0.0)[:2]
    paced = [s for s in summaries if s.mean_cadence_spm is not None]
    by_cadence = sorted(paced, key=lambda s: -(s.mean_cadence_spm or 0.0))[:2]
    return list({s.rep: s for s in by_gct + by_cadence}.values())


class RepEngine:
    """Cues and measures the reps of a stride session from step events and per-second metrics.

    Feed everything in stream-time order: ``advance(t_s)`` before each event and at block ends,
    ``on_step`` with each step (its time is ``emitted_s``), ``on_metrics`` once per second.
    Each call returns the cues and rep summaries that became due, in time order.

    Cued mode (``plan`` given). The easy baseline cadence is the median of the last few minutes of
    warm-up steps. At ``warmup_s`` after ``start`` the engine cues GET_READY, then COUNTDOWN
    3-2-1 one second apart from ``get_ready_lead_s`` later, then GO one second after "1". The real
    start is found in the data (a first-order onset fitted to the cadence rise) and cued as
    REP_START (``at_s`` the start, ``t_s`` when confirmed); EASE is due ``rep_s`` after that
    start. If no rise has been confirmed ``no_start_timeout_s`` after GO, the rep did not happen:
    nothing is logged, and GET_READY for the same rep number comes again once the cadence has been
    near baseline for ``baseline_hold_s``. The real end is cued as REP_END with its RepSummary
    (EASE is dropped if the runner eased before it). The recovery is full once ``min_recovery_s``
    has passed since the real end and the cadence has stayed within ``baseline_tolerance_pct`` of
    the baseline for ``baseline_hold_s``; then comes the next GET_READY. After the last rep, or
    after ``FatigueRule.consecutive_reps`` fatigued reps in a row, SET_DONE, and SESSION_DONE after
    ``cooldown_s``. States: warmup, get_ready (through GO until the start is seen), rep, recovery,
    cooldown, done.

    Auto mode (``plan`` is None). Reps are segmented from the data alone (see
    ``dsp.rep_detector.RepBoundaryDetector``): REP_START / REP_END with rising rep numbers and
    ``reps=None``, summaries with fatigue flags, no early stop. States: easy, rep, done.

    Without step events (a cadence-only footpod) the per-second cadence drives everything, with
    coarser boundaries and no contact-time rules.

    Parameters
    ----------
    plan : SessionPlan or None
        The session to cue; ``None`` for auto mode.
    one_leg : bool
        The sensor sees one leg (foot, shank): one step event per stride.
    fatigue : FatigueRule
        When a rep counts as fatigued.
    readiness : Readiness
        Pre-session report; any flag yields a READINESS cue at start advising to postpone.
    boundaries : BoundaryConfig
        Rep boundary detection settings.
    no_start_timeout_s : float
        Cued mode: how long after GO a rep may take to start before it is deemed skipped.
    """

    def __init__(
        self,
        plan: SessionPlan | None,
        *,
        one_leg: bool,
        fatigue: FatigueRule = _DEFAULT_FATIGUE,
        readiness: Readiness = Readiness(),
        boundaries: BoundaryConfig = _DEFAULT_BOUNDARIES,
        no_start_timeout_s: float = 20.0,
    ) -> None:
        self._plan = plan
        self._one_leg = one_leg
        self._fatigue = fatigue
        self._readiness = readiness
        self._boundaries = boundaries
        self._no_start_timeout_s = no_start_timeout_s
        self.reset()

    def reset(self) -> None:
        """Forget everything: back to before ``start``."""
        cfg = self._boundaries
        confirm_s = cfg.cued_confirm_s if self._plan else cfg.auto_confirm_s
        tolerance_pct = self._plan.baseline_tolerance_pct if self._plan else 5.0
        self._detector = RepBoundaryDetector(
            one_leg=self._one_leg,
            config=cfg,
            confirm_start_s=confirm_s,
            tolerance_pct=tolerance_pct,
        )
        self._detector.armed = self._plan is None
        self._state = "warmup" if self._plan else "easy"
        self._started = False
        self._now_s = -math.inf
        self._rep = 0
        self._best_reps: list[RepSummary] = []  # all the fatigue rule needs: memory stays flat
        self._flag_streak = 0
        self._scheduled: list[Cue] = []  # timed cues, sorted by t_s
        self._warmup_end_s = math.inf
        self._go_s: float | None = None
        self._recovery_due_s: float | None = None

    @property
    def state(self) -> str:
        """warmup, get_ready, rep, recovery, cooldown, done (cued); easy, rep, done (auto)."""
        return self._state

    @property
    def rep(self) -> int:
        """The current rep (or the last one); 0 before the first."""
        return self._rep

    @property
    def reps(self) -> int | None:
        """The planned number of reps; ``None`` in auto mode."""
        return self._plan.reps if self._plan else None

    @property
    def recovery_remaining_s(self) -> float | None:
        """Seconds of minimum recovery left (0 while waiting for the cadence to settle)."""
        if self._state != "recovery" or self._recovery_due_s is None:
            return None
        return max(0.0, self._recovery_due_s - self._now_s)

    @property
    def baseline_spm(self) -> float | None:
        """The easy baseline cadence, steps/min, once known."""
        return self._detector.baseline_spm

    @property
    def detector(self) -> RepBoundaryDetector:
        """The boundary detector (its history is bounded: see ``history.capacity``)."""
        return self._detector

    def start(self, t_s: float) -> list[Cue]:
        """Begin the session at the first sample's time; a READINESS cue if any flag is set."""
        if self._started:
            return []
        self._started = True
        self._now_s = t_s
        if self._plan is not None:
            self._warmup_end_s = t_s + self._plan.warmup_s
        flags = self._readiness.flags
        if not flags:
            return []
        label = _SESSION_LABELS.get(self._plan.name, self._plan.name) if self._plan else "hard reps"
        listed = flags[0] if len(flags) == 1 else ", ".join(flags[:-1]) + " and " + flags[-1]
        text = f"{listed.capitalize()} reported: postpone today's {label} and run easy instead"
        return [Cue(t_s, CueKind.READINESS, text, reps=self.reps, reason=", ".join(flags))]

    def advance(self, t_s: float) -> list[Output]:
        """Fire every timed cue due at or before ``t_s``."""
        out: list[Output] = [*self.start(t_s)]
        self._now_s = max(self._now_s, t_s)
        return out + self._run_timers(t_s)

    def on_step(self, step: StepEvent) -> list[Output]:
        """One step event (at its emission time)."""
        out = self.advance(step.emitted_s)
        if self._state == "done":
            return out
        return out + self._on_boundary(self._detector.push_step(step), step.emitted_s)

    def on_gap(self, gap: Gap) -> list[Output]:
        """A hole in the data (at the time of its first sample after it)."""
        out = self.advance(gap.end_s)
        self._detector.push_gap(gap)
        return out

    def on_metrics(self, m: Metrics) -> list[Output]:
        """One per-second metrics record."""
        out = self.advance(m.t_s)
        if self._state == "done":
            return out
        if m.activity is Activity.STILL:
            return out + self._on_boundary(self._detector.push_still(m.t_s), m.t_s)
        return out + self._on_boundary(self._detector.push_metrics(m), m.t_s)

    def finish(self, t_s: float) -> list[Output]:
        """End of stream: close an open rep and cue SESSION_DONE (unless already done)."""
        out = self.advance(t_s)
        if self._state == "done":
            return out
        boundary = self._detector.close(t_s)
        if boundary is not None:
            out += self._rep_end(boundary, final=True)
        self._scheduled.clear()
        self._state = "done"
        return [*out, Cue(t_s, CueKind.SESSION_DONE, "Workout complete", reps=self.reps)]

    # --- timers -------------------------------------------------------------------------------

    def _run_timers(self, t_s: float) -> list[Output]:
        out: list[Output] = []
        while self._state != "done":
            due = self._next_due()
            if due is None or due > t_s:
                break
            out += self._fire(due)
        return out

    def _next_due(self) -> float | None:
        candidates = [self._scheduled[0].t_s] if self._scheduled else []
        if self._state == "warmup":
            candidates.append(self._warmup_end_s)
        elif self._state == "recovery":
            ready = self._ready_due()
            if ready is not None:
                candidates.append(ready)
            if self._recovery_due_s is not None and self._plan is not None:
                candidates.append(self._recovery_due_s + self._plan.max_recovery_wait_s)
        elif self._state == "get_ready" and self._go_s is not None:
            candidates.append(self._go_s + self._no_start_timeout_s)
        return min(candidates, default=None)

    def _ready_due(self) -> float | None:
        """When the recovery becomes full, given the data so far (None: not in sight)."""
        assert self._plan is not None and self._recovery_due_s is not None
        det = self._detector
        if det.near_since_s is None or det.last_emit_s is None:
            return None
        due = max(self._recovery_due_s, det.near_since_s + self._plan.baseline_hold_s)
        # The hold only counts while data keep coming: no samples, no evidence of easy running.
        return due if due - det.last_emit_s <= self._boundaries.max_gap_s else None

    def _fire(self, due_s: float) -> list[Output]:
        if self._scheduled and self._scheduled[0].t_s == due_s:
            cue = self._scheduled.pop(0)
            if cue.kind is CueKind.GO:
                self._go_s = cue.t_s
                self._detector.armed = True
                self._detector.earliest_onset_s = cue.t_s - self._boundaries.anticipation_s
            elif cue.kind is CueKind.SESSION_DONE:
                self._state = "done"
            return [cue]
        if self._state == "warmup":
            return self._get_ready(due_s)
        if self._state == "recovery":
            ready = self._ready_due()
            return self._get_ready(
                due_s, None if ready is not None and ready <= due_s else self._still_high()
            )
        # No rise after GO: the rep did not happen; cue it again after a baseline hold.
        self._detector.disarm()
        self._go_s = None
        self._state, self._recovery_due_s = "recovery", due_s
        return []

    def _still_high(self) -> str:
        """Why the next rep comes though the recovery is not full: the longest wait is over."""
        det = self._detector
        if det.recent_spm is None or det.baseline_spm is None:
            return "recovery time reached; no easy running seen"
        return (
            f"recovery time reached; cadence still high ({det.recent_spm:.0f} spm, "
            f"easy is {det.baseline_spm:.0f})"
        )

    def _get_ready(self, t_s: float, reason: str | None = None) -> list[Output]:
        assert self._plan is not None
        plan = self._plan
        self._detector.adapt_baseline = False  # the warm-up baseline is the reference from now on
        k, n = self._rep + 1, plan.reps
        self._state, self._go_s, self._recovery_due_s = "get_ready", None, None
        first_s = t_s + plan.get_ready_lead_s
        self._scheduled = [
            Cue(first_s + i, CueKind.COUNTDOWN, str(plan.countdown - i), rep=k, reps=n)
            for i in range(plan.countdown)
        ]
        self._scheduled.append(
            Cue(first_s + plan.countdown, CueKind.GO, f"Go! Rep {k} of {n}", rep=k, reps=n)
        )
        text = f"Rep {k} of {n}: get ready"
        return [Cue(t_s, CueKind.GET_READY, text, rep=k, reps=n, reason=reason)]

    # --- boundaries ---------------------------------------------------------------------------

    def _on_boundary(self, boundary: Boundary | None, t_s: float) -> list[Output]:
        if boundary is None:
            return []
        out = self._rep_start(boundary) if boundary.kind == "start" else self._rep_end(boundary)
        return out + self._run_timers(t_s)

    def _rep_start(self, b: Boundary) -> list[Output]:
        self._rep += 1
        self._state = "rep"
        if self._plan is None:
            return [
                Cue(
                    b.t_s, CueKind.REP_START, f"Rep {self._rep} started", rep=self._rep, at_s=b.at_s
                )
            ]
        k, n = self._rep, self._plan.reps
        self._go_s = None
        self._detector.disarm()
        ease_s = max(b.at_s + self._plan.rep_s, b.t_s)
        self._scheduled = [Cue(ease_s, CueKind.EASE, "Ease off: jog easy", rep=k, reps=n)]
        return [
            Cue(b.t_s, CueKind.REP_START, f"Rep {k} of {n} started", rep=k, reps=n, at_s=b.at_s)
        ]

    def _rep_end(self, b: Boundary, *, final: bool = False) -> list[Output]:
        start_s = self._detector.start_s
        summary = self._detector.summary(self._rep, b.at_s if start_s is None else start_s, b.at_s)
        reason = assess_fatigue(
            self._fatigue, self._best_reps, summary.mean_gct_ms, summary.mean_cadence_spm
        )
        if reason is not None:
            summary = replace(summary, fatigue_flag=True, fatigue_reason=reason)
        self._flag_streak = self._flag_streak + 1 if reason else 0
        self._best_reps = _best_reps([*self._best_reps, summary])
        k, n = self._rep, self.reps
        out: list[Output] = [
            Cue(b.t_s, CueKind.REP_END, f"Rep {k} done", rep=k, reps=n, at_s=b.at_s),
            summary,
        ]
        if self._plan is None:
            self._state = "easy"
            return out
        self._scheduled = [c for c in self._scheduled if c.kind is not CueKind.EASE]
        if final:
            return out
        stop_early = self._flag_streak >= self._fatigue.consecutive_reps and k < self._plan.reps
        if k >= self._plan.reps or stop_early:
            why = f"{reason}: stopping the set, cool down" if stop_early else None
            out.append(Cue(b.t_s, CueKind.SET_DONE, "Main set done: cool down", k, n, reason=why))
            self._state = "cooldown"
            done_s = b.t_s + self._plan.cooldown_s
            self._scheduled = [Cue(done_s, CueKind.SESSION_DONE, "Workout complete", reps=n)]
        else:
            self._state = "recovery"
            self._recovery_due_s = b.at_s + self._plan.min_recovery_s
        return out
