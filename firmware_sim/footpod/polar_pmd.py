"""A Polar H10's PMD accelerometer, device side: settings, start/stop, timestamped frames."""

from __future__ import annotations

import numpy as np

from device.errors import CodecError
from device.profiles import polar_pmd as codec
from device.profiles.polar_pmd import (
    MeasurementType,
    PmdCommand,
    PmdDataFrame,
    PmdOp,
    PmdResponse,
    PmdSettings,
    PmdStatus,
    encode_frame,
)
from dsp.samples import SampleBlock
from firmware_sim.bluez import AttError, Characteristic, Service
from firmware_sim.footpod.base import (
    ATT_CCCD_IMPROPERLY_CONFIGURED,
    ATT_OUT_OF_RANGE,
    Pod,
    ProfileServer,
    even_chunks,
)

H10_RATES_HZ = (25, 50, 100, 200)
H10_RANGES_G = (2, 4, 8)
H10_RESOLUTION_BITS = 16
_FRAME_HEADER_BYTES = 10  # type, u64 timestamp, frame type
_ATT_HEADER_BYTES = 3
# Control point read: 0x0F then a bitmask of the measurement types offered (bit n: type n).
_FEATURES = bytes([0x0F, 1 << MeasurementType.ACC])


class PolarPmdServer(ProfileServer):
    """The H10's accelerometer over PMD: control point (read/write/indicate), data (notify).

    Get-settings answers the H10's offer (25/50/100/200 Hz, 16 bit, ±2/4/8 g; rates that are
    not an integer division of the athlete's are left out). Start needs one rate and one range
    of the offer, and an MTU of at least 232 ("invalid MTU" otherwise); a second start while
    streaming is "already in state". Stop always succeeds (it is what an app sends on every
    exit path, running or not). The link going down stops the stream, as on the strap.
    Frames carry milli-g clipped to the range, and the device time of their LAST sample in ns
    since 2000-01-01; uncompressed frames are cut evenly to the MTU, delta frames as full as
    the MTU allows.
    """

    name = "polar-pmd"
    model = "Polar H10 (simulated)"
    service_uuid = codec.PMD_SERVICE
    data_uuid = codec.PMD_DATA

    def __init__(self, pod: Pod, *, delta: bool = False) -> None:
        super().__init__(pod)
        self.delta = delta
        fs_hz = pod.athlete.fs_hz
        self.offer = PmdSettings(
            sample_rates_hz=tuple(r for r in H10_RATES_HZ if (fs_hz / r).is_integer()),
            resolutions_bits=(H10_RESOLUTION_BITS,),
            ranges_g=H10_RANGES_G,
        )
        self.range_g = max(H10_RANGES_G)
        self._started = False

    def service(self) -> Service:
        return Service(
            self.service_uuid,
            [
                Characteristic(
                    codec.PMD_CONTROL_POINT,
                    ["read", "write", "indicate"],
                    _FEATURES,
                    on_write=self._on_command,
                ),
                Characteristic(self.data_uuid, ["notify"]),
            ],
        )

    def started(self) -> bool:
        return self._started

    def link_down(self) -> None:
        self._started = False

    def encode(self, block: SampleBlock) -> list[tuple[bytes, int]]:
        if len(block) == 0:
            return []
        full_scale_mg = 1000.0 * self.range_g
        mg = np.clip(block.acc_g * 1000.0, -full_scale_mg, full_scale_mg)
        ts_ns = np.rint(block.t_s * 1e9).astype(np.int64)
        limit = self.pod.mtu - _ATT_HEADER_BYTES
        if not self.delta:
            per = (limit - _FRAME_HEADER_BYTES) // (2 * 3)
            return [
                (encode_frame(mg[a:b], int(ts_ns[b - 1])), b - a)
                for a, b in even_chunks(len(block), per)
            ]
        out: list[tuple[bytes, int]] = []
        start = 0
        while start < len(block):
            # Delta frames have no fixed size: shrink the guess until the frame fits.
            n = min(len(block) - start, 255)
            while True:
                frame = encode_frame(mg[start : start + n], int(ts_ns[start + n - 1]), delta=True)
                if len(frame) <= limit or n == 1:
                    break
                n = max(1, min(n - 1, n * limit // len(frame)))
            out.append((frame, n))
            start += n
        return out

    def bad_header(self, data: bytes) -> bytes:
        return data[:9] + b"\x7f" + data[10:]  # frame type 0x7F: uncompressed, unsupported

    def accepts(self, data: bytes) -> bool:
        try:
            frame = PmdDataFrame.from_bytes(data, resolution_bits=H10_RESOLUTION_BITS)
        except CodecError:
            return False
        return frame.measurement_type == MeasurementType.ACC

    def _on_command(self, data: bytes) -> bytes:
        self.pod.commands.append(bytes(data))
        if not self.pod.peripheral.subscribed(codec.PMD_CONTROL_POINT):
            raise AttError(ATT_CCCD_IMPROPERLY_CONFIGURED)
        try:
            command = PmdCommand.from_bytes(data)
        except CodecError:
            if len(data) >= 2 and data[0] in {op.value for op in PmdOp}:
                return bytes(PmdResponse(PmdOp(data[0]), data[1], PmdStatus.INVALID_PARAMETER))
            raise AttError(ATT_OUT_OF_RANGE) from None
        return bytes(self._answer(command))

    def _answer(self, command: PmdCommand) -> PmdResponse:
        op, mtype = command.op, command.measurement_type

        def reply(status: PmdStatus, params: bytes = b"") -> PmdResponse:
            return PmdResponse(op, mtype, status, params=params)

        if mtype != MeasurementType.ACC:
            return reply(PmdStatus.INVALID_MEASUREMENT_TYPE)
        if op is PmdOp.GET_SETTINGS:
            return reply(PmdStatus.SUCCESS, bytes(self.offer))
        if op is PmdOp.STOP:
            self._started = False
            return reply(PmdStatus.SUCCESS)
        settings = command.settings
        assert settings is not None  # PmdCommand guarantees settings with START
        if self.pod.mtu < codec.PMD_MIN_MTU:
            return reply(PmdStatus.INVALID_MTU)
        if self._started:
            return reply(PmdStatus.ALREADY_IN_STATE)
        if len(settings.sample_rates_hz) != 1 or not set(settings.sample_rates_hz) <= set(
            self.offer.sample_rates_hz
        ):
            return reply(PmdStatus.INVALID_SAMPLE_RATE)
        if len(settings.ranges_g) != 1 or settings.ranges_g[0] not in self.offer.ranges_g:
            return reply(PmdStatus.INVALID_RANGE)
        if settings.resolutions_bits not in ((), self.offer.resolutions_bits):
            return reply(PmdStatus.INVALID_PARAMETER)
        self.pod.set_rate(settings.sample_rates_hz[0])
        self.range_g = settings.ranges_g[0]
        self._started = True
        return reply(PmdStatus.SUCCESS)
