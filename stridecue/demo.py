"""`stridecue demo`: the whole chain on one machine, with nothing to set up.

An embedded MQTT broker on 127.0.0.1, the coach companion (its SQLite file in the data folder),
and a simulated team (:mod:`stridecue.team`) whose athletes run closed-loop sessions through the
real bleak code path, compressed in time. The coach URL and token are printed; each cue and rep
the companion stores is echoed in the terminal. The companion stays up after the sessions end,
so that the coach can read the reports, until Ctrl-C (or SIGTERM) stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from bus.broker import HOST, EmbeddedBroker
from dsp.plan import SessionPlan
from server.app import create_app
from server.live import LiveHub
from server.settings import ServerSettings
from stridecue.team import Member, Run, Team

DEFAULT_PORT = 8000
Say = Callable[[str], None]


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handlers: the demo owns Ctrl-C and stops every part in turn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True, slots=True)
class DemoConfig:
    members: Sequence[Member]
    plan: SessionPlan
    speed: float
    bluetooth: bool
    token: str
    port: int | None  # None: 8000 when free, else any free port
    data_dir: Path


def pick_port(wanted: int | None) -> int:
    """``wanted``, or 8000 when nothing listens there, else a free port."""
    if wanted is not None:
        return wanted
    for port in (DEFAULT_PORT, 0):
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free TCP port on {HOST}")


async def run_demo(config: DemoConfig, say: Say) -> None:
    """Run until cancelled (Ctrl-C, SIGTERM); every part is stopped on the way out."""
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    async with EmbeddedBroker() as broker, AsyncExitStack() as stack:
        say(f"embedded MQTT broker on {broker.url} (127.0.0.1 only)")
        port = pick_port(config.port)
        settings = ServerSettings(
            coach_token=SecretStr(config.token),
            host=HOST,
            port=port,
            mqtt_url=broker.url,
            mqtt_client_id=None,  # a fresh broker each run: no broker session to resume
            data_dir=config.data_dir,
        )
        app = create_app(settings)
        await stack.enter_async_context(_serving(app, port))
        await app.state.ingest.subscribed.wait()
        base = f"http://{HOST}:{port}"
        say(f"companion data: {settings.database}")
        say(f"coach view: {base}/#token={config.token}")
        say(f"coach token: {config.token} (API: 'Authorization: Bearer <token>', {base}/docs)")
        for member in config.members:
            say(f"athlete view of {member.athlete_id}: {base}/athletes/{member.athlete_id}")
        echo = asyncio.create_task(_echo(app.state.hub, say), name="echo")
        stack.callback(echo.cancel)
        run = Run(config.plan, config.speed, broker.url, config.data_dir, config.bluetooth)
        team = Team(config.members, run)
        stack.push_async_callback(asyncio.to_thread, team.stop)
        team.start()
        codes = await team.wait()
        failed = [m.athlete_id for m, c in zip(config.members, codes, strict=True) if c != 0]
        if failed:
            say(f"these athletes' sessions failed: {', '.join(failed)}")
        say(f"the sessions are over and stored: the companion stays up at {base} (Ctrl-C stops)")
        await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def _serving(app: FastAPI, port: int) -> AsyncIterator[None]:
    """The companion under uvicorn on ``port`` until the block ends."""
    server = _Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve(), name="companion")
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises why it could not start, if it raised
                raise OSError(f"the companion could not listen on {HOST}:{port}: is it taken?")
            await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _echo(hub: LiveHub, say: Say) -> None:
    """Every cue and finished rep the companion stores, one line each."""
    client = hub.connect()
    try:
        while (text := await client.next()) is not None:
            item = json.loads(text)
            message = item["message"]
            who = item["athlete_id"]
            if item["kind"] == "cues":
                say(f"{who:>10} · {message['text']}")
            elif item["kind"] == "reps":
                cadence, gct = message["mean_cadence_spm"], message["mean_gct_ms"]
                figures = "–" if cadence is None else f"{cadence:.0f} spm, {gct:.0f} ms"
                flag = f" · flagged: {message['fatigue_reason']}" if message["fatigue_flag"] else ""
                say(f"{who:>10} · rep {message['rep']} done: {figures}{flag}")
    finally:
        hub.disconnect(client)
