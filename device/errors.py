"""What goes wrong with a device: one root error, a few subclasses carrying structured fields."""

from __future__ import annotations


class DeviceError(Exception):
    """Root of every error raised by ``device``."""


class CodecError(DeviceError):
    """A characteristic value that cannot be decoded or encoded.

    ``profile`` names the codec (``"rsc"``, ``"polar-pmd"``, …), ``reason`` says what is wrong.
    """

    def __init__(self, profile: str, reason: str) -> None:
        super().__init__(f"{profile}: {reason}")
        self.profile = profile
        self.reason = reason


class DeviceNotFoundError(DeviceError):
    """No advertising device matched ``target`` within ``scan_timeout_s``."""

    def __init__(self, target: str, scan_timeout_s: float) -> None:
        super().__init__(
            f"no device named or addressed {target!r} answered a {scan_timeout_s:.0f} s scan: "
            "wake it (move it, or press its button), bring it closer, or check the name with "
            "`stridecue scan`"
        )
        self.target = target
        self.scan_timeout_s = scan_timeout_s


class ControlPointError(DeviceError):
    """A device refused a control-point command: ``status`` is the device's own result code."""

    def __init__(self, profile: str, opcode: int, status: int, meaning: str) -> None:
        super().__init__(
            f"{profile}: command 0x{opcode:02X} refused with status {status} ({meaning}); "
            "stop other apps streaming from the device, or power-cycle it, then retry"
        )
        self.profile = profile
        self.opcode = opcode
        self.status = status
        self.meaning = meaning
