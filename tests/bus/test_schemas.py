"""The committed JSON Schemas: what the models generate, and what real payloads satisfy."""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bus.convert import MessageFactory
from bus.messages import KIND_OF, MESSAGE, Message
from bus.schemas import main, schemas, write_schemas
from bus.settings import Settings
from dsp.events import Event, Metrics, Placement
from dsp.plan import SessionPlan
from firmware_sim.runner import SimulatedAthlete
from recordings.runner import build_engine, run_session
from recordings.sources import SimulatedSource

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "schemas"
NAMES = ["metrics", "step", "cue", "rep", "session", "status"]
PLAN = SessionPlan(
    name="nrr", warmup_s=30, reps=2, rep_s=15, min_recovery_s=20, cooldown_s=10, baseline_hold_s=10
)


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((COMMITTED / f"{name}.schema.json").read_text("utf-8"))
    return schema


@pytest.fixture(scope="module")
def payloads() -> list[dict[str, Any]]:
    """Every message of a short simulated session, as a third-party client would parse it."""
    source = SimulatedSource(
        SimulatedAthlete(PLAN, Placement.FOOT, seed=5, closed_loop=True), block_s=1.0
    )
    engine = build_engine(source, PLAN)
    factory = MessageFactory("anna")
    messages: list[Message] = []

    states: list[tuple[str, int]] = []

    def sink(events: Sequence[Event]) -> None:
        messages.extend(m for m in map(factory.message, events) if m is not None)
        reps = engine.reps
        if not states or states[-1] != (reps.state, reps.rep):  # as the publisher does
            states.append((reps.state, reps.rep))
            t_s = max((e.t_s for e in events if isinstance(e, Metrics)), default=0.0)
            messages.append(
                factory.session(
                    t_s,
                    template=PLAN.name,
                    state=reps.state,
                    rep=reps.rep,
                    reps=reps.reps,
                    recovery_remaining_s=reps.recovery_remaining_s,
                )
            )

    asyncio.run(run_session(source, engine, [sink]))
    messages.append(
        factory.status(
            60.0,
            online=False,
            device="sim",
            placement="foot",
            sample_rate_hz=200.0,
            quality=None,
            metrics_dropped=4,
            outbox_pending=1,
        )
    )
    return [json.loads(m.model_dump_json()) for m in messages]


def test_the_committed_schemas_are_what_the_models_generate(tmp_path: Path) -> None:
    written = write_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{n}.schema.json" for n in NAMES)
    assert sorted(p.name for p in COMMITTED.glob("*.schema.json")) == sorted(
        p.name for p in written
    ), "regenerate: python -m bus.schemas docs/schemas"
    for path in written:
        assert (COMMITTED / path.name).read_bytes() == path.read_bytes(), f"{path.name} is stale"


def test_the_command_writes_the_same_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.count(".schema.json") == len(NAMES)
    for name in NAMES:
        assert json.loads((tmp_path / f"{name}.schema.json").read_text("utf-8")) == load(name)
    assert main([]) == 2


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_is_a_valid_draft_2020_12_schema_with_id_and_title(name: str) -> None:
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:stridecue:v1:{name}"
    assert name in schema["title"]
    assert schema["properties"]["type"]["const"] == name
    assert {"schema_version", "type", "athlete_id", "session_id", "wall_time"} <= set(
        schema["required"]
    )
    assert schemas()[name] == schema


def test_every_real_payload_validates_against_its_committed_schema(
    payloads: list[dict[str, Any]],
) -> None:
    validators = {name: Draft202012Validator(load(name)) for name in NAMES}
    for payload in payloads:
        errors = list(validators[payload["type"]].iter_errors(payload))
        assert not errors, (payload, errors)
    seen = {p["type"] for p in payloads}
    assert seen == set(NAMES)
    cues = [p for p in payloads if p["type"] == "cue"]
    assert [c["kind"] for c in cues][-1] == "session_done" and cues[0]["seq"] == 1
    states = [p["state"] for p in payloads if p["type"] == "session"]
    assert {"warmup", "rep", "recovery", "cooldown", "done"} <= set(states)


def _mutations(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    missing = {k: v for k, v in payload.items() if k != "session_id"}
    return {
        "missing session_id": missing,
        "missing type": {k: v for k, v in payload.items() if k != "type"},
        "sensor_time_s a string": {**payload, "sensor_time_s": "12.5"},
        "athlete_id not topic-safe": {**payload, "athlete_id": "Anna/Ben"},
        "an extra field": {**payload, "colour": "red"},
        "schema_version 2": {**payload, "schema_version": 2},
    }


@pytest.mark.parametrize("name", NAMES)
def test_a_mutated_payload_does_not_validate(name: str, payloads: list[dict[str, Any]]) -> None:
    payload = next(p for p in payloads if p["type"] == name)
    validator = Draft202012Validator(load(name))
    assert validator.is_valid(payload)
    for mutation, bad in _mutations(payload).items():
        assert not validator.is_valid(bad), mutation
    # The other types' schemas refuse it too (the "type" constant tells them apart).
    for other in NAMES:
        if other != name:
            assert not Draft202012Validator(load(other)).is_valid(payload)


def test_type_specific_rules_are_in_the_schemas(payloads: list[dict[str, Any]]) -> None:
    cue = next(p for p in payloads if p["type"] == "cue")
    rep = next(p for p in payloads if p["type"] == "rep")
    cues, reps = Draft202012Validator(load("cue")), Draft202012Validator(load("rep"))
    assert not cues.is_valid({**cue, "seq": 0})
    assert not cues.is_valid({**cue, "kind": "sprint"})
    assert not cues.is_valid({**cue, "id": ""})
    assert not reps.is_valid({**rep, "duration_s": -1.0})
    assert not reps.is_valid({**rep, "fatigue_flag": "yes"})
    # Python's model and the schema agree on what is a message.
    assert {cls.__name__ for cls in KIND_OF} == {f"{n.capitalize()}Message" for n in NAMES}


DOC = COMMITTED.parent / "mqtt.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text("utf-8"), re.M | re.S)


def test_the_examples_in_the_docs_validate_one_per_type() -> None:
    examples = [json.loads(block) for block in _blocks("json")]
    assert sorted(e["type"] for e in examples) == sorted(NAMES)
    for example in examples:
        errors = list(Draft202012Validator(load(example["type"])).iter_errors(example))
        assert not errors, (example["type"], errors)
        MESSAGE.validate_python(example)


def test_the_config_file_example_uses_real_settings() -> None:
    [toml] = _blocks("toml")
    assert set(tomllib.loads(toml)) <= set(Settings.model_fields)


def test_real_metrics_say_what_can_be_trusted(payloads: list[dict[str, Any]]) -> None:
    metrics = [p for p in payloads if p["type"] == "metrics"]
    added = {"activity", "cadence_source", "cadence_confidence", "lost_fraction"}
    assert all(added | {"clipped_fraction", "trusted"} <= set(p) for p in metrics)
    assert all(isinstance(p["trusted"], bool) for p in metrics)
    # The engine's verdict, carried as it is.
    for p in metrics:
        supported = p["cadence_confidence"] is None or p["cadence_confidence"] >= 0.5
        expected = p["cadence_spm"] is not None and p["lost_fraction"] <= 0.2 and supported
        assert p["trusted"] is expected, p
    assert any(p["trusted"] and p["activity"] == "running" for p in metrics)
    reps = [p for p in payloads if p["type"] == "rep"]
    assert all(isinstance(p["complete"], bool) and p["missing_s"] >= 0 for p in reps)


@pytest.mark.parametrize("name", ["metrics", "rep"])
def test_a_payload_of_an_older_publisher_still_validates(
    name: str, payloads: list[dict[str, Any]]
) -> None:
    """v1 only ever adds optional fields: a message without them is still a v1 message."""
    added = {
        "metrics": {
            "activity",
            "cadence_source",
            "cadence_confidence",
            "lost_fraction",
            "clipped_fraction",
            "trusted",
        },
        "rep": {"missing_s", "complete"},
    }[name]
    payload = next(p for p in payloads if p["type"] == name and p.get("cadence_spm", 1))
    old = {k: v for k, v in payload.items() if k not in added}
    assert set(load(name)["properties"]) - set(load(name)["required"]) == added
    assert Draft202012Validator(load(name)).is_valid(old)
    message = MESSAGE.validate_python(old)
    if name == "metrics":
        # Read as the older publisher meant it: trusted exactly when there is a cadence.
        assert message.model_dump(include=added) == {
            "activity": None,
            "cadence_source": None,
            "cadence_confidence": None,
            "lost_fraction": 0.0,
            "clipped_fraction": 0.0,
            "trusted": True,
        }
        assert MESSAGE.validate_python({**old, "cadence_spm": None}).trusted is False  # type: ignore[union-attr]
    else:
        assert message.model_dump(include=added) == {"missing_s": 0.0, "complete": True}


def test_the_new_fields_have_their_ranges(payloads: list[dict[str, Any]]) -> None:
    metrics = next(p for p in payloads if p["type"] == "metrics")
    validator = Draft202012Validator(load("metrics"))
    assert not validator.is_valid({**metrics, "lost_fraction": 1.5})
    assert not validator.is_valid({**metrics, "cadence_confidence": -0.1})
    assert not validator.is_valid({**metrics, "activity": "cycling"})
    assert not validator.is_valid({**metrics, "cadence_source": "guess"})
    assert not validator.is_valid({**metrics, "trusted": "yes"})
    rep = next(p for p in payloads if p["type"] == "rep")
    assert not Draft202012Validator(load("rep")).is_valid({**rep, "missing_s": -1.0})
