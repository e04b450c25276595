"""`stridecue bench e2e`: from a sample to its cue on the coach's screen, through every part.

For each team size, simulated athletes stream through one engine bank in real time (the
``bench mqtt`` fleet: one publisher and MQTT connection each) to a broker; the companion runs as
its own process (``stridecue serve``, a SQLite file), and a real browser (chromium, driven by
Playwright) shows its coach page. A cue's latency runs from the moment the block holding the
sample that triggered it is handed to the engine to the moment the coach page first renders it
(``window.stridecueShown``; both clocks are this machine's Unix time). CPU is the whole chain's:
this process (engines, publishers, the embedded broker when used), the companion, the browser
and a local broker process, as a percentage of one core (200 % = both cores of a 2-core machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bus.broker import free_port
from bus.settings import BrokerConfig
from stridecue.bench.mqtt import Fleet, flat_figures, percentile, sessions_of

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium on a machine with a closed network: no background connections, no GPU.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
READY_S = 30.0
DRAIN_S = 10.0


class E2EBenchError(RuntimeError):
    """The bench cannot run here; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Companion:
    url: str
    token: str


@contextlib.asynccontextmanager
async def companion(broker: BrokerConfig, folder: Path) -> AsyncIterator[Companion]:
    """``stridecue serve`` in a process of its own, subscribed to ``broker``, for the block."""
    token = secrets.token_urlsafe(24)
    port = free_port()
    env = os.environ | {
        "STRIDECUE_COACH_TOKEN": token,
        "STRIDECUE_MQTT_CLIENT_ID": f"stridecue-bench-{secrets.token_hex(4)}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stridecue",
        "serve",
        "--port",
        str(port),
        "--mqtt",
        broker.url,
        "--database",
        f"sqlite:///{folder / 'companion.sqlite'}",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _until_subscribed(url, process)
        yield Companion(url, token)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _until_subscribed(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + READY_S
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise E2EBenchError(f"the companion exited with code {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                health = (await client.get("/api/health")).json()
                if health["mqtt"] and health["mqtt"]["subscribed"]:
                    return
            await asyncio.sleep(0.1)
    raise E2EBenchError(f"the companion at {url} did not subscribe within {READY_S:.0f} s")


async def _coach_page(stack: AsyncExitStack, served: Companion, chromium: str) -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise E2EBenchError(
            "stridecue bench e2e drives a browser with Playwright: pip install 'stridecue[bench]'"
        ) from None
    if not Path(chromium).exists():
        raise E2EBenchError(f"no browser at {chromium}: install chromium or pass --chromium")
    playwright = await stack.enter_async_context(async_playwright())
    browser = await playwright.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
    stack.push_async_callback(browser.close)
    page = await browser.new_page(viewport={"width": 1600, "height": 1000})
    await page.goto(f"{served.url}/#token={served.token}")
    await page.wait_for_url(f"{served.url}/coach")
    # The page is live once its WebSocket is connected.
    async with httpx.AsyncClient(base_url=served.url) as client:
        deadline = time.monotonic() + READY_S
        while (await client.get("/api/health")).json()["live"]["clients"] < 1:
            if time.monotonic() > deadline:
                raise E2EBenchError("the coach page did not connect its live stream")
            await asyncio.sleep(0.05)
    return page


async def _cue_numbers(served: Companion, athlete_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Cue message id → (athlete id, seq), from the companion's API."""
    numbers: dict[str, tuple[str, int]] = {}
    headers = {"Authorization": f"Bearer {served.token}"}
    async with httpx.AsyncClient(base_url=served.url, headers=headers) as client:
        for athlete_id in athlete_ids:
            for session in (await client.get(f"/api/athletes/{athlete_id}/sessions")).json():
                for cue in (await client.get(f"/api/sessions/{session['id']}/cues")).json():
                    numbers[cue["id"]] = (athlete_id, cue["seq"])
    return numbers


def _cpu_s(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _broker_process(broker: BrokerConfig) -> psutil.Process | None:
    """The local process listening on the broker's port (Mosquitto), if it is on this machine."""
    if broker.host not in ("127.0.0.1", "localhost"):
        return None
    with contextlib.suppress(psutil.Error):
        for connection in psutil.net_connections("tcp"):
            if (
                connection.status == psutil.CONN_LISTEN
                and connection.laddr
                and connection.laddr.port == broker.port
                and connection.pid not in (None, os.getpid())
            ):
                return psutil.Process(connection.pid)
    return None


async def _run(broker: BrokerConfig, n: int, stream_s: float, chromium: str) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        served = await stack.enter_async_context(companion(broker, folder))
        page = await _coach_page(stack, served, chromium)
        fleet = await stack.enter_async_context(Fleet(broker, n, sessions_of(stream_s)))
        me = psutil.Process()
        chain = [me, *me.children(recursive=True)]
        if (process := _broker_process(broker)) is not None:
            chain.append(process)
        cpu0, wall0 = _cpu_s(chain), time.perf_counter()
        sent, _ = await fleet.stream(1.0, clock=time.time)
        cpu_s, wall_s = _cpu_s(chain) - cpu0, time.perf_counter() - wall0
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            shown = await page.evaluate("window.stridecueShown || []")
            if len(shown) >= len(sent):
                break
            await asyncio.sleep(0.1)
        numbers = await _cue_numbers(served, fleet.ids)
    shown_at = {numbers[s["id"]]: s["shown_ms"] / 1000.0 for s in shown if s["id"] in numbers}
    latencies = [(shown_at[k] - sent[k]) * 1000.0 for k in sent if k in shown_at]
    return {
        "cues_sent": len(sent),
        "cues_lost": len(sent) - len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "cpu_percent": 100.0 * cpu_s / wall_s,
    }


async def run_e2e_bench(
    broker: BrokerConfig,
    *,
    athletes: Sequence[int] = (10, 50, 100),
    stream_s: float = 60.0,
    chromium: str = CHROMIUM,
) -> dict[str, Any]:
    """The figures of ``stridecue bench e2e``: one athlete, then each team size."""
    runs = {n: await _run(broker, n, stream_s, chromium) for n in [1, *athletes]}
    head = {"broker": broker.url, "stream_s": stream_s}
    return flat_figures(head, runs, single="browser_cue_latency")
