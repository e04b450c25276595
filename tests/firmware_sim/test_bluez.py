"""Unmodified bleak against the emulated BlueZ on a private dbus-daemon."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError, BleakGATTProtocolError
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from firmware_sim.bluez import (
    AttError,
    Characteristic,
    EmulatedPeripheral,
    PrivateBus,
    Service,
    normalize_uuid,
)
from firmware_sim.bluez.testing import BUS_ENV, EmulatedBlueZ, emulated_bluez

pytestmark = pytest.mark.ble

NAME = "Stridecue Pod"
ADDRESS = "AA:BB:CC:DD:EE:FF"
SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
DATA = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"  # notify
CONTROL = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"  # write + indicate: a control point
CONFIG = "6e400004-b5a3-f393-e0a9-e50e24dcca9e"  # read + write-without-response
BATTERY_SERVICE, BATTERY_LEVEL = "180f", "2a19"
TIMEOUT_S = 5.0


def make_peripheral(mtu: int = 247) -> tuple[EmulatedPeripheral, list[bytes]]:
    control_writes: list[bytes] = []

    async def on_control(data: bytes) -> bytes:
        if data[:1] == b"\xff":
            raise AttError(0x80)  # first application error code
        control_writes.append(data)
        return b"\x10" + data[:1] + b"\x01"  # response code, request opcode, success

    services = [
        Service(
            SERVICE,
            [
                Characteristic(DATA, ["notify"]),
                Characteristic(CONTROL, ["write", "indicate"], on_write=on_control),
                Characteristic(CONFIG, ["read", "write-without-response"], b"\x64\x00"),
            ],
        ),
        Service(BATTERY_SERVICE, [Characteristic(BATTERY_LEVEL, ["read", "notify"], b"\x5a")]),
    ]
    peripheral = EmulatedPeripheral(
        NAME,
        ADDRESS,
        services,
        mtu=mtu,
        advertised_uuids=[SERVICE],
        rssi=-63,
        manufacturer_data={0xFFFF: b"\x01\x02"},  # 0xFFFF: the SIG's id for tests
    )
    return peripheral, control_writes


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


async def find() -> BLEDevice:
    device = await BleakScanner.find_device_by_name(NAME, timeout=TIMEOUT_S)
    assert device is not None, "the emulated peripheral was not found by a scan"
    return device


@asynccontextmanager
async def connected(peripheral: EmulatedPeripheral) -> AsyncIterator[BleakClient]:
    """The emulated BlueZ serving ``peripheral``, and a bleak client connected to it."""
    async with emulated_bluez(peripheral), BleakClient(await find(), timeout=TIMEOUT_S) as client:
        yield client


async def owner_pid_of_bluez() -> int:
    """The pid owning org.bluez on whatever bus bleak would open as the system bus."""
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="GetConnectionUnixProcessID",
                signature="s",
                body=["org.bluez"],
            )
        )
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        return int(reply.body[0])
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()


def test_scan_finds_name_rssi_and_advertised_uuids_on_the_private_bus() -> None:
    peripheral, _ = make_peripheral()
    outside = os.environ[BUS_ENV]

    async def scenario() -> None:
        async with emulated_bluez(peripheral) as env:
            # bleak's system bus is the private daemon, where this process owns org.bluez.
            assert os.environ[BUS_ENV] == env.bus_address != outside
            assert await owner_pid_of_bluez() == os.getpid()
            found = await BleakScanner.discover(timeout=0.5, return_adv=True)
            device, adv = found[ADDRESS]
            assert device.name == NAME
            assert adv.local_name == NAME
            assert adv.rssi == -63
            assert adv.service_uuids == [SERVICE]
            assert adv.manufacturer_data == {0xFFFF: b"\x01\x02"}
            # A scan filtered on a service the pod does not advertise does not report it.
            heart_rate = normalize_uuid("180d")
            filtered = await BleakScanner.discover(timeout=0.3, service_uuids=[heart_rate])
            assert ADDRESS not in {d.address for d in filtered}

    run(scenario)
    assert os.environ[BUS_ENV] == outside


def test_connect_lists_the_gatt_tree_and_reads() -> None:
    peripheral, _ = make_peripheral()

    async def scenario() -> None:
        async with emulated_bluez(peripheral):
            async with BleakClient(await find(), timeout=TIMEOUT_S) as client:
                await peripheral.wait_connected()
                tree = {
                    s.uuid: {c.uuid: sorted(c.properties) for c in s.characteristics}
                    for s in client.services
                }
                assert tree == {
                    SERVICE: {
                        DATA: ["notify"],
                        CONTROL: ["indicate", "write"],
                        CONFIG: ["read", "write-without-response"],
                    },
                    normalize_uuid(BATTERY_SERVICE): {
                        normalize_uuid(BATTERY_LEVEL): ["notify", "read"]
                    },
                }
                data = client.services.get_characteristic(DATA)
                assert data is not None
                assert [d.uuid for d in data.descriptors] == [
                    "00002902-0000-1000-8000-00805f9b34fb"
                ]
                # Handles follow a GATT database: service, declaration, value, CCCD, ...
                service = client.services.get_service(SERVICE)
                assert service is not None
                assert data.handle == service.handle + 1
                assert data.descriptors[0].handle == data.handle + 2

                assert await client.read_gatt_char(CONFIG) == b"\x64\x00"
                assert await client.read_gatt_char(BATTERY_LEVEL) == b"\x5a"
                peripheral.set_value(BATTERY_LEVEL, b"\x59")
                assert await client.read_gatt_char(BATTERY_LEVEL) == b"\x59"
                with pytest.raises(BleakGATTProtocolError):
                    await client.read_gatt_char(DATA)  # not readable

                assert await client.read_gatt_descriptor(data.descriptors[0]) == b"\x00\x00"
                await client.start_notify(DATA, lambda _c, _d: None)
                await peripheral.wait_subscribed(DATA)
                assert await client.read_gatt_descriptor(data.descriptors[0]) == b"\x01\x00"
                await client.stop_notify(DATA)
                assert not peripheral.subscribed(DATA)
            await peripheral.wait_disconnected()

    run(scenario)


def test_writes_with_and_without_response_reach_the_handler() -> None:
    peripheral, control_writes = make_peripheral(mtu=23)

    async def scenario() -> None:
        async with connected(peripheral) as client:
            responses: asyncio.Queue[bytes] = asyncio.Queue()
            await client.start_notify(CONTROL, lambda _c, d: responses.put_nowait(bytes(d)))

            await client.write_gatt_char(CONTROL, b"\x01\x02\x03", response=True)
            assert control_writes == [b"\x01\x02\x03"]
            async with asyncio.timeout(TIMEOUT_S):
                assert await responses.get() == b"\x10\x01\x01"
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.write_gatt_char(CONTROL, b"\xff", response=True)
            assert refused.value.code == 0x80

            await client.write_gatt_char(CONFIG, b"\xc8\x00", response=False)
            assert await client.read_gatt_char(CONFIG) == b"\xc8\x00"
            with pytest.raises(BleakGATTProtocolError):  # over MTU - 3 = 20 bytes
                await client.write_gatt_char(CONFIG, bytes(21), response=False)
            with pytest.raises(BleakGATTProtocolError):  # no "write" flag
                await client.write_gatt_char(CONFIG, b"\x01", response=True)
            assert responses.empty()

    run(scenario)


def test_500_notifications_arrive_in_order_and_mtu_is_honoured() -> None:
    mtu = 64
    peripheral, _ = make_peripheral(mtu=mtu)
    count = 500

    async def scenario() -> None:
        async with connected(peripheral) as client:
            config = client.services.get_characteristic(CONFIG)
            assert config is not None
            assert config.max_write_without_response_size == mtu - 3

            received: list[bytes] = []
            all_in = asyncio.Event()

            def on_data(_c: BleakGATTCharacteristic, data: bytearray) -> None:
                received.append(bytes(data))
                if len(received) == count:
                    all_in.set()

            assert not await peripheral.notify(DATA, b"\x00")  # nobody subscribed yet
            await client.start_notify(DATA, on_data)
            await peripheral.wait_subscribed(DATA)
            with pytest.raises(ValueError, match="MTU"):
                await peripheral.notify(DATA, bytes(mtu - 2))
            # Unpaced: as fast as the bus takes them, full-size packets.
            for seq in range(count):
                assert await peripheral.notify(DATA, struct.pack("<I", seq) + bytes(mtu - 7))
            async with asyncio.timeout(TIMEOUT_S):
                await all_in.wait()
            assert [struct.unpack_from("<I", r)[0] for r in received] == list(range(count))
            assert {len(r) for r in received} == {mtu - 3}

    run(scenario)


def test_a_full_socket_buffer_does_not_kill_the_peripheral_bus() -> None:
    # dbus-fast drops its connection on EAGAIN; a 4 KiB send buffer makes a flood hit it often.
    peripheral, _ = make_peripheral()
    count = 3000

    async def scenario() -> None:
        async with connected(peripheral) as client:
            received: list[int] = []
            all_in = asyncio.Event()

            def on_data(_c: BleakGATTCharacteristic, data: bytearray) -> None:
                received.append(struct.unpack_from("<I", data)[0])
                if len(received) == count:
                    all_in.set()

            await client.start_notify(DATA, on_data)
            await peripheral.wait_subscribed(DATA)
            bus = peripheral._bus  # the socket has no public handle
            assert bus is not None and bus._sock is not None
            bus._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            for seq in range(count):
                assert await peripheral.notify(DATA, struct.pack("<I", seq) + bytes(240))
            async with asyncio.timeout(TIMEOUT_S):
                await all_in.wait()
            assert received == list(range(count))
            assert client.is_connected

    run(scenario)


def test_drop_link_fires_the_disconnected_callback() -> None:
    peripheral, _ = make_peripheral()

    async def scenario() -> None:
        async with emulated_bluez(peripheral):
            lost = asyncio.Event()
            client = BleakClient(
                await find(), disconnected_callback=lambda _c: lost.set(), timeout=TIMEOUT_S
            )
            await client.connect()
            await client.start_notify(DATA, lambda _c, _d: None)
            await peripheral.wait_subscribed(DATA)
            assert client.is_connected and peripheral.connected

            await peripheral.drop_link()
            async with asyncio.timeout(TIMEOUT_S):
                await lost.wait()
            assert not client.is_connected
            assert not peripheral.connected and not peripheral.subscribed(DATA)
            assert not await peripheral.notify(DATA, b"\x01")
            await client.disconnect()  # a no-op now, and must not raise

            # The peripheral advertises again and takes a new connection.
            async with BleakClient(await find(), timeout=TIMEOUT_S) as again:
                assert again.is_connected
                assert await again.read_gatt_char(CONFIG) == b"\x64\x00"

    run(scenario)


def test_forget_makes_a_stale_device_fail_until_a_fresh_scan() -> None:
    peripheral, _ = make_peripheral()

    async def scenario() -> None:
        async with emulated_bluez(peripheral):
            stale = await find()
            async with BleakClient(stale, timeout=TIMEOUT_S) as client:
                assert client.is_connected
            peripheral.forget()
            with pytest.raises(BleakError, match="not found"):
                await BleakClient(stale, timeout=TIMEOUT_S).connect()
            assert not peripheral.connected

            fresh = await find()
            assert fresh.details["path"] == stale.details["path"]
            async with BleakClient(fresh, timeout=TIMEOUT_S) as client:
                assert await client.read_gatt_char(BATTERY_LEVEL) == b"\x5a"

    run(scenario)


def test_unknown_object_paths_answer_like_bluez() -> None:
    peripheral, _ = make_peripheral()

    async def scenario() -> None:
        async with emulated_bluez(peripheral) as env:
            bus = await MessageBus(bus_address=env.bus_address).connect()
            try:
                reply = await bus.call(
                    Message(
                        destination="org.bluez",
                        path=f"{peripheral.path}/service0001/char0002",  # GATT is down
                        interface="org.bluez.GattCharacteristic1",
                        member="StartNotify",
                    )
                )
            finally:
                bus.disconnect()
                await bus.wait_for_disconnect()
            assert reply.error_name == "org.freedesktop.DBus.Error.UnknownObject"

    run(scenario)


def test_teardown_stops_the_daemon_and_restores_the_environment(tmp_path: Path) -> None:
    peripheral, _ = make_peripheral()
    seen: list[EmulatedBlueZ] = []
    outside = dict(os.environ)

    async def scenario() -> None:
        async with emulated_bluez(peripheral) as env:
            seen.append(env)
            assert Path(f"/proc/{env.daemon_pid}").exists()
            await BleakClient(await find(), timeout=TIMEOUT_S).connect()
        # The client was left connected: leaving the block dropped the link for it.
        assert not peripheral.connected

    run(scenario)
    assert not Path(f"/proc/{seen[0].daemon_pid}").exists()
    assert dict(os.environ) == outside

    bus = PrivateBus()
    address = bus.start()
    socket_dir = Path(address.split("path=")[1].split(",")[0]).parent
    bus.stop()
    bus.stop()  # idempotent
    assert not socket_dir.exists()


def test_notification_latency_at_1khz_paced() -> None:
    """Figures for the report: 1 kHz paced for 5 s through bleak, same process."""
    peripheral, _ = make_peripheral()
    rate_hz, duration_s = 1000, 5.0
    count = int(rate_hz * duration_s)
    latency_ns = np.zeros(count, dtype=np.int64)
    order: list[int] = []

    def on_data(_c: BleakGATTCharacteristic, data: bytearray) -> None:
        seq, sent_ns = struct.unpack("<Iq", data)
        latency_ns[seq] = time.perf_counter_ns() - sent_ns
        order.append(seq)

    async def scenario() -> float:
        async with connected(peripheral) as client:
            await client.start_notify(DATA, on_data)
            await peripheral.wait_subscribed(DATA)
            start = time.perf_counter()
            for seq in range(count):
                # Absolute deadlines: a late wake-up sends a short burst, never drifts.
                delay_s = start + seq / rate_hz - time.perf_counter()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                payload = struct.pack("<Iq", seq, time.perf_counter_ns())
                assert await peripheral.notify(DATA, payload)
            deadline = time.monotonic() + TIMEOUT_S
            while len(order) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return time.perf_counter() - start

    elapsed_s = asyncio.run(scenario())
    assert order == list(range(count)), f"lost {count - len(order)} of {count} notifications"
    p50_ms, p99_ms = np.percentile(latency_ns, [50, 99]) / 1e6
    print(
        f"\nBLE emulation 1 kHz paced {duration_s:.0f} s: {count} notifications, 0 lost, "
        f"{count / elapsed_s:.0f}/s, latency p50 {p50_ms:.2f} ms, p99 {p99_ms:.2f} ms"
    )
