"""Generic GATT pieces every profile uses: SIG UUIDs, battery level, device information strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from device.errors import CodecError

SIG_BASE_UUID = "0000{:04x}-0000-1000-8000-00805f9b34fb"

BATTERY_SERVICE = 0x180F
BATTERY_LEVEL = 0x2A19
DEVICE_INFORMATION_SERVICE = 0x180A
MANUFACTURER_NAME = 0x2A29
MODEL_NUMBER = 0x2A24
SERIAL_NUMBER = 0x2A25
HARDWARE_REVISION = 0x2A27
FIRMWARE_REVISION = 0x2A26
SOFTWARE_REVISION = 0x2A28

# The longest attribute value ATT allows (Core spec, Vol 3, Part F, 3.2.9).
MAX_ATTRIBUTE_LEN = 512


def sig_uuid(short: int) -> str:
    """The 128-bit form of a 16-bit Bluetooth SIG UUID, lower case as bleak reports it."""
    if not 0 <= short <= 0xFFFF:
        raise CodecError("gatt", f"a 16-bit UUID must be 0..0xFFFF, got {short:#x}")
    return SIG_BASE_UUID.format(short)


def short_uuid(uuid: str) -> int | None:
    """The 16-bit SIG number of a 128-bit UUID on the SIG base, else ``None``."""
    u = uuid.lower()
    if len(u) == 36 and u.startswith("0000") and u[8:] == SIG_BASE_UUID[8:]:
        return int(u[4:8], 16)
    return None


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    """Battery Level ``0x2A19``: one byte, percent 0–100."""

    percent: int

    def __post_init__(self) -> None:
        if not 0 <= self.percent <= 100:
            raise CodecError("battery", f"level must be 0..100 %, got {self.percent}")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) != 1:
            raise CodecError("battery", f"level is 1 byte, got {len(data)}")
        return cls(data[0])

    def __bytes__(self) -> bytes:
        return bytes([self.percent])


@dataclass(frozen=True, slots=True)
class DeviceInfoString:
    """One Device Information ``0x180A`` string (manufacturer, model, serial, revisions): UTF-8.

    A trailing NUL, which some firmwares send, is dropped.
    """

    text: str

    def __post_init__(self) -> None:
        if len(self.text.encode()) > MAX_ATTRIBUTE_LEN or "\x00" in self.text:
            raise CodecError("device-information", "a string of at most 512 bytes without NUL")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        if len(data) > MAX_ATTRIBUTE_LEN:
            raise CodecError("device-information", f"{len(data)} bytes is longer than ATT allows")
        try:
            text = data.rstrip(b"\x00").decode()
        except UnicodeDecodeError as e:
            raise CodecError("device-information", f"not UTF-8: {e.reason}") from None
        return cls(text)

    def __bytes__(self) -> bytes:
        return self.text.encode()
