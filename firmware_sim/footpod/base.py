"""What every profile of the simulated footpod shares: the profile interface, battery and
device information services, and the ATT error codes its characteristics refuse writes with."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

from device.profiles import gatt
from device.profiles.gatt import BatteryLevel, DeviceInfoString
from dsp.samples import SampleBlock
from firmware_sim.bluez import Characteristic, EmulatedPeripheral, Service
from firmware_sim.runner import SimulatedAthlete

# ATT error codes (Core spec Vol 3 Part F 3.4.1.1, and the Core Specification Supplement's
# common profile errors) a write handler refuses with.
ATT_INVALID_LENGTH = 0x0D
ATT_CCCD_IMPROPERLY_CONFIGURED = 0xFD  # a control point written before indications are on
ATT_OUT_OF_RANGE = 0xFF

MANUFACTURER = "Stridecue"
FIRMWARE = "sim"
BATTERY_PERCENT = 100


class Pod(Protocol):
    """What a profile sees of the footpod that serves it."""

    athlete: SimulatedAthlete
    peripheral: EmulatedPeripheral
    commands: list[bytes]

    @property
    def mtu(self) -> int: ...

    @property
    def clock_offset_s(self) -> float: ...

    @property
    def fs_hz(self) -> float: ...

    def set_rate(self, fs_hz: float) -> None: ...


class ProfileServer(ABC):
    """The device side of one BLE profile: its GATT service, its commands and its packets.

    ``encode`` turns a block of samples (already at the output rate, times in DEVICE seconds)
    into the notifications the device sends for it, each with the number of samples it
    carries; the footpod sends, drops or damages them.
    """

    name: ClassVar[str]
    model: ClassVar[str]
    service_uuid: ClassVar[str]
    data_uuid: ClassVar[str]

    def __init__(self, pod: Pod) -> None:
        self.pod = pod

    @abstractmethod
    def service(self) -> Service:
        """The profile's primary service."""

    def started(self) -> bool:
        """Whether the client started the stream (profiles without a start command: always)."""
        return True

    def streaming(self) -> bool:
        """Subscribed to the data characteristic AND started."""
        return self.pod.peripheral.subscribed(self.data_uuid) and self.started()

    def link_down(self) -> None:  # noqa: B027 (a hook: most profiles keep no link state)
        """The link went down: forget what only lasts a connection (a started stream)."""

    def rate_changed(self, fs_hz: float) -> None:  # noqa: B027 (a hook)
        """The output rate changed (a test control or the client's command)."""

    @abstractmethod
    def encode(self, block: SampleBlock) -> list[tuple[bytes, int]]:
        """The notifications for ``block``, each with how many samples it carries."""

    @abstractmethod
    def bad_header(self, data: bytes) -> bytes:
        """``data`` with its header damaged so that the profile's decoder rejects it."""

    @abstractmethod
    def accepts(self, data: bytes) -> bool:
        """Whether the profile's codec decodes ``data`` (damaged packets must not)."""


def standard_services(model: str) -> list[Service]:
    """Battery (``0x180F``) and Device Information (``0x180A``), as every footpod has."""

    def text(value: str) -> bytes:
        return bytes(DeviceInfoString(value))

    return [
        Service(
            gatt.sig_uuid(gatt.BATTERY_SERVICE),
            [
                Characteristic(
                    gatt.sig_uuid(gatt.BATTERY_LEVEL),
                    ["read"],
                    bytes(BatteryLevel(BATTERY_PERCENT)),
                )
            ],
        ),
        Service(
            gatt.sig_uuid(gatt.DEVICE_INFORMATION_SERVICE),
            [
                Characteristic(gatt.sig_uuid(gatt.MANUFACTURER_NAME), ["read"], text(MANUFACTURER)),
                Characteristic(gatt.sig_uuid(gatt.MODEL_NUMBER), ["read"], text(model)),
                Characteristic(gatt.sig_uuid(gatt.FIRMWARE_REVISION), ["read"], text(FIRMWARE)),
            ],
        ),
    ]


def even_chunks(n: int, per: int) -> list[tuple[int, int]]:
    """``n`` samples cut into the fewest packets of at most ``per``, sizes differing by ≤ 1.

    Even packets keep a receiver's per-packet timing (spread between timestamps) uniform.
    """
    if n <= 0:
        return []
    k = -(-n // per)
    bounds = [n * i // k for i in range(k + 1)]
    return list(itertools.pairwise(bounds))
