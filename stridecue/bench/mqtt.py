"""`stridecue bench mqtt`: from a sample to its cue in a subscriber's hands, through a real broker.

For ``n`` athletes at once, simulated sessions are streamed through one engine bank in 20 ms
blocks, in real time by default (``speed`` compresses them); each athlete's events go to its own
publisher (one MQTT connection each), and one subscriber listens to every athlete. A cue's
latency runs from the moment the block holding the sample that triggered it is handed to the
engine to the moment the subscriber receives it. Reported: p50 and p99, cues lost, and the CPU
the whole process used (engine, publishers and subscriber together).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np

from bus.convert import MessageFactory
from bus.messages import CueMessage
from bus.outbox import Outbox
from bus.publisher import Publisher
from bus.settings import BrokerConfig
from bus.subscriber import Subscriber
from dsp.engine import AthleteConfig, EngineBank
from dsp.events import Cue, Placement
from dsp.plan import SessionPlan
from dsp.samples import SampleBlock
from firmware_sim.runner import SimulatedAthlete

FS_HZ = 100.0
TICK_S = 0.02
# Compact, so that a minute of real time holds several cues per athlete.
PLAN = SessionPlan(
    name="nrr", warmup_s=15, reps=4, rep_s=8, min_recovery_s=10, cooldown_s=5, baseline_hold_s=5
)
DISTINCT = 8  # distinct simulated sessions, tiled over the athletes


def sessions_of(seconds: float) -> list[SampleBlock]:
    out = []
    for seed in range(DISTINCT):
        athlete = SimulatedAthlete(PLAN, Placement.FOOT, seed=seed, fs_hz=FS_HZ)
        out.append(athlete.read(seconds))
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class Fleet:
    """``n`` simulated athletes streamed through one engine bank, each with its own publisher.

    An async context manager: entering connects the publishers (one MQTT connection each,
    outboxes in a temporary folder). :meth:`stream` feeds the sessions in 20 ms blocks, paced
    at ``speed`` × real time, and notes when each cue's block was handed to the engine.
    """

    def __init__(self, broker: BrokerConfig, n: int, sessions: list[SampleBlock]) -> None:
        self.broker = broker
        self.ids = [f"bench-{i:03d}" for i in range(n)]
        self.sessions = sessions
        self.publishers: list[Publisher] = []
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Fleet:
        tmp = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
        for athlete_id in self.ids:
            outbox = Outbox(tmp / f"{athlete_id}.sqlite")
            self._stack.callback(outbox.close)
            publisher = Publisher(
                self.broker,
                MessageFactory(athlete_id),
                outbox=outbox,
                device="bench",
                placement="foot",
                sample_rate_hz=FS_HZ,
            )
            self.publishers.append(await self._stack.enter_async_context(publisher))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def stream(
        self, speed: float, clock: Callable[[], float] = time.perf_counter
    ) -> tuple[dict[tuple[str, int], float], float]:
        """Stream every session once: ``{(athlete_id, cue seq): clock() when fed}``, and the
        CPU seconds this process spent doing it."""
        n = len(self.ids)
        length = min(len(s) for s in self.sessions)
        rows = [self.sessions[i % DISTINCT] for i in range(n)]
        t = np.stack([r.t_s[:length] for r in rows])
        acc = np.stack([r.acc_g[:length] for r in rows])
        gyro = np.stack([r.gyro_dps[:length] for r in rows if r.gyro_dps is not None])
        bank = EngineBank(Placement.FOOT, FS_HZ, [AthleteConfig(PLAN) for _ in range(n)])
        sent: dict[tuple[str, int], float] = {}
        seqs = [0] * n
        step = max(1, round(speed * TICK_S * FS_HZ))
        cpu0 = time.process_time()
        next_tick = time.perf_counter()
        for start in range(0, length, step):
            stop = start + step
            fed = clock()
            batches = bank.process(t[:, start:stop], acc[:, start:stop], gyro[:, start:stop])
            for i, events in enumerate(batches):
                for e in events:
                    if isinstance(e, Cue):
                        seqs[i] += 1
                        sent[(self.ids[i], seqs[i])] = fed
                self.publishers[i].handle(events)
            next_tick += TICK_S
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
        return sent, time.process_time() - cpu0


async def _run(
    broker: BrokerConfig, n: int, speed: float, sessions: list[SampleBlock]
) -> dict[str, Any]:
    received: dict[tuple[str, int], float] = {}
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            aiomqtt.Client(
                broker.host, broker.port, username=broker.username, password=broker.password
            )
        )
        subscriber = Subscriber(client)
        await subscriber.subscribe()

        async def listen() -> None:
            async for _, _, msg in subscriber.messages():
                if isinstance(msg, CueMessage):
                    received.setdefault((msg.athlete_id, msg.seq), time.perf_counter())

        listener = asyncio.create_task(listen(), name="bench-subscriber")
        fleet = await stack.enter_async_context(Fleet(broker, n, sessions))
        wall0 = time.perf_counter()
        sent, cpu_s = await fleet.stream(speed)
        wall_s = time.perf_counter() - wall0
        deadline = time.perf_counter() + 10.0
        while len(received.keys() & sent.keys()) < len(sent) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        listener.cancel()
    latencies = [(received[k] - sent[k]) * 1000.0 for k in sent if k in received]
    return {
        "cues_sent": len(sent),
        "cues_lost": len(sent) - len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "cpu_percent": 100.0 * cpu_s / wall_s,
    }


async def run_mqtt_bench(
    broker: BrokerConfig,
    *,
    athletes: Sequence[int] = (1, 100),
    speed: float = 1.0,
    stream_s: float = 60.0,
) -> dict[str, Any]:
    """The figures of ``stridecue bench mqtt``, one flat dict with units in the keys."""
    sessions = sessions_of(stream_s)
    runs = {n: await _run(broker, n, speed, sessions) for n in athletes}
    return flat_figures({"broker": broker.url, "speed": speed, "stream_s": stream_s}, runs)


def flat_figures(
    head: dict[str, Any], runs: dict[int, dict[str, Any]], single: str = "cue_latency"
) -> dict[str, Any]:
    """Runs by team size as one flat dict: ``{single}_p99_ms`` for one athlete,
    ``cue_latency_p99_ms_100_athletes``, ``cpu_percent_100_athletes``, … and ``cues_lost`` in
    all; floats rounded to 3 decimals."""
    figures = dict(head)
    for n, r in runs.items():
        who = "1_athlete" if n == 1 else f"{n}_athletes"
        latency = f"{single}_p{{}}_ms" if n == 1 else f"cue_latency_p{{}}_ms_{who}"
        figures |= {
            latency.format(50): r["p50_ms"],
            latency.format(99): r["p99_ms"],
            f"cues_sent_{who}": r["cues_sent"],
            f"cues_lost_{who}": r["cues_lost"],
            f"cpu_percent_{who}": r["cpu_percent"],
        }
    figures["cues_lost"] = sum(r["cues_lost"] for r in runs.values())
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
