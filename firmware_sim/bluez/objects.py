"""BlueZ's D-Bus object tree, as bleak's Linux backend sees it.

One ``ServiceInterface`` per BlueZ interface (``Adapter1``, ``Device1``, ``GattService1``,
``GattCharacteristic1``, ``GattDescriptor1``), exported at BlueZ's exact path shapes:
``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF/service000a/char000b/desc000d``. bleak derives the device
path and the attribute handles from fixed positions in those paths, so the shapes are not cosmetic.

These objects hold the properties and enforce what BlueZ enforces at the D-Bus level (flags,
offsets, lengths, with BlueZ's error names and messages, which bleak maps back to GATT errors);
what a peripheral does with a connection, a write or a subscription is delegated to callbacks
given by :mod:`firmware_sim.bluez.peripheral`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from dbus_fast import DBusError, Variant
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
    DBusUInt32,
)
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusPathList = Annotated[list[str], DBusSignature("ao")]
DBusManufacturerData = Annotated[dict[int, Variant], DBusSignature("a{qv}")]

ADAPTER_PATH = "/org/bluez/hci0"
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"
MAX_ATTRIBUTE_LEN = 512  # Core spec Vol 3 Part F 3.2.9: the longest attribute value
_READ = frozenset({"read", "encrypt-read", "encrypt-authenticated-read", "secure-read"})
_WRITE_REQUEST = frozenset({"write", "encrypt-write", "encrypt-authenticated-write"})
_SUBSCRIBE = frozenset({"notify", "indicate"})
_FILTER_KEYS = frozenset(
    {"UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern"}
)


def bluez_error(name: str, text: str) -> DBusError:
    """A D-Bus error reply as BlueZ words it (``org.bluez.Error.<name>``)."""
    return DBusError(f"org.bluez.Error.{name}", text)


def device_path(address: str) -> str:
    """``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF`` for ``AA:BB:CC:DD:EE:FF``."""
    return f"{ADAPTER_PATH}/dev_{address.upper().replace(':', '_')}"


class _BlueZInterface(ServiceInterface):
    """A ``ServiceInterface`` whose properties live in one dict, changed through :meth:`update`."""

    def __init__(self, name: str, props: dict[str, Any]) -> None:
        super().__init__(name)
        self._props = props

    def get(self, name: str) -> Any:
        return self._props[name]

    def update(self, changes: dict[str, Any], *, always: bool = False) -> None:
        """Set properties and emit one ``PropertiesChanged`` for those that changed.

        ``always`` re-emits unchanged values too: bleak only sees an advertiser through
        ``Device1`` property signals, so every advertisement has to produce one.
        """
        changed = {k: v for k, v in changes.items() if always or self._props[k] != v}
        self._props.update(changed)
        if changed:
            self.emit_properties_changed(changed)


class Adapter(_BlueZInterface):
    """``org.bluez.Adapter1``: powered, LE central, with reference-counted discovery sessions."""

    def __init__(
        self,
        address: str,
        *,
        on_discovery: Callable[[bool], None],
        on_remove_device: Callable[[str], None],
    ) -> None:
        super().__init__(
            "org.bluez.Adapter1",
            {
                "Address": address,
                "Discovering": False,
            },
        )
        self._on_discovery = on_discovery
        self._on_remove_device = on_remove_device
        self._sessions = 0
        self.discovery_uuids: frozenset[str] = frozenset()

    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusDict):
        unknown = set(properties) - _FILTER_KEYS
        if unknown:
            raise bluez_error("InvalidArguments", f"Invalid arguments in method call: {unknown}")
        uuids = properties.get("UUIDs")
        self.discovery_uuids = frozenset(u.lower() for u in uuids.value) if uuids else frozenset()

    @dbus_method()
    def StartDiscovery(self):
        self._sessions += 1
        if self._sessions == 1:
            self.update({"Discovering": True})
            self._on_discovery(True)

    @dbus_method()
    def StopDiscovery(self):
        if self._sessions == 0:
            raise bluez_error("Failed", "No discovery started")
        self._sessions -= 1
        if self._sessions == 0:
            self.update({"Discovering": False})
            self._on_discovery(False)

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath):
        self._on_remove_device(device)

    @dbus_method()
    def GetDiscoveryFilters(self) -> DBusStrList:
        return sorted(_FILTER_KEYS)

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return self.get("Address")

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return "stridecue-emulated-hci0"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return "stridecue-emulated-hci0"

    @dbus_property(access=PropertyAccess.READ)
    def Class(self) -> DBusUInt32:
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def Powered(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Pairable(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> DBusBool:
        return self.get("Discovering")

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> DBusStrList:
        return []

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> DBusStrList:
        # Without "central" bleak reports Bluetooth as unavailable.
        return ["central", "peripheral"]


class Device(_BlueZInterface):
    """``org.bluez.Device1``: what BlueZ knows of the remote peripheral, and its link."""

    def __init__(
        self,
        *,
        address: str,
        name: str,
        uuids: list[str],
        rssi: int,
        manufacturer_data: dict[int, bytes],
        service_data: dict[str, bytes],
        on_connect: Callable[[], Awaitable[None]],
        on_disconnect: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(
            "org.bluez.Device1",
            {
                "Address": address,
                "Name": name,
                "Alias": name,
                "UUIDs": uuids,
                "RSSI": rssi,
                "ManufacturerData": {k: Variant("ay", v) for k, v in manufacturer_data.items()},
                "ServiceData": {k: Variant("ay", v) for k, v in service_data.items()},
                "Connected": False,
                "ServicesResolved": False,
                "Paired": False,
                "Bonded": False,
                "Trusted": False,
            },
        )
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect

    @dbus_method()
    async def Connect(self):
        await self._on_connect()

    @dbus_method()
    async def Disconnect(self):
        await self._on_disconnect()

    @dbus_method()
    def ConnectProfile(self, uuid: DBusStr):
        raise bluez_error("NotSupported", "Operation is not supported")

    @dbus_method()
    def DisconnectProfile(self, uuid: DBusStr):
        raise bluez_error("NotSupported", "Operation is not supported")

    @dbus_method()
    def Pair(self):
        # "Just Works" pairing: no agent, no keys worth emulating.
        if self.get("Paired"):
            raise bluez_error("AlreadyExists", "Already Exists")
        self.update({"Paired": True, "Bonded": True})

    @dbus_method()
    def CancelPairing(self):
        raise bluez_error("DoesNotExist", "Does Not Exist")

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return self.get("Address")

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return self.get("Name")

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return self.get("Alias")

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> DBusObjectPath:
        return ADAPTER_PATH

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> DBusStrList:
        return self.get("UUIDs")

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> DBusInt16:
        return self.get("RSSI")

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> DBusManufacturerData:
        return self.get("ManufacturerData")

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> DBusDict:
        return self.get("ServiceData")

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> DBusBool:
        return self.get("Connected")

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> DBusBool:
        return self.get("ServicesResolved")

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> DBusBool:
        return self.get("Paired")

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> DBusBool:
        return self.get("Bonded")

    @dbus_property()
    def Trusted(self) -> DBusBool:
        return self.get("Trusted")

    @Trusted.setter  # type: ignore[no-redef]
    def Trusted(self, value: DBusBool) -> None:
        self.update({"Trusted": value})

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> DBusBool:
        return False


class GattService(_BlueZInterface):
    """``org.bluez.GattService1``: a primary service of the connected device."""

    def __init__(self, uuid: str, device: str) -> None:
        super().__init__("org.bluez.GattService1", {"UUID": uuid, "Device": device})

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.get("UUID")

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> DBusObjectPath:
        return self.get("Device")

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> DBusPathList:
        return []


class GattCharacteristic(_BlueZInterface):
    """``org.bluez.GattCharacteristic1`` with ``StartNotify`` (not fd-passing ``AcquireNotify``).

    ``ReadValue`` asks the device (``read``); the ``Value`` property is BlueZ's cache, which
    notifications update: one notification is one ``PropertiesChanged(Value)`` signal, the
    only thing bleak listens to. Unlike BlueZ, a read does not signal the cache change, which
    would reach bleak's notification callback as a spurious notification.
    """

    def __init__(
        self,
        *,
        uuid: str,
        service: str,
        flags: list[str],
        mtu: int,
        read: Callable[[], bytes],
        on_write: Callable[[bytes], Awaitable[None]],
        on_subscribe: Callable[[bool], None],
    ) -> None:
        super().__init__(
            "org.bluez.GattCharacteristic1",
            {"UUID": uuid, "Service": service, "Value": b"", "Notifying": False},
        )
        self.flags = list(flags)
        self.mtu = mtu
        self._read = read
        self._on_write = on_write
        self._on_subscribe = on_subscribe

    def set_cached_value(self, value: bytes) -> None:
        """Update the ``Value`` cache without a signal (the caller sends its own)."""
        self._props["Value"] = value

    def reset_notifying(self) -> None:
        """Forget the subscription silently: used once the object is off the bus."""
        self._props["Notifying"] = False

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        if not _READ & set(self.flags):
            raise bluez_error("NotPermitted", "Read not permitted")
        value = _read_at(self._read(), options)
        self.set_cached_value(value)
        return value

    @dbus_method()
    async def WriteValue(self, value: DBusBytes, options: DBusDict):
        kind = options["type"].value if "type" in options else None
        with_response = bool(_WRITE_REQUEST & set(self.flags))
        if kind is None:
            kind = "request" if with_response else "command"
        allowed = with_response if kind == "request" else "write-without-response" in self.flags
        if kind not in ("request", "command", "reliable") or not allowed:
            raise bluez_error("NotPermitted", "Write not permitted")
        # A command is one ATT packet: it cannot be longer than the negotiated MTU allows.
        limit = self.mtu - 3 if kind == "command" else MAX_ATTRIBUTE_LEN
        if len(value) > limit or ("offset" in options and options["offset"].value != 0):
            raise bluez_error("InvalidArguments", "Invalid Length")
        await self._on_write(bytes(value))

    @dbus_method()
    def StartNotify(self):
        if not _SUBSCRIBE & set(self.flags):
            raise bluez_error("NotSupported", "Operation is not supported")
        if not self.get("Notifying"):
            self.update({"Notifying": True})
            self._on_subscribe(True)

    @dbus_method()
    def StopNotify(self):
        if not self.get("Notifying"):
            raise bluez_error("Failed", "No notify session started")
        self.update({"Notifying": False})
        self._on_subscribe(False)

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.get("UUID")

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:
        return self.get("Service")

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self.get("Value")

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> DBusBool:
        return self.get("Notifying")

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrList:
        return self.flags

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> DBusUInt16:
        # bleak's max_write_without_response_size is MTU - 3.
        return self.mtu


class GattDescriptor(_BlueZInterface):
    """``org.bluez.GattDescriptor1``; only the CCCD is emulated, readable and BlueZ-owned."""

    def __init__(self, uuid: str, characteristic: str, read: Callable[[], bytes]) -> None:
        super().__init__(
            "org.bluez.GattDescriptor1", {"UUID": uuid, "Characteristic": characteristic}
        )
        self._read = read

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        return _read_at(self._read(), options)

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict):
        # BlueZ owns the CCCD: clients subscribe with StartNotify, never by writing it.
        raise bluez_error("NotPermitted", "Write not permitted")

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.get("UUID")

    @dbus_property(access=PropertyAccess.READ)
    def Characteristic(self) -> DBusObjectPath:
        return self.get("Characteristic")

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self._read()

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrList:
        return ["read"]


def _read_at(value: bytes, options: dict[str, Variant]) -> bytes:
    offset = options["offset"].value if "offset" in options else 0
    if offset > len(value):
        raise bluez_error("InvalidArguments", "Invalid offset")
    return value[offset:]
