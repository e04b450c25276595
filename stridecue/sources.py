"""Where samples come from: a recorded log, a running-truth CSV, or the simulated athlete.

Every source has the same small interface, so the session runner (and the tests) swap the source,
never the code that consumes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dsp.events import Cue, Placement
from dsp.samples import CadenceReading, SampleBlock
from firmware_sim.runner import SimulatedAthlete
from stridecue.logfile import LogHeader
from stridecue.trials import open_source

Reading = SampleBlock | CadenceReading


class _Sensor(Protocol):
    placement: Placement
    fs_hz: float | None  # None: a cadence-only sensor

    def on_cue(self, cue: Cue) -> None:
        """A cue the runner hears (a closed-loop source reacts; others ignore it)."""


class SyncSource(_Sensor, Protocol):
    """Sample blocks (or cadence readings) read as fast as asked: a log, the simulator."""

    def __iter__(self) -> Iterator[Reading]: ...


class AsyncSource(_Sensor, Protocol):
    """Sample blocks (or cadence readings) as a live sensor delivers them: a Bluetooth device."""

    def __aiter__(self) -> AsyncIterator[Reading]: ...


Source = SyncSource | AsyncSource


async def readings(source: Source) -> AsyncIterator[Reading]:
    """Iterate any source asynchronously."""
    if hasattr(source, "__aiter__"):
        async for reading in source:
            yield reading
    else:
        for reading in source:
            yield reading


@dataclass
class RecordedSource:
    """A ``.log`` recording or a running-truth ``.csv``, replayed in recorded order."""

    path: Path
    header: LogHeader
    placement: Placement
    fs_hz: float | None
    _records: Iterator[object]

    @classmethod
    def open(cls, path: Path | str) -> RecordedSource:
        header, records = open_source(path)
        rate = header.sample_rate_hz
        return cls(Path(path), header, Placement.parse(header.placement), rate or None, records)

    def __iter__(self) -> Iterator[Reading]:
        for record in self._records:
            if isinstance(record, SampleBlock | CadenceReading):
                yield record

    def on_cue(self, cue: Cue) -> None:
        """A recording cannot react."""


class SimulatedSource:
    """A simulated athlete (closed- or open-loop), read in blocks of ``block_s`` until done."""

    def __init__(self, athlete: SimulatedAthlete, *, block_s: float = 0.02) -> None:
        self.athlete = athlete
        self.placement = athlete.placement
        self.fs_hz: float | None = athlete.fs_hz
        self.block_s = block_s

    def __iter__(self) -> Iterator[Reading]:
        while not self.athlete.done:
            yield self.athlete.read(self.block_s)

    def on_cue(self, cue: Cue) -> None:
        self.athlete.on_cue(cue)
