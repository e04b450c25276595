"""The live terminal view: cadence, contact time, rep state, every cue and the rep table."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dsp.engine import StrideEngine
from dsp.events import Cue, CueKind, Event, Gap, Metrics, RepSummary

_CUE_STYLE = {
    CueKind.GO: "bold green",
    CueKind.EASE: "bold yellow",
    CueKind.SET_DONE: "bold magenta",
    CueKind.SESSION_DONE: "bold magenta",
    CueKind.READINESS: "bold red",
}


def _clock(t_s: float) -> str:
    minutes, seconds = divmod(max(0, int(t_s)), 60)
    return f"{minutes:02d}:{seconds:02d}"


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{unit}"


class LiveView:
    """A sink that keeps the latest state and renders it (pass it to ``rich.live.Live``)."""

    def __init__(self, engine: StrideEngine, title: str, *, cue_lines: int = 8) -> None:
        self.engine = engine
        self.title = title
        self.metrics: Metrics | None = None
        self.cues: deque[Cue] = deque(maxlen=cue_lines)
        self.reps: list[RepSummary] = []
        self.gaps = 0

    def __call__(self, events: Sequence[Event]) -> None:
        for e in events:
            if isinstance(e, Metrics):
                self.metrics = e
            elif isinstance(e, Cue):
                self.cues.append(e)
            elif isinstance(e, RepSummary):
                self.reps.append(e)
            elif isinstance(e, Gap):
                self.gaps += 1

    def _state(self) -> Text:
        reps = self.engine.reps
        state = reps.state
        text = Text(state.replace("_", " "), style="bold")
        if reps.rep:
            text.append(f"   rep {reps.rep}" + (f" of {reps.reps}" if reps.reps else ""))
        remaining = reps.recovery_remaining_s
        if state == "recovery" and remaining is not None:
            text.append(f"   recovery {remaining:4.0f} s", style="cyan")
        return text

    def _now(self) -> Table:
        m = self.metrics
        grid = Table.grid(padding=(0, 3))
        for _ in range(5):
            grid.add_column()
        grid.add_row(
            Text("time", style="dim"),
            Text("cadence", style="dim"),
            Text("contact", style="dim"),
            Text("steps", style="dim"),
            Text("signal", style="dim"),
        )
        if m is None:
            grid.add_row("–", "–", "–", "–", "waiting for data")
            return grid
        q = m.quality
        grid.add_row(
            Text(_clock(m.t_s), style="bold"),
            Text(_fmt(m.cadence_spm, ".0f", " spm"), style="bold green"),
            Text(_fmt(m.gct_ms, ".0f", " ms"), style="bold cyan"),
            str(m.step_count),
            f"{q.gaps} gaps, {q.lost_samples} lost, {q.saturated_samples} clipped",
        )
        return grid

    def _cue_log(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        for cue in self.cues:
            table.add_row(_clock(cue.t_s), Text(cue.text, style=_CUE_STYLE.get(cue.kind, "")))
        return table

    def _rep_table(self) -> Table:
        table = Table(expand=True, box=None, header_style="dim")
        for name in ("rep", "time", "cadence", "contact", "drift", "cad CV", "to stride", "flag"):
            table.add_column(name, justify="right")
        for r in self.reps[-10:]:
            table.add_row(
                str(r.rep),
                f"{r.duration_s:.1f} s",
                _fmt(r.mean_cadence_spm, ".0f", " spm"),
                _fmt(r.mean_gct_ms, ".0f", " ms"),
                _fmt(r.gct_drift_ms, "+.0f", " ms"),
                _fmt(r.cadence_cv_pct, ".1f", " %"),
                _fmt(r.time_to_stride_cadence_s, ".1f", " s"),
                Text(r.fatigue_reason or "", style="red") if r.fatigue_flag else "",
            )
        return table

    def __rich__(self) -> RenderableType:
        return Panel(
            Group(
                self._state(),
                self._now(),
                Panel(self._cue_log(), title="cues", title_align="left"),
                Panel(self._rep_table(), title="reps", title_align="left"),
            ),
            title=self.title,
            title_align="left",
        )
