"""`stridecue bench`: speed and memory of the engine, measured, not asserted.

- ``replay_x_realtime``: offline replay of a simulated 60-minute, 200 Hz, 6-axis foot session
  (reading the log and running the engine in auto mode), stream seconds per CPU second; the
  median of ``repeats`` runs.
- ``stream_cpu_ms_per_stream_s``: ``athletes`` athletes streamed together in 20 ms blocks through
  one :class:`~dsp.engine.EngineBank`: CPU milliseconds per athlete per stream second (median of
  the repeats). ``athletes_per_core`` is 1000 divided by it.
- ``stream_block_p99_ms``: one athlete's :class:`~dsp.engine.StrideEngine` fed 20 ms blocks:
  the 99th percentile of the wall time to process a block. ``bank_block_p99_ms`` is the same for
  one call of the whole bank.
- ``memory_growth_mb``: traced Python memory (tracemalloc) held by a running engine at the end
  of the session minus after its first sixth (60 and 10 minutes by default; events are
  discarded as they come, as the live runner does).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from dsp.engine import AthleteConfig, EngineBank, StrideEngine
from dsp.events import Placement
from dsp.plan import SessionPlan, template
from dsp.samples import SampleBlock
from firmware_sim.runner import SimulatedAthlete
from recordings.logfile import LogHeader, LogReader, LogWriter, utc_now

FS_HZ = 200.0
BLOCK_S = 0.02


def _session_plan(minutes: float) -> SessionPlan:
    """The NRR template stretched to ``minutes`` by a longer warm-up and cool-down."""
    base = template("nrr")
    extra = max(0.0, minutes * 60.0 - base.nominal_duration_s - 8 * 25.0)
    return base.with_overrides(
        warmup_s=base.warmup_s + extra / 2, cooldown_s=base.cooldown_s + extra / 2
    )


def _simulated_blocks(seconds: float, seed: int, block_s: float) -> Iterator[SampleBlock]:
    athlete = SimulatedAthlete(
        _session_plan(seconds / 60.0), Placement.FOOT, seed=seed, fs_hz=FS_HZ
    )
    done = 0.0
    while done < seconds and not athlete.done:
        step = min(block_s, seconds - done)
        yield athlete.read(step)
        done += step


def _write_session_log(path: Path, minutes: float) -> float:
    header = LogHeader(
        device="firmware_sim", placement="foot", sample_rate_hz=FS_HZ, start_time=utc_now()
    )
    span = 0.0
    with LogWriter(path, header) as writer:
        for block in _simulated_blocks(minutes * 60.0, seed=1, block_s=10.0):
            writer.write(block)
            span = float(block.t_s[-1]) if len(block) else span
    return span


def replay_x_realtime(log: Path, stream_s: float) -> float:
    """Stream seconds per CPU second for reading ``log`` and running the engine over it."""
    start = time.process_time()
    reader = LogReader(log)
    engine = StrideEngine(Placement(reader.header.placement), reader.header.sample_rate_hz)
    for record in reader:
        if isinstance(record, SampleBlock):
            engine.process(record)
    engine.finish()
    return stream_s / (time.process_time() - start)


def _stream_inputs(athletes: int, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, n) timestamps and (S, n, 3) acc and gyro: a few simulated athletes, tiled."""
    distinct = min(athletes, 8)
    blocks = [
        SampleBlock.concat(list(_simulated_blocks(seconds, seed, 5.0))) for seed in range(distinct)
    ]
    n = min(len(b) for b in blocks)
    rows = [blocks[i % distinct] for i in range(athletes)]
    t = np.stack([b.t_s[:n] for b in rows])
    acc = np.stack([b.acc_g[:n] for b in rows])
    gyro = np.stack([b.gyro_dps[:n] for b in rows if b.gyro_dps is not None])
    return t, acc, gyro


def stream_bank(athletes: int, seconds: float) -> tuple[float, float]:
    """(CPU ms per athlete per stream second, p99 ms of one bank call) at 20 ms blocks."""
    t, acc, gyro = _stream_inputs(athletes, seconds)
    bank = EngineBank(Placement.FOOT, FS_HZ, [AthleteConfig() for _ in range(athletes)])
    step = round(BLOCK_S * FS_HZ)
    calls = []
    cpu0 = time.process_time()
    for i in range(0, t.shape[1], step):
        w0 = time.perf_counter()
        bank.process(t[:, i : i + step], acc[:, i : i + step], gyro[:, i : i + step])
        calls.append(time.perf_counter() - w0)
    cpu = time.process_time() - cpu0
    return cpu * 1000.0 / (athletes * seconds), float(np.percentile(calls, 99) * 1000.0)


def single_stream(seconds: float) -> tuple[float, float]:
    """(CPU ms per stream second, p99 ms per 20 ms block) of one athlete's engine."""
    block = SampleBlock.concat(list(_simulated_blocks(seconds, 3, 5.0)))
    engine = StrideEngine(Placement.FOOT, FS_HZ)
    step = round(BLOCK_S * FS_HZ)
    calls = []
    cpu0 = time.process_time()
    for i in range(0, len(block), step):
        w0 = time.perf_counter()
        engine.process(block.slice(i, i + step))
        calls.append(time.perf_counter() - w0)
    cpu = time.process_time() - cpu0
    return cpu * 1000.0 / seconds, float(np.percentile(calls, 99) * 1000.0)


def memory_growth(log: Path, stream_s: float) -> tuple[float, float]:
    """Traced MB held by a running engine after the first sixth of ``log`` and at its end."""
    reader = LogReader(log)
    engine = StrideEngine(Placement(reader.header.placement), reader.header.sample_rate_hz)
    early: float | None = None
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for record in reader:
            if not isinstance(record, SampleBlock) or not len(record):
                continue
            for start in range(0, len(record), round(FS_HZ)):  # 1 s blocks
                engine.process(record.slice(start, start + round(FS_HZ)))
            if early is None and record.t_s[-1] >= stream_s / 6:
                early = (tracemalloc.get_traced_memory()[0] - base) / 1e6
        end = (tracemalloc.get_traced_memory()[0] - base) / 1e6
    finally:
        tracemalloc.stop()
    return (end if early is None else early), end


def run_bench(
    *,
    minutes: float = 60.0,
    athletes: int = 500,
    stream_seconds: float = 20.0,
    repeats: int = 3,
    progress: Console | None = None,
) -> dict[str, Any]:
    """Every figure of ``stridecue bench``, as one flat dict whose keys carry their units."""

    def say(text: str) -> None:
        if progress is not None:
            progress.print(f"[dim]{text}[/dim]")

    def median_of(fn: Callable[[], Any]) -> list[Any]:
        return [fn() for _ in range(repeats)]

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "session.log"
        say(f"simulating a {minutes:.0f}-minute 200 Hz foot session…")
        stream_s = _write_session_log(log, minutes)
        say("offline replay…")
        replay = statistics.median(median_of(lambda: replay_x_realtime(log, stream_s)))
        say("memory over the session…")
        mem_early, mem_end = memory_growth(log, stream_s)
    say(f"streaming {athletes} athletes in one bank, 20 ms blocks…")
    bank = median_of(lambda: stream_bank(athletes, stream_seconds))
    say("streaming one athlete, 20 ms blocks…")
    single = median_of(lambda: single_stream(stream_seconds))
    cpu_ms = statistics.median(b[0] for b in bank)
    return {
        "session_minutes": round(stream_s / 60.0, 2),
        "replay_x_realtime": round(replay, 1),
        "stream_athletes": athletes,
        "stream_cpu_ms_per_stream_s": round(cpu_ms, 4),
        "athletes_per_core": round(1000.0 / cpu_ms, 1),
        "bank_block_p99_ms": round(statistics.median(b[1] for b in bank), 3),
        "single_stream_cpu_ms_per_stream_s": round(statistics.median(s[0] for s in single), 4),
        "stream_block_p99_ms": round(statistics.median(s[1] for s in single), 4),
        "memory_first_sixth_mb": round(mem_early, 3),
        "memory_end_mb": round(mem_end, 3),
        "memory_growth_mb": round(mem_end - mem_early, 3),
        "repeats": repeats,
    }
