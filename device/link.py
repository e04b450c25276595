"""Keep one BLE device streaming: scan, connect, start, watch, and reconnect after a loss.

The notification callback only enqueues: a bounded queue between bleak and the consumer drops the
OLDEST notification when full (the newest data matter most in real time), and counts it. A link is
lost when bleak reports a disconnection or when no notification arrives for ``silent_s`` while
"connected" (a peripheral that died abruptly leaves bleak believing it is connected). Every
reconnection starts with a fresh scan: a stale device handle cannot be reused (BlueZ forgets
unconnected devices). The profile's stop command is sent on every exit path that still has a link,
and a reconnection stops any stream left running before it starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from device.errors import DeviceError

log = logging.getLogger(__name__)


class Driver(Protocol):
    """What a profile does on a connected client (see ``device.drivers``)."""

    name: str
    notify_uuids: tuple[str, ...]

    async def start(self, client: BleakClient) -> None:
        """Configure and start streaming (stopping any stream left running first)."""

    async def stop(self, client: BleakClient) -> None:
        """Stop streaming; called on every exit path that still has a link."""


@dataclass(frozen=True, slots=True)
class LinkConfig:
    silent_s: float = 3.0  # no notification for this long while connected: the link is lost
    queue_size: int = 4096  # notifications between the bleak callback and the consumer
    scan_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    stop_timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class RawNotification:
    """One notification as received: host time (s since the link opened), characteristic, bytes."""

    host_t_s: float
    characteristic: str
    data: bytes


def matcher(target: str) -> Callable[[BLEDevice, AdvertisementData], bool]:
    """Match a device by address (case-insensitive) or by advertised name."""
    wanted = target.lower()

    def match(device: BLEDevice, adv: AdvertisementData) -> bool:
        name = adv.local_name or device.name or ""
        return device.address.lower() == wanted or name.lower() == wanted

    return match


class Link:
    """A self-healing connection to ``target`` (a name or an address), streaming via ``driver``.

    Use as ``async with Link(...) as link: async for n in link.notifications(): ...``.
    """

    def __init__(
        self,
        target: str,
        driver: Driver,
        config: LinkConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.driver = driver
        self.config = config or LinkConfig()
        self._clock = clock
        self._t0 = clock()
        self._queue: asyncio.Queue[RawNotification] = asyncio.Queue(self.config.queue_size)
        self._last_rx = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self._failure_raised = False
        self.connected = asyncio.Event()
        # counters
        self.connects = 0
        self.losses = 0
        self.silent_losses = 0
        self.dropped = 0
        self.received = 0

    async def __aenter__(self) -> Link:
        self._task = asyncio.create_task(self._run(), name=f"ble-link-{self.target}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                if not self._failure_raised:  # never seen by the consumer: do not lose it
                    raise

    async def notifications(self) -> AsyncIterator[RawNotification]:
        """Every notification in arrival order; raises what ended the link (a ``DeviceError``
        from the driver, such as a refused start) instead of waiting forever."""
        while True:
            if self._queue.empty():
                getter = asyncio.ensure_future(self._queue.get())
                await self._until(getter)
                yield getter.result()
            else:
                yield self._queue.get_nowait()

    async def wait_connected(self) -> None:
        """Return once the device streams; raises what ended the link if it died first."""
        await self._until(asyncio.ensure_future(self.connected.wait()))

    async def _until(self, waiter: asyncio.Future[Any]) -> None:
        """Wait for ``waiter``, or raise if the link task ends first (it only ends on an error)."""
        if self._task is None:
            raise DeviceError("the link is not open: use it as `async with Link(...)`")
        try:
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiter.done():
                waiter.cancel()
        if waiter.done() and not waiter.cancelled():
            return
        failure = None if self._task.cancelled() else self._task.exception()
        if failure is not None:
            self._failure_raised = True
            raise failure
        raise DeviceError(f"{self.target}: the link was closed")

    def _on_notify(self, char: BleakGATTCharacteristic, data: bytearray) -> None:
        now = self._clock()
        self._last_rx = now
        self.received += 1
        item = RawNotification(now - self._t0, char.uuid, bytes(data))
        if self._queue.full():
            self._queue.get_nowait()  # drop the oldest: real time wants the newest
            self.dropped += 1
        self._queue.put_nowait(item)

    async def _run(self) -> None:
        backoff = self.config.backoff_initial_s
        while True:
            delivered = await self._session()
            if delivered:
                backoff = self.config.backoff_initial_s
            delay = backoff * random.uniform(0.8, 1.2)
            log.info("%s: reconnecting in %.1f s", self.target, delay)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.config.backoff_max_s)

    async def _session(self) -> bool:
        """One scan-connect-stream cycle; True if it delivered data before it ended."""
        try:
            device = await BleakScanner.find_device_by_filter(
                matcher(self.target), timeout=self.config.scan_timeout_s
            )
        except BleakError as e:
            log.warning("%s: scan failed: %s", self.target, e)
            return False
        if device is None:
            log.info("%s: not found in a %.0f s scan", self.target, self.config.scan_timeout_s)
            return False
        lost = asyncio.Event()
        received_before = self.received
        try:
            async with BleakClient(
                device,
                disconnected_callback=lambda _: lost.set(),
                timeout=self.config.connect_timeout_s,
            ) as client:
                try:
                    await self.driver.start(client)
                    for uuid in self.driver.notify_uuids:
                        await client.start_notify(uuid, self._on_notify)
                    self.connects += 1
                    self._last_rx = self._clock()
                    self.connected.set()
                    log.info("%s: streaming (%s)", self.target, self.driver.name)
                    await self._watch(lost)
                finally:
                    self.connected.clear()
                    if client.is_connected and not lost.is_set():
                        # Shielded: a Ctrl-C must not cut the stop command short; bounded: a
                        # silent peripheral must not hang the exit.
                        stop = asyncio.wait_for(
                            self.driver.stop(client), self.config.stop_timeout_s
                        )
                        with contextlib.suppress(BleakError, TimeoutError, EOFError):
                            await asyncio.shield(stop)
        except (BleakError, TimeoutError, EOFError, OSError) as e:
            log.warning("%s: link error: %s", self.target, e)
        return self.received > received_before

    async def _watch(self, lost: asyncio.Event) -> None:
        """Return when the link is lost: a disconnection, or silence."""
        silent_s = self.config.silent_s
        while True:
            quiet_for = self._clock() - self._last_rx
            if quiet_for >= silent_s:
                self.losses += 1
                self.silent_losses += 1
                log.warning(
                    "%s: no data for %.1f s: treating the link as lost", self.target, quiet_for
                )
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=silent_s - quiet_for)
                self.losses += 1
                log.warning("%s: disconnected", self.target)
                return
