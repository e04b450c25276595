"""Where samples come from: a recorded log, a running-truth CSV, or the simulated athlete.

Every source has the same small interface, so the session runner (and the tests) swap the source,
never the code that consumes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from device.drivers import RscDriver, StreamDecoder, decoder_from_log, notify_uuids_of
from dsp.events import Cue, Placement
from dsp.samples import CadenceReading, SampleBlock
from firmware_sim.runner import SimulatedAthlete
from recordings.logfile import LogHeader, Notification
from recordings.trials import open_source

Reading = SampleBlock | CadenceReading


class _Sensor(Protocol):
    @property
    def placement(self) -> Placement: ...

    @property
    def fs_hz(self) -> float | None:
        """Nominal sample rate; ``None`` for a cadence-only sensor."""

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
    """A ``.log`` recording or a running-truth ``.csv``, replayed in recorded order.

    A Bluetooth recording (its header's ``extra`` names a ``profile`` and its ``config``) replays
    its NOTIFICATION records through that profile's stream decoder, the very code path of the live
    ``device.source.BleSource``: the same bytes at the same host times give the same readings.
    """

    path: Path
    header: LogHeader
    placement: Placement
    fs_hz: float | None
    _records: Iterator[object]
    decoder: StreamDecoder | None = None
    notify_uuids: tuple[str, ...] = ()

    @classmethod
    def open(cls, path: Path | str) -> RecordedSource:
        header, records = open_source(path)
        rate: float | None = header.sample_rate_hz or None
        decoder: StreamDecoder | None = None
        uuids: tuple[str, ...] = ()
        if "profile" in header.extra:
            decoder = decoder_from_log(header.extra)
            uuids = notify_uuids_of(header.extra["profile"])
            if header.extra["profile"] == RscDriver.name:
                rate = None  # cadence readings, not samples
        placement = Placement.parse(header.placement)
        return cls(Path(path), header, placement, rate, records, decoder, uuids)

    def __iter__(self) -> Iterator[Reading]:
        for record in self._records:
            if isinstance(record, SampleBlock | CadenceReading):
                yield record
            elif (
                isinstance(record, Notification)
                and self.decoder is not None
                and record.characteristic in self.notify_uuids
            ):
                yield from self.decoder.feed(record.host_t_s, record.data)

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
