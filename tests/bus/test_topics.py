"""The topic layout: building topics and filters, and reading a topic back."""

from __future__ import annotations

import pytest

from bus.topics import DELIVERY, ROOT, Kind, check_athlete_id, parse, subscription, topic


@pytest.mark.parametrize("kind", list(Kind))
def test_topic_round_trips_through_parse(kind: Kind) -> None:
    name = topic("anna-01", kind)
    assert name == f"stridecue/v1/athletes/anna-01/{kind.value}"
    assert parse(name) == ("anna-01", kind)


def test_subscription_defaults_to_every_athlete_and_kind() -> None:
    assert subscription() == "stridecue/v1/athletes/+/#"
    assert subscription("anna") == "stridecue/v1/athletes/anna/#"
    assert subscription("+", Kind.CUES) == "stridecue/v1/athletes/+/cues"


@pytest.mark.parametrize(
    "athlete_id",
    [
        "",
        "Anna",
        "anna/ben",
        "+",
        "#",
        "-anna",
        "_anna",
        "anna ben",
        "é",
        "a" * 65,
        "anna\n",  # '$' alone would match before a final newline
    ],
)
def test_invalid_athlete_ids_are_refused(athlete_id: str) -> None:
    with pytest.raises(ValueError, match="athlete id"):
        topic(athlete_id, Kind.CUES)
    assert parse(f"{ROOT}/athletes/{athlete_id}/cues") is None


@pytest.mark.parametrize("athlete_id", ["a", "0", "anna_b-2", "a" * 64])
def test_valid_athlete_ids_are_kept(athlete_id: str) -> None:
    assert check_athlete_id(athlete_id) == athlete_id


@pytest.mark.parametrize(
    "name",
    [
        "stridecue/v2/athletes/anna/cues",  # another version of the contract
        "other/v1/athletes/anna/cues",
        "stridecue/v1/coaches/anna/cues",
        "stridecue/v1/athletes/anna/cue",  # not a kind
        "stridecue/v1/athletes/anna",
        "stridecue/v1/athletes/anna/cues/extra",
        "/stridecue/v1/athletes/anna/cues",
        "$SYS/broker/uptime",
        "",
    ],
)
def test_parse_ignores_other_topics(name: str) -> None:
    assert parse(name) is None


def test_durable_kinds_are_the_qos1_unretained_ones() -> None:
    durable = {kind for kind, d in DELIVERY.items() if d.durable}
    retained = {kind for kind, d in DELIVERY.items() if d.retain}
    assert durable == {Kind.CUES, Kind.REPS}
    assert retained == {Kind.SESSION, Kind.STATUS}
    assert {kind for kind, d in DELIVERY.items() if d.qos == 0} == {Kind.METRICS, Kind.STEPS}
