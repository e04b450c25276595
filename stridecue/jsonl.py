"""Events as JSON objects, one per line, for machines (`replay --json`).

Every object has ``"type"``: ``step``, ``metrics``, ``gap``, ``cue`` or ``rep``; the other keys are
the event's fields, with the units in their names, then the verdicts the engine derives from them
(``trusted`` for metrics, ``complete`` for reps), so that no reader has to recompute them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from enum import Enum
from typing import Any

from dsp.events import Cue, Event, Gap, Metrics, RepSummary, StepEvent

_TYPES: dict[type, str] = {
    StepEvent: "step",
    Metrics: "metrics",
    Gap: "gap",
    Cue: "cue",
    RepSummary: "rep",
}


def _clean(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def event_dict(event: Event) -> dict[str, Any]:
    """``{"type": ..., **fields}``; enums become their values, floats are rounded to 1e-6."""
    out: dict[str, Any] = {"type": _TYPES[type(event)]}
    out.update({k: _clean(v) for k, v in asdict(event).items()})
    if isinstance(event, Metrics):
        out["trusted"] = event.trusted
    elif isinstance(event, RepSummary):
        out["complete"] = event.complete
    return out


def event_line(event: Event) -> str:
    return json.dumps(event_dict(event), separators=(",", ":"))
