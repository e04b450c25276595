"""Events as JSON lines: one object per event, its type, its field names, strict JSON."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsp.events import (
    Activity,
    CadenceSource,
    Cue,
    CueKind,
    Event,
    Gap,
    Metrics,
    RepSummary,
    SignalQuality,
    StepEvent,
)
from stridecue.jsonl import event_dict, event_line

QUALITY = SignalQuality(samples=12000, saturated_samples=3, gaps=1, lost_samples=40)
EVENTS: list[tuple[str, Event]] = [
    ("step", StepEvent(12.345, 12.535, 190.0, "left", 0.875, 12.61, impact_g=6.25)),
    ("step", StepEvent(12.345, 12.535, 190.0, None, 0.5, 12.61)),
    ("metrics", Metrics(13.0, 181.5, 192.25, 42, 2.5, None, QUALITY)),
    (
        "metrics",
        Metrics(
            14.0,
            172.5,
            None,
            45,
            2.5,
            None,
            QUALITY,
            activity=Activity.RUNNING,
            cadence_source=CadenceSource.PERIODICITY,
            cadence_confidence=0.375,
            lost_fraction=0.25,
            clipped_fraction=0.125,
        ),
    ),
    ("gap", Gap(20.125, 20.5, 75)),
    ("cue", Cue(125.0, CueKind.GO, "Go! Rep 1 of 8", rep=1, reps=8)),
    ("cue", Cue(130.23, CueKind.REP_START, "rep 1 of 8", rep=1, reps=8, at_s=126.505)),
    ("cue", Cue(400.0, CueKind.SET_DONE, "Main set done", 4, 8, reason="contact time +9.0 %")),
    ("rep", RepSummary(1, 126.505, 151.5, 24.995, 190.25, 186.5, -2.5, 0.875, 1.25, False, None)),
    ("rep", RepSummary(4, 400.0, 425.0, 25.0, 180.0, None, None, 1.5, None, True, "cadence -5 %")),
    ("rep", RepSummary(5, 500.0, 530.0, 30.0, None, None, None, None, 2.0, False, None, 20.5)),
]


def _reject_constant(name: str) -> Any:
    raise AssertionError(f"not strict JSON: {name}")


def strict_loads(line: str) -> dict[str, Any]:
    """``json.loads`` that refuses NaN and Infinity, which standard JSON does not have."""
    value = json.loads(line, parse_constant=_reject_constant)
    assert isinstance(value, dict)
    return value


# The verdicts each type's line carries after its fields.
DERIVED = {"metrics": ["trusted"], "rep": ["complete"]}


def rebuild(doc: dict[str, Any]) -> Event:
    """The event back from its JSON object: proves every field is there under its own name."""
    kind = doc.pop("type")
    for name in DERIVED.get(kind, []):
        del doc[name]
    if kind == "step":
        return StepEvent(**doc)
    if kind == "metrics":
        return Metrics(
            **{
                **doc,
                "quality": SignalQuality(**doc["quality"]),
                "activity": None if doc["activity"] is None else Activity(doc["activity"]),
                "cadence_source": (
                    None if doc["cadence_source"] is None else CadenceSource(doc["cadence_source"])
                ),
            }
        )
    if kind == "gap":
        return Gap(**doc)
    if kind == "cue":
        return Cue(**{**doc, "kind": CueKind(doc["kind"])})
    assert kind == "rep"
    return RepSummary(**doc)


@pytest.mark.parametrize(("kind", "event"), EVENTS)
def test_every_event_type_round_trips(kind: str, event: Event) -> None:
    line = event_line(event)
    assert "\n" not in line
    doc = strict_loads(line)
    assert doc["type"] == kind
    assert list(doc)[1:] == [f.name for f in fields(event)] + DERIVED.get(kind, [])
    for name in DERIVED.get(kind, []):
        assert doc[name] is getattr(event, name)
    assert rebuild(doc) == event


def test_the_lines_say_what_can_be_trusted() -> None:
    """A reader of the lines never recomputes the engine's verdicts."""
    trusted, untrusted = (strict_loads(event_line(e)) for _, e in EVENTS[2:4])
    assert (trusted["trusted"], untrusted["trusted"]) == (True, False)
    assert untrusted["activity"] == "running"
    assert untrusted["cadence_source"] == "periodicity"
    assert untrusted["gct_ms"] is None
    assert (untrusted["lost_fraction"], untrusted["clipped_fraction"]) == (0.25, 0.125)
    complete, incomplete = (strict_loads(event_line(e)) for _, e in EVENTS[-2:])
    assert (complete["complete"], incomplete["complete"]) == (True, False)
    assert (complete["missing_s"], incomplete["missing_s"]) == (0.0, 20.5)


def test_enum_values_are_plain_strings() -> None:
    cue = Cue(125.0, CueKind.SESSION_DONE, "Workout complete", reps=8)
    doc = event_dict(cue)
    assert doc["kind"] == "session_done"
    assert type(doc["kind"]) is str  # not a StrEnum, which a JSON encoder might not accept
    assert strict_loads(event_line(cue))["kind"] == "session_done"


def test_nested_quality_is_an_object_with_its_field_names() -> None:
    doc = strict_loads(event_line(EVENTS[2][1]))
    assert doc["quality"] == {
        "samples": 12000,
        "saturated_samples": 3,
        "gaps": 1,
        "lost_samples": 40,
    }


def test_nan_and_infinities_become_null() -> None:
    step = StepEvent(1.0, 1.2, math.nan, "left", math.inf, 1.3, impact_g=-math.inf)
    doc = strict_loads(event_line(step))
    assert doc["gct_ms"] is None
    assert doc["confidence"] is None
    assert doc["impact_g"] is None
    assert doc["ic_s"] == 1.0


def test_floats_are_rounded_to_a_microsecond() -> None:
    doc = strict_loads(event_line(Gap(1.23456789, 2.0000004, 3)))
    assert doc == {"type": "gap", "start_s": 1.234568, "end_s": 2.0, "lost_samples": 3}


finite_or_not = st.floats(allow_nan=True, allow_infinity=True)


@given(ic=finite_or_not, gct=finite_or_not, confidence=finite_or_not, impact=finite_or_not)
def test_any_step_is_strict_json(ic: float, gct: float, confidence: float, impact: float) -> None:
    step = StepEvent(ic, ic, gct, "right", confidence, ic, impact_g=impact)
    doc = strict_loads(event_line(step))
    for name, value in (("ic_s", ic), ("gct_ms", gct), ("confidence", confidence)):
        expected = round(value, 6) if math.isfinite(value) else None
        assert doc[name] == expected
    assert doc["impact_g"] == (round(impact, 6) if math.isfinite(impact) else None)
