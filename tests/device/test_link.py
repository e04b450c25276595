"""The self-healing link through unmodified bleak: reconnection through a fresh scan after a
link loss, a silent link treated as lost, and the counted drop-oldest queue."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from bleak import BleakClient

from device.link import Link, LinkConfig
from firmware_sim.bluez import Characteristic, EmulatedPeripheral, Service
from firmware_sim.bluez.testing import emulated_bluez

pytestmark = pytest.mark.ble

NAME = "Counter Pod"
ADDRESS = "C0:FF:EE:00:00:02"
SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
DATA = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
TIMEOUT_S = 10.0
FAST = LinkConfig(silent_s=0.5, scan_timeout_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.2)


class CountingDriver:
    """Nothing to configure: counts its starts and stops."""

    name = "counter"
    notify_uuids: tuple[str, ...] = (DATA,)

    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0

    async def start(self, client: BleakClient) -> None:
        self.starts += 1

    async def stop(self, client: BleakClient) -> None:
        self.stops += 1


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=40))


async def until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    """Poll ``condition`` with a deadline (link counters have no event to await)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


class Counter:
    """A peripheral notifying an increasing u32 every ``period_s`` while subscribed."""

    def __init__(self, period_s: float = 0.01) -> None:
        self.peripheral = EmulatedPeripheral(
            NAME, ADDRESS, [Service(SERVICE, [Characteristic(DATA, ["notify"])])]
        )
        self.period_s = period_s
        self.sent = 0
        self.paused = False

    async def send(self, count: int) -> None:
        for _ in range(count):
            await self.peripheral.notify(DATA, struct.pack("<I", self.sent))
            self.sent += 1

    async def stream(self) -> None:
        while True:
            if not self.paused and await self.peripheral.notify(DATA, struct.pack("<I", self.sent)):
                self.sent += 1
            await asyncio.sleep(self.period_s)


@contextlib.asynccontextmanager
async def streaming(pod: Counter) -> AsyncIterator[None]:
    async with emulated_bluez(pod.peripheral), asyncio.TaskGroup() as tasks:
        producer = tasks.create_task(pod.stream(), name="counter-pod")
        try:
            yield
        finally:
            producer.cancel()


def values(items: list[bytes]) -> list[int]:
    return [struct.unpack("<I", d)[0] for d in items]


def test_reconnects_after_a_link_loss_through_a_fresh_scan() -> None:
    pod = Counter()
    driver = CountingDriver()

    async def scenario() -> None:
        async with streaming(pod), Link(NAME, driver, FAST) as link:
            received: list[bytes] = []
            notes = link.notifications()
            await link.wait_connected()
            while len(received) < 10:
                received.append((await anext(notes)).data)
            # BlueZ forgets the device as the link drops: the old handle now names nothing, so
            # only a new scan (which hears it advertise again) can connect.
            pod.peripheral.forget()
            await until(lambda: link.connects == 2)
            before = pod.sent
            while values(received)[-1] < before + 10:
                received.append((await anext(notes)).data)
            assert link.losses == 1 and link.silent_losses == 0
            # in order, nothing twice, nothing out of thin air
            got = values(received)
            assert got == sorted(set(got)) and got[-1] < pod.sent
        await pod.peripheral.wait_disconnected()

    run(scenario)
    assert driver.starts == 2
    assert driver.stops == 1  # the lost link could not be stopped; the closing one was


def test_a_silent_link_is_treated_as_lost_and_reconnected() -> None:
    pod = Counter()
    driver = CountingDriver()

    async def scenario() -> None:
        async with streaming(pod), Link(NAME, driver, FAST) as link:
            await link.wait_connected()
            pod.paused = True  # connected, subscribed, but nothing comes
            await until(lambda: link.silent_losses == 1)
            assert link.losses == 1
            pod.paused = False
            await until(lambda: link.connects == 2)
            await until(lambda: link.received > 0 and link.connected.is_set())

    run(scenario)
    assert driver.starts == 2
    assert driver.stops >= 1  # the silent link was still up: its stream was stopped


def test_a_slow_consumer_loses_the_oldest_notifications_counted() -> None:
    pod = Counter(period_s=3600.0)  # only the explicit burst below
    config = LinkConfig(silent_s=30.0, queue_size=8)

    async def scenario() -> None:
        async with streaming(pod), Link(NAME, CountingDriver(), config) as link:
            await link.wait_connected()
            await pod.peripheral.wait_subscribed(DATA)
            first = pod.sent
            await pod.send(50)
            await until(lambda: link.received == pod.sent - first)
            notes = link.notifications()
            kept = [(await anext(notes)).data for _ in range(8)]
            assert values(kept) == list(range(pod.sent - 8, pod.sent))  # the newest survive
            assert link.dropped == pod.sent - first - 8

    run(scenario)
