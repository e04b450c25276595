"""The production Mosquitto files in ``deploy/``, run for real.

A Mosquitto of our own on a free port, configured from the committed ``mosquitto.conf`` with only
the listener port and the file paths substituted, and the committed ACL file used unchanged.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from bus.convert import MessageFactory
from bus.messages import KIND_OF, MESSAGE, Message
from bus.topics import Kind, subscription, topic
from dsp.events import Cue, CueKind

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
)
PASSWD = shutil.which("mosquitto_passwd")
SUB = shutil.which("mosquitto_sub")
USERS = {"anna": "anna-secret", "ben": "ben-secret", "coach": "coach-secret"}

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(
        not (MOSQUITTO and PASSWD and SUB), reason="mosquitto, mosquitto_passwd or _sub missing"
    ),
]


def production_config(port: int, folder: Path) -> str:
    """The committed configuration, with the port and every path moved into ``folder``."""
    text = (DEPLOY / "mosquitto.conf").read_text("utf-8")
    # 127.0.0.1: the test must not open a port on the machine's other interfaces.
    replacements = {
        r"^listener 1883$": f"listener {port} 127.0.0.1",
        r"^password_file .*$": f"password_file {folder / 'passwd'}",
        r"^acl_file .*$": f"acl_file {DEPLOY / 'mosquitto.acl'}",
        r"^persistence_location .*$": f"persistence_location {folder}/",
        r"^log_dest file .*$": f"log_dest file {folder / 'mosquitto.log'}",
    }
    for pattern, new in replacements.items():
        text, n = re.subn(pattern, new, text, flags=re.MULTILINE)
        assert n == 1, f"deploy/mosquitto.conf has no single line matching {pattern}"
    # Started as root, Mosquitto would switch to the "mosquitto" user, who cannot read the test's
    # private temporary folder; started as anyone else, this line changes nothing.
    return text + f"user {getpass.getuser()}\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The production broker on a free port; yields the port."""
    assert MOSQUITTO and PASSWD
    folder = tmp_path_factory.mktemp("mosquitto")
    for user, password in USERS.items():
        create = ["-c"] if user == "anna" else []
        subprocess.run([PASSWD, *create, "-b", str(folder / "passwd"), user, password], check=True)
    port = _free_port()
    (folder / "mosquitto.conf").write_text(production_config(port, folder), "utf-8")
    process = subprocess.Popen(
        [MOSQUITTO, "-c", str(folder / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    _, err = process.communicate()
                    pytest.fail(f"Mosquitto did not start: {err.decode()}")
                time.sleep(0.02)  # polling, bounded by the deadline
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()


def client(port: int, user: str | None) -> aiomqtt.Client:
    password = None if user is None else USERS[user]
    return aiomqtt.Client("127.0.0.1", port, username=user, password=password)


def cue_payload(athlete_id: str, text: str) -> bytes:
    message = MessageFactory(athlete_id).message(Cue(t_s=1.0, kind=CueKind.GO, text=text))
    assert message is not None
    return message.model_dump_json().encode()


async def _receive_until(
    coach: aiomqtt.Client, marker: str, timeout_s: float = 5.0
) -> list[tuple[str, str]]:
    """(topic, cue text) of every message up to and including the marker cue."""
    seen: list[tuple[str, str]] = []
    async with asyncio.timeout(timeout_s):
        async for received in coach.messages:
            assert isinstance(received.payload, bytes)
            text = MESSAGE.validate_json(received.payload)
            assert text.type == "cue"
            seen.append((received.topic.value, text.text))
            if text.text == marker:
                return seen
    raise AssertionError("unreachable: the iteration only ends by the marker or the timeout")


def test_athletes_write_their_own_subtree_only_and_the_coach_reads_it(broker: int) -> None:
    async def scenario() -> list[tuple[str, str]]:
        async with (
            client(broker, "coach") as coach,
            client(broker, "anna") as anna,
            client(broker, "ben") as ben,
        ):
            await coach.subscribe(subscription(), qos=1)
            await anna.publish(topic("anna", Kind.CUES), cue_payload("anna", "anna 1"), qos=1)
            # Denied publishes are dropped silently (QoS 1 still gets its PUBACK): what proves
            # non-delivery is that the marker, published after them, arrives first.
            await anna.publish(topic("ben", Kind.CUES), cue_payload("ben", "forged by anna"), qos=1)
            await anna.publish("stridecue/v1/other", cue_payload("anna", "outside"), qos=1)
            await ben.publish(topic("ben", Kind.CUES), cue_payload("ben", "ben 1"), qos=1)
            await anna.publish(topic("anna", Kind.CUES), cue_payload("anna", "marker"), qos=1)
            return await _receive_until(coach, "marker")

    assert asyncio.run(scenario()) == [
        (topic("anna", Kind.CUES), "anna 1"),
        (topic("ben", Kind.CUES), "ben 1"),
        (topic("anna", Kind.CUES), "marker"),
    ]


def test_an_athlete_cannot_read_another_athlete(broker: int) -> None:
    async def scenario() -> list[tuple[str, str]]:
        async with client(broker, "ben") as ben, client(broker, "anna") as anna:
            await ben.subscribe(subscription(), qos=1)  # asks for everything, gets its own
            await anna.publish(topic("anna", Kind.CUES), cue_payload("anna", "private"), qos=1)
            await ben.publish(topic("ben", Kind.CUES), cue_payload("ben", "marker"), qos=1)
            return await _receive_until(ben, "marker")

    assert asyncio.run(scenario()) == [(topic("ben", Kind.CUES), "marker")]


def test_the_coach_cannot_publish_anywhere(broker: int) -> None:
    async def scenario() -> list[tuple[str, str]]:
        async with client(broker, "coach") as coach, client(broker, "anna") as anna:
            await coach.subscribe(subscription(), qos=1)
            for athlete in ("anna", "coach"):  # "coach" also matches the athletes' pattern
                await coach.publish(topic(athlete, Kind.CUES), cue_payload(athlete, "x"), qos=1)
            await anna.publish(topic("anna", Kind.CUES), cue_payload("anna", "marker"), qos=1)
            return await _receive_until(coach, "marker")

    assert asyncio.run(scenario()) == [(topic("anna", Kind.CUES), "marker")]


@pytest.mark.parametrize(
    ("user", "password"), [(None, None), ("anna", "wrong"), ("mallory", "anything")]
)
def test_anonymous_and_wrong_credentials_are_refused(
    broker: int, user: str | None, password: str | None
) -> None:
    async def connect() -> None:
        async with aiomqtt.Client("127.0.0.1", broker, username=user, password=password):
            pass

    with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori[sz]ed|user name or password"):
        asyncio.run(connect())


def test_mosquitto_sub_sees_the_documented_topics_and_payloads(broker: int) -> None:
    """A third-party client with the coach's credentials, as in docs/mqtt.md."""
    assert SUB
    factory = MessageFactory("anna")
    cue = factory.message(Cue(t_s=40.0, kind=CueKind.GO, text="Go!", rep=1, reps=6))
    session = factory.session(
        40.0, template="nrr", state="rep", rep=1, reps=6, recovery_remaining_s=None
    )
    assert cue is not None
    sent: list[Message] = [session, cue]
    command = [SUB, "-h", "127.0.0.1", "-p", str(broker), "-u", "coach", "-P", USERS["coach"]]
    command += ["-t", subscription(), "-v", "-C", str(len(sent)), "-W", "10"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as sub:

        async def publish() -> None:
            async with client(broker, "anna") as anna:
                # mosquitto_sub has no "subscribed" signal: the retained session is delivered on
                # subscribe whenever that happens, and the cue is re-sent until it is counted.
                await anna.publish(
                    topic("anna", Kind.SESSION), session.model_dump_json(), qos=1, retain=True
                )
                while sub.poll() is None:
                    await anna.publish(topic("anna", Kind.CUES), cue.model_dump_json(), qos=1)
                    await asyncio.sleep(0.05)
                # leave the broker as we found it
                await anna.publish(topic("anna", Kind.SESSION), b"", qos=1, retain=True)

        asyncio.run(publish())
        out, err = sub.communicate(timeout=10)
    assert sub.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == len(sent)
    got = {}
    for line in lines:
        name, payload = line.split(" ", 1)
        message = MESSAGE.validate_json(payload)
        assert name == topic(message.athlete_id, KIND_OF[type(message)])
        got[name] = message
    assert got == {topic("anna", Kind.SESSION): session, topic("anna", Kind.CUES): cue}
