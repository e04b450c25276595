"""The Bluetooth commands against `stridecue sim-footpod`, a real process serving the simulated
footpod on its own private bus: scan, record and replay, and a live run that publishes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from typer.testing import CliRunner

from bus.messages import MetricsMessage, StatusMessage
from bus.subscriber import Subscriber
from stridecue.cli import app

pytestmark = pytest.mark.ble

STRIDECUE = Path(sys.executable).parent / "stridecue"
NAME = "CLI Footpod"
SHORT = ["--warmup-s", "300", "--reps", "1", "--rep-s", "20", "--cooldown-s", "20"]


@pytest.fixture(scope="module")
def footpod() -> Iterator[dict[str, str]]:
    """`stridecue sim-footpod` running; the environment a client needs to reach it."""
    proc = subprocess.Popen(
        [str(STRIDECUE), "sim-footpod", "--profile", "raw-imu", "--name", NAME, *SHORT],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    env: dict[str, str] = {}
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and len(env) < 2:
        line = proc.stderr.readline()
        if not line:
            break
        if m := re.search(r"export DBUS_SYSTEM_BUS_ADDRESS='([^']+)'", line):
            env["DBUS_SYSTEM_BUS_ADDRESS"] = m.group(1)
        if m := re.search(r"export PATH='([^']+)'", line):
            env["PATH"] = f"{m.group(1)}{os.pathsep}{os.environ['PATH']}"
    assert len(env) == 2, "sim-footpod did not announce its bus"
    # Keep reading what it logs, so that a full pipe can never block it.
    drain = threading.Thread(target=proc.stderr.read, daemon=True)
    drain.start()
    try:
        yield env
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0  # Ctrl-C is a clean stop
        drain.join(timeout=5)
        proc.stderr.close()


@pytest.fixture
def client_env(footpod: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in footpod.items():
        monkeypatch.setenv(key, value)


@pytest.mark.usefixtures("client_env")
def test_scan_finds_the_footpod_and_its_profile() -> None:
    result = CliRunner().invoke(app, ["scan", "--timeout", "2", "--json"])
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(f["name"], f["profile"]) for f in found] == [(NAME, "raw-imu")]


@pytest.mark.usefixtures("client_env")
def test_a_recording_replays_through_the_same_parsers(tmp_path: Path) -> None:
    log = tmp_path / "ble.log"
    args = ["record", "--device", NAME, "-o", str(log), "--duration", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    replay = CliRunner().invoke(app, ["replay", str(log), "--json"])
    assert replay.exit_code == 0, replay.output
    events = [json.loads(line) for line in replay.stdout.splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) >= 2  # a foot sensor at easy pace: a stride every ~0.75 s
    assert all(e["quality"]["gaps"] == 0 for e in events if e["type"] == "metrics")


@pytest.mark.mosquitto
@pytest.mark.usefixtures("client_env")
def test_a_live_run_cues_and_publishes() -> None:
    athlete = f"ble-{uuid.uuid4().hex[:8]}"
    got: list[object] = []
    ready = threading.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            sub = Subscriber(client, athlete_id=athlete)
            await sub.subscribe()
            ready.set()
            async for _, _, message in sub.messages():
                got.append(message)
                if isinstance(message, StatusMessage) and not message.online:
                    return

    listener = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    listener.start()
    assert ready.wait(10)
    args = ["run", "--device", NAME, "--profile", "raw-imu", "--json", "--duration", "5"]
    args += ["--mqtt", "mqtt://127.0.0.1:1883", "--athlete", athlete]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    listener.join(timeout=15)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(e["type"] == "step" for e in events)
    metrics = [m for m in got if isinstance(m, MetricsMessage)]
    assert metrics and metrics[-1].step_count > 0
    assert isinstance(got[-1], StatusMessage) and got[-1].device == NAME
