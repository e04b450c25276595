"""A simulated BLE peripheral, served through an emulated BlueZ that unmodified bleak talks to.

The peripheral owns ``org.bluez`` on a private bus (see :mod:`firmware_sim.bluez.bus`) and plays
both ends of BlueZ at once: the adapter the client scans with, and the remote device's GATT
database as BlueZ would expose it after service discovery. The link lifecycle follows BlueZ's
signal order, which bleak depends on:

- connect: ``Connected`` true, GATT objects exported, then ``ServicesResolved`` true;
- disconnect (client or peripheral side): ``ServicesResolved`` false, ``Connected`` false, then
  the GATT objects removed, which fires bleak's disconnected callback;
- while the adapter discovers and the link is down, ``RSSI`` is re-emitted every advertising
  interval, since bleak only sees an advertiser through ``Device1`` signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.constants import ErrorType, RequestNameReply
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface

from firmware_sim.bluez.objects import (
    ADAPTER_PATH,
    CCCD_UUID,
    Adapter,
    Device,
    GattCharacteristic,
    GattDescriptor,
    GattService,
    device_path,
)

WriteHandler = Callable[[bytes], Awaitable[bytes | None] | bytes | None]
"""Called with the bytes a client wrote. Bytes it returns are sent back on the same
characteristic as a notification/indication once the write is acknowledged (a control point's
response), if the client subscribed."""

_FLAGS = frozenset({"broadcast", "read", "write-without-response", "write", "notify", "indicate"})
_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"
_MIN_MTU, _MAX_MTU = 23, 517  # Core spec: ATT_MTU is at least 23; 517 is BlueZ's maximum
_PROPERTIES = "org.freedesktop.DBus.Properties"
_CHARACTERISTIC = "org.bluez.GattCharacteristic1"


def normalize_uuid(uuid: str) -> str:
    """Full lower-case 128-bit form of a 16-bit, 32-bit or 128-bit UUID string."""
    text = uuid.lower().removeprefix("0x")
    if re.fullmatch(r"[0-9a-f]{4}", text):
        return f"0000{text}{_BASE_UUID_TAIL}"
    if re.fullmatch(r"[0-9a-f]{8}", text):
        return f"{text}{_BASE_UUID_TAIL}"
    if re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", text):
        return text
    raise ValueError(f"not a Bluetooth UUID: {uuid!r} (use 16-bit '2a53' or 128-bit form)")


class PeripheralError(RuntimeError):
    """The emulated peripheral could not start on the given bus."""


class AttError(Exception):
    """Raise from a write handler to refuse the write with an ATT error code.

    bleak raises ``BleakGATTProtocolError`` with the same code on the client side.
    """

    def __init__(self, code: int) -> None:
        if not 0x01 <= code <= 0xFF:
            raise ValueError(f"ATT error codes are 0x01..0xFF, got {code:#x}")
        super().__init__(f"ATT error {code:#04x}")
        self.code = code


@dataclass
class Characteristic:
    """One characteristic of the simulated GATT database.

    ``flags`` are BlueZ's: ``read``, ``write``, ``write-without-response``, ``notify``,
    ``indicate``. ``value`` is what a read returns. Without ``on_write`` a write replaces it.
    """

    uuid: str
    flags: list[str]
    value: bytes = b""
    on_write: WriteHandler | None = None


@dataclass
class Service:
    """A primary service and its characteristics."""

    uuid: str
    characteristics: list[Characteristic]


@dataclass
class _Attribute:
    spec: Characteristic
    path: str
    iface: GattCharacteristic
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


class _EagainTolerantSocket:
    """Reports "0 bytes written" instead of raising when the socket buffer is full.

    dbus-fast treats ``EAGAIN`` as fatal and drops the connection (python-dbus-next #153); with
    zero bytes written its writer keeps the message queued and waits for the socket instead.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: Any) -> int:
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class EmulatedPeripheral:
    """A BLE peripheral served through an emulated BlueZ (``org.bluez``) on a private bus.

    Parameters
    ----------
    name
        The advertised local name (bleak's ``BLEDevice.name``).
    address
        The public device address, ``AA:BB:CC:DD:EE:FF``.
    services
        The GATT database. Characteristic UUIDs must be unique across services.
    mtu
        The negotiated ATT MTU (23–517). Notifications and write commands carry at most
        ``mtu - 3`` bytes; bleak reports that as ``max_write_without_response_size``.
    advertised_uuids
        Service UUIDs in the advertisement; all of ``services`` when omitted.
    rssi
        Signal strength reported with every advertisement (dBm).
    advertising_interval_s
        Time between advertisements while a client discovers and the link is down.
    manufacturer_data, service_data
        Optional advertisement payloads (company id or service UUID → bytes).
    """

    def __init__(
        self,
        name: str,
        address: str,
        services: list[Service],
        *,
        mtu: int = 247,
        advertised_uuids: list[str] | None = None,
        rssi: int = -50,
        advertising_interval_s: float = 0.1,
        manufacturer_data: dict[int, bytes] | None = None,
        service_data: dict[str, bytes] | None = None,
    ) -> None:
        address = address.upper()
        if not _ADDRESS.match(address):
            raise ValueError(f"not a Bluetooth address: {address!r} (use AA:BB:CC:DD:EE:FF)")
        if not _MIN_MTU <= mtu <= _MAX_MTU:
            raise ValueError(f"mtu must be {_MIN_MTU}..{_MAX_MTU}, got {mtu}")
        if not -127 <= rssi <= 20:
            raise ValueError(f"rssi must be -127..20 dBm, got {rssi}")
        if advertising_interval_s <= 0:
            raise ValueError(f"advertising_interval_s must be > 0, got {advertising_interval_s}")
        self.name = name
        self.address = address
        self.mtu = mtu
        self.path = device_path(address)
        self._rssi = rssi
        self._advertising_interval_s = advertising_interval_s
        if advertised_uuids is None:
            advertised_uuids = [s.uuid for s in services]
        self._advertised = [normalize_uuid(u) for u in advertised_uuids]
        self._adapter = Adapter(
            "00:00:5E:00:53:00",  # documentation range (RFC 7042): never a real controller
            on_discovery=self._on_discovery,
            on_remove_device=self._on_remove_device,
        )
        self._device = Device(
            address=address,
            name=name,
            uuids=self._advertised,
            rssi=rssi,
            manufacturer_data=dict(manufacturer_data or {}),
            service_data={normalize_uuid(k): v for k, v in (service_data or {}).items()},
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
        )
        self._gatt: list[tuple[str, ServiceInterface]] = []
        self._chars: dict[str, _Attribute] = {}
        self._build_gatt(services)

        self._bus: MessageBus | None = None
        self._exported: set[str] = set()
        self._advertiser: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()

    def _build_gatt(self, services: list[Service]) -> None:
        handle = 0x0001
        for service in services:
            service_path = f"{self.path}/service{handle:04x}"
            self._gatt.append((service_path, GattService(normalize_uuid(service.uuid), self.path)))
            handle += 1
            for spec in service.characteristics:
                uuid = normalize_uuid(spec.uuid)
                unknown = set(spec.flags) - _FLAGS
                if unknown:
                    raise ValueError(f"unknown flags {sorted(unknown)} on {uuid}")
                if uuid in self._chars:
                    raise ValueError(f"characteristic {uuid} appears twice")
                # BlueZ names a characteristic by its declaration handle; the value follows it.
                char_path = f"{service_path}/char{handle:04x}"
                iface = GattCharacteristic(
                    uuid=uuid,
                    service=service_path,
                    flags=spec.flags,
                    mtu=self.mtu,
                    read=partial(self._read_value, uuid),
                    on_write=partial(self._on_write, uuid),
                    on_subscribe=partial(self._on_subscribe, uuid),
                )
                self._gatt.append((char_path, iface))
                handle += 2
                if {"notify", "indicate"} & set(spec.flags):
                    desc = GattDescriptor(CCCD_UUID, char_path, read=self._cccd_reader(uuid))
                    self._gatt.append((f"{char_path}/desc{handle:04x}", desc))
                    handle += 1
                self._chars[uuid] = _Attribute(spec, char_path, iface)

    def _cccd_reader(self, uuid: str) -> Callable[[], bytes]:
        def read() -> bytes:
            attr = self._chars[uuid]
            if not attr.subscribed.is_set():
                return b"\x00\x00"
            return b"\x01\x00" if "notify" in attr.spec.flags else b"\x02\x00"

        return read

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, bus_address: str) -> None:
        """Connect to the bus, export the adapter and the (discoverable) device, own org.bluez."""
        if self._bus is not None:
            raise PeripheralError("the peripheral is already started")
        bus = MessageBus(bus_address=bus_address)
        await bus.connect()
        writer = getattr(bus, "_writer", None)
        if writer is not None and isinstance(getattr(writer, "sock", None), socket.socket):
            writer.sock = _EagainTolerantSocket(writer.sock)
        bus.add_message_handler(self._unknown_object)
        self._bus = bus
        self._export(ADAPTER_PATH, self._adapter)
        self._export(self.path, self._device)
        reply = await bus.request_name("org.bluez")
        if reply is not RequestNameReply.PRIMARY_OWNER:
            await self.stop()
            raise PeripheralError(
                "org.bluez is already owned on this bus: stop the other emulated BlueZ first"
            )

    async def stop(self) -> None:
        """Drop the link (so clients see a disconnect), unexport everything, leave the bus."""
        if self._bus is None:
            return
        if self._advertiser is not None:
            self._advertiser.cancel()
            self._advertiser = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.drop_link()
        for path in list(self._exported):
            self._unexport(path)
        await self._barrier()
        bus, self._bus = self._bus, None
        bus.disconnect()
        with contextlib.suppress(Exception):
            await bus.wait_for_disconnect()

    # --- state ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a client holds the link."""
        return self._connected.is_set()

    def subscribed(self, char_uuid: str) -> bool:
        """Whether the client enabled notifications/indications on this characteristic."""
        return self._attr(char_uuid).subscribed.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()

    async def wait_subscribed(self, char_uuid: str) -> None:
        await self._attr(char_uuid).subscribed.wait()

    def set_value(self, char_uuid: str, data: bytes) -> None:
        """Set what a read of this characteristic returns (no signal, as on a real device)."""
        self._attr(char_uuid).spec.value = bytes(data)

    async def notify(self, char_uuid: str, data: bytes) -> bool:
        """Send one notification (or indication); ``False`` when nobody is subscribed.

        Returns once the signal is written to the bus socket, which paces a producer to what the
        bus absorbs. ``data`` must fit one ATT packet (``mtu - 3`` bytes): cutting a stream into
        packets is the profile's job, as on real firmware.
        """
        attr = self._attr(char_uuid)
        if len(data) > self.mtu - 3:
            raise ValueError(f"{len(data)} bytes do not fit one packet at MTU {self.mtu}")
        if self._bus is None or not self.connected or not attr.subscribed.is_set():
            return False
        value = bytes(data)
        attr.iface.set_cached_value(value)
        await self._bus.send(
            Message.new_signal(
                attr.path,
                _PROPERTIES,
                "PropertiesChanged",
                "sa{sv}as",
                [_CHARACTERISTIC, {"Value": Variant("ay", value)}, []],
            )
        )
        return True

    # --- test controls -------------------------------------------------------------------------

    async def drop_link(self) -> None:
        """Peripheral-side disconnect (link loss), with BlueZ's signal order."""
        self._disconnect_now()
        await self._barrier()

    def forget(self) -> None:
        """BlueZ forgets the device: its ``Device1`` object goes, stale handles now fail.

        It reappears at the next advertisement a discovering client hears, with the same path.
        """
        self._disconnect_now()
        if self.path in self._exported:
            self._unexport(self.path)

    # --- BlueZ callbacks -----------------------------------------------------------------------

    async def _on_connect(self) -> None:
        if self.connected:
            return
        self._device.update({"Connected": True})
        for path, iface in self._gatt:
            self._export(path, iface)
        self._device.update({"ServicesResolved": True})
        self._disconnected.clear()
        self._connected.set()

    async def _on_disconnect(self) -> None:
        self._disconnect_now()

    def _disconnect_now(self) -> None:
        if not self.connected:
            return
        self._device.update({"ServicesResolved": False})
        self._device.update({"Connected": False})
        for path, _ in reversed(self._gatt):
            self._unexport(path)
        # A client's subscriptions end with the link (CCCDs of an unbonded client reset).
        for attr in self._chars.values():
            attr.subscribed.clear()
            attr.iface.reset_notifying()
        self._connected.clear()
        self._disconnected.set()

    def _on_discovery(self, active: bool) -> None:
        if active and self._advertiser is None:
            self._advertiser = asyncio.get_running_loop().create_task(
                self._advertise(), name=f"advertise {self.address}"
            )
        elif not active and self._advertiser is not None:
            self._advertiser.cancel()
            self._advertiser = None

    async def _advertise(self) -> None:
        while True:
            wanted = self._adapter.discovery_uuids
            if not self.connected and (not wanted or wanted & set(self._advertised)):
                if self.path in self._exported:
                    self._device.update({"RSSI": self._rssi}, always=True)
                else:
                    self._export(self.path, self._device)
            await asyncio.sleep(self._advertising_interval_s)

    def _on_remove_device(self, path: str) -> None:
        if path != self.path or path not in self._exported:
            raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
        self.forget()

    def _read_value(self, uuid: str) -> bytes:
        return self._chars[uuid].spec.value

    async def _on_write(self, uuid: str, data: bytes) -> None:
        attr = self._chars[uuid]
        handler = attr.spec.on_write
        if handler is None:
            attr.spec.value = data
            return
        try:
            result = handler(data)
            if inspect.isawaitable(result):
                result = await result
        except AttError as e:
            # BlueZ words ATT errors this way; bleak parses the code back out of the text.
            raise DBusError(
                "org.bluez.Error.Failed", f"Operation failed with ATT error: {e.code:#04x}"
            ) from e
        if result is not None:
            task = asyncio.get_running_loop().create_task(self._respond(uuid, bytes(result)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _respond(self, uuid: str, data: bytes) -> None:
        # The WriteValue reply is queued by a done-callback of the method's task, scheduled
        # after this task's first step: yielding once puts the response behind it, as ATT
        # orders a write response before the indication it triggers.
        await asyncio.sleep(0)
        await self.notify(uuid, data)

    def _on_subscribe(self, uuid: str, on: bool) -> None:
        event = self._chars[uuid].subscribed
        if on:
            event.set()
        else:
            event.clear()

    # --- bus plumbing --------------------------------------------------------------------------

    def _attr(self, char_uuid: str) -> _Attribute:
        try:
            return self._chars[normalize_uuid(char_uuid)]
        except KeyError:
            raise KeyError(f"no characteristic {char_uuid} on {self.name}") from None

    def _export(self, path: str, iface: ServiceInterface) -> None:
        assert self._bus is not None
        self._bus.export(path, iface)
        self._exported.add(path)

    def _unexport(self, path: str) -> None:
        assert self._bus is not None
        self._bus.unexport(path)
        self._exported.discard(path)

    def _unknown_object(self, msg: Message) -> Message | None:
        # dbus-fast answers calls on unknown paths with UnknownMethod; BlueZ (and bleak, which
        # tells a forgotten device by it) uses UnknownObject.
        if (
            msg.message_type is not MessageType.METHOD_CALL
            or (msg.interface or "").startswith("org.freedesktop.DBus.")
            or msg.path in self._exported
        ):
            return None
        return Message.new_error(
            msg, ErrorType.UNKNOWN_OBJECT.value, f'Method "{msg.member}" on unknown object'
        )

    async def _barrier(self) -> None:
        """Return once the daemon has routed everything sent so far (it works in order)."""
        if self._bus is None or not self._bus.connected:
            return
        await self._bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus.Peer",
                member="Ping",
            )
        )
