"""The command line publishes what it computes: `replay --mqtt`, `sim-run` on an embedded broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest
from typer.testing import CliRunner

from bus.broker import free_port
from bus.messages import CueMessage, MetricsMessage, RepMessage, StatusMessage
from bus.settings import BrokerConfig
from bus.subscriber import Subscriber
from stridecue.cli import app

SHORT = [
    "--warmup-s",
    "60",
    "--reps",
    "2",
    "--rep-s",
    "15",
    "--recovery-s",
    "40",
    "--cooldown-s",
    "20",
]
STRIDECUE = Path(sys.executable).parent / "stridecue"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mqtt-cli") / "run.log"
    result = CliRunner().invoke(app, ["simulate", "-o", str(path), "--seed", "3", *SHORT])
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.mosquitto
def test_replay_publishes_every_cue_and_rep(
    recording: Path, system_mosquitto: BrokerConfig, tmp_path: Path
) -> None:
    athlete = f"cli-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[dict[str, object]], dict[str, list[object]]]:
        got: dict[str, list[object]] = {"cue": [], "rep": [], "metrics": [], "status": []}
        async with aiomqtt.Client(system_mosquitto.host, system_mosquitto.port) as client:
            sub = Subscriber(client, athlete_id=athlete)
            await sub.subscribe()  # before the publisher starts: nothing can be missed
            env = {**os.environ, "STRIDECUE_DATA_DIR": str(tmp_path)}
            proc = await asyncio.create_subprocess_exec(
                str(STRIDECUE),
                "replay",
                str(recording),
                "--json",
                "--mqtt",
                system_mosquitto.url,
                "--athlete",
                athlete,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )

            async def collect() -> None:
                async for _, _, message in sub.messages():
                    if message.type in got:
                        got[message.type].append(message)
                    if isinstance(message, StatusMessage) and not message.online:
                        return  # the publisher said goodbye: everything before has arrived

            stdout, stderr = await proc.communicate()
            assert proc.returncode == 0, stderr.decode()
            await asyncio.wait_for(collect(), timeout=20.0)
            assert sub.malformed.total() == 0
        printed = [json.loads(line) for line in stdout.decode().splitlines()]
        return printed, got

    printed, got = asyncio.run(scenario())
    cues = [e for e in printed if e["type"] == "cue"]
    reps = [e for e in printed if e["type"] == "rep"]
    assert len(cues) >= 5 and len(reps) == 2
    published = [m for m in got["cue"] if isinstance(m, CueMessage)]
    assert [(m.kind, m.text) for m in published] == [(c["kind"], c["text"]) for c in cues]
    assert [m.seq for m in published] == list(range(1, len(cues) + 1))
    assert [m.rep for m in got["rep"] if isinstance(m, RepMessage)] == [r["rep"] for r in reps]
    assert len({m.session_id for m in published}) == 1
    # Metrics are QoS 0 and the latest wins: a replay at full speed outruns the queue and the
    # older ones are dropped (documented), but what arrives is in order and ends with the newest.
    metrics = [m.sensor_time_s for m in got["metrics"] if isinstance(m, MetricsMessage)]
    assert metrics and metrics == sorted(set(metrics))
    assert metrics[-1] == [e["t_s"] for e in printed if e["type"] == "metrics"][-1]


def test_sim_run_publishes_on_an_embedded_broker_it_announces() -> None:
    args = ["sim-run", "--speed", "max", "--json", "--mqtt", "embedded", *SHORT]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "embedded MQTT broker listening on mqtt://127.0.0.1:" in result.output
    assert "publishing athlete 'athlete'" in result.output


def test_a_malformed_broker_url_is_a_clear_error(recording: Path) -> None:
    result = CliRunner().invoke(app, ["replay", str(recording), "--mqtt", "http://broker"])
    assert result.exit_code == 2
    assert "mqtt://host" in result.output


def test_an_unreachable_broker_is_named_in_the_error(recording: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    result = CliRunner().invoke(app, ["replay", str(recording), "--json", "--mqtt", url])
    assert result.exit_code == 2
    assert "MQTT:" in result.output and url.removeprefix("mqtt://") in result.output
