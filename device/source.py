"""A Bluetooth device as a source of the engine's input: a ``Link`` feeding a profile's decoder.

``BleSource`` is the live counterpart of replaying a recording: every notification goes, with its
host receive time, through the same stream decoder that ``recordings.sources.RecordedSource`` uses
on a recording's NOTIFICATION records, so a recorded session replays to identical blocks.

One decoder lives as long as the source, across reconnections. Every decoder tells a hole from a
restart by itself: the raw-IMU stream by its sequence number and device clock (lost packets are
counted, a restarted device remaps its clock), the Polar stream by its frame timestamps (a hole is
laid out and counted, a power-cycled clock remaps), the WitMotion stream by the lateness of its
sample counter against the host clock (the missing time is counted as lost), and the RSC stream
keeps its detected cadence unit. The decoder's configuration (rate, ranges, scale) cannot change
mid-session: the drivers refuse a device that comes back configured differently, since the engine
was built for the first configuration. That keeps a recording's header (one configuration) true
for the whole file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from device.drivers import Driver, StreamDecoder
from device.errors import DeviceError, DeviceNotFoundError
from device.link import Link, LinkConfig, RawNotification
from dsp.events import Cue, CueKind, Placement
from dsp.samples import CadenceReading, SampleBlock

Reading = SampleBlock | CadenceReading


class BleSource:
    """Readings from a BLE device, for ``recordings.runner.run_session``.

    Use as ``async with BleSource(...) as source:``. Entering opens the link and waits for the
    first connection (at most ``first_connect_s``): only then is ``fs_hz`` known, since a driver
    may choose the rate from what the device offers (Polar starts at its highest). Iteration ends
    after a ``session_done`` cue comes back through ``on_cue``, or after ``close()``.

    Parameters
    ----------
    target : str
        The device's advertised name or its address.
    driver : Driver
        The profile (``device.drivers``).
    placement : Placement
        Where the sensor is worn.
    link_config : LinkConfig | None
        Reconnection, silence and queue settings.
    recorder : callable | None
        Called with every raw notification before it is decoded (e.g. to write a ``.log``).
    on_cue : callable | None
        Called with every cue the engine issues (e.g. to play it, or to drive a simulator).
    clock : callable
        Host clock, seconds (a test runs an accelerated simulator on a scaled clock).
    first_connect_s : float
        How long entering waits for the device before ``DeviceNotFoundError``.
    """

    def __init__(
        self,
        target: str,
        driver: Driver,
        *,
        placement: Placement,
        link_config: LinkConfig | None = None,
        recorder: Callable[[RawNotification], None] | None = None,
        on_cue: Callable[[Cue], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        first_connect_s: float = 30.0,
    ) -> None:
        self.placement = placement
        self.driver = driver
        self.link = Link(target, driver, link_config, clock=clock)
        self.recorder = recorder
        self.first_connect_s = first_connect_s
        self._on_cue = on_cue
        self._decoder: StreamDecoder | None = None
        self._done = False

    @property
    def fs_hz(self) -> float | None:
        """The stream's sample rate once connected; ``None`` for a cadence-only device."""
        self._require_decoder()
        return self.driver.fs_hz

    @property
    def decoder(self) -> StreamDecoder:
        return self._require_decoder()

    def _require_decoder(self) -> StreamDecoder:
        if self._decoder is None:
            raise DeviceError("the source is not connected yet: use it as `async with BleSource`")
        return self._decoder

    async def __aenter__(self) -> BleSource:
        await self.link.__aenter__()
        try:
            async with asyncio.timeout(self.first_connect_s):
                await self.link.wait_connected()
        except TimeoutError:
            await self.link.__aexit__(None, None, None)
            raise DeviceNotFoundError(self.link.target, self.first_connect_s) from None
        except BaseException:
            await self.link.__aexit__(None, None, None)
            raise
        self._decoder = self.driver.decoder()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.link.__aexit__(exc_type, exc, tb)

    def __aiter__(self) -> AsyncIterator[Reading]:
        return self._readings()

    async def _readings(self) -> AsyncIterator[Reading]:
        decoder = self._require_decoder()
        wanted = set(self.driver.notify_uuids)
        async for n in self.link.notifications():
            if self.recorder is not None:
                self.recorder(n)
            if n.characteristic in wanted:
                for reading in decoder.feed(n.host_t_s, n.data):
                    yield reading
                    if self._done:  # the engine's last cue came back while we were suspended
                        return
            if self._done:
                return

    def on_cue(self, cue: Cue) -> None:
        if self._on_cue is not None:
            self._on_cue(cue)
        if cue.kind is CueKind.SESSION_DONE:
            self._done = True

    def close(self) -> None:
        """End the iteration after the notification being handled."""
        self._done = True

    def counters(self) -> dict[str, int]:
        """The link's and the decoder's counters, for a status line or a report."""
        d = self._require_decoder()
        link = self.link
        return {
            "connects": link.connects,
            "losses": link.losses,
            "silent_losses": link.silent_losses,
            "received": link.received,
            "dropped": link.dropped,
            "packets": d.packets,
            "lost_packets": d.lost_packets,
            "lost_samples": d.lost_samples,
            "malformed": d.malformed,
        }
