"""Session plans: the Neuromuscular Recruitment Run and its neighbour, bursts in an easy run.

Durations follow the source articles: NRR is a 10–15 min warm-up, 6–10 × 30–45 s strides at 5K
pace with 60–90+ s of easy jogging between them, and a 10–15 min cool-down; bursts are 3–6 ×
8–20 s of fast feet inside an easy run, with full recoveries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """A structured session. Every duration is configurable.

    A recovery is FULL when ``min_recovery_s`` has elapsed since the end of the previous rep AND
    cadence has stayed at most ``baseline_tolerance_pct`` above the runner's easy baseline (or
    the runner walked or stood) for ``baseline_hold_s``. The engine then cues ``get_ready``,
    counts down from ``countdown`` one second apart, and cues ``go``. A recovery never waits
    more than ``max_recovery_wait_s`` past its minimum: then the next rep comes all the same, and
    its ``get_ready`` says why.
    """

    name: str
    warmup_s: float
    reps: int
    rep_s: float
    min_recovery_s: float
    cooldown_s: float
    baseline_hold_s: float = 20.0
    baseline_tolerance_pct: float = 5.0
    max_recovery_wait_s: float = 120.0
    get_ready_lead_s: float = 2.0
    countdown: int = 3

    def __post_init__(self) -> None:
        if self.reps < 1:
            raise ValueError(f"a plan needs at least one rep, got reps={self.reps}")
        durations = ("warmup_s", "rep_s", "min_recovery_s", "cooldown_s", "baseline_hold_s")
        for name in (*durations, "max_recovery_wait_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.rep_s <= 0:
            raise ValueError("rep_s must be > 0")

    def with_overrides(self, **changes: Any) -> SessionPlan:
        """A copy with some durations changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def nominal_duration_s(self) -> float:
        """Warm-up + reps + minimum recoveries + cool-down (a real session runs a little longer)."""
        return (
            self.warmup_s
            + self.reps * self.rep_s
            + (self.reps - 1) * self.min_recovery_s
            + self.cooldown_s
        )


TEMPLATES: dict[str, SessionPlan] = {
    "nrr": SessionPlan(
        name="nrr", warmup_s=600.0, reps=8, rep_s=40.0, min_recovery_s=90.0, cooldown_s=600.0
    ),
    "bursts": SessionPlan(
        name="bursts", warmup_s=600.0, reps=4, rep_s=15.0, min_recovery_s=120.0, cooldown_s=600.0
    ),
}


def template(name: str) -> SessionPlan:
    """The named template (``nrr`` or ``bursts``)."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; choose one of {sorted(TEMPLATES)}") from None
