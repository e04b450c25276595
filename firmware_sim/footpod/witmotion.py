"""A WitMotion BLE IMU (BWT901BLECL), device side: 20-byte ``55 61`` packets, register writes."""

from __future__ import annotations

import logging

import numpy as np

from device.errors import CodecError
from device.profiles import witmotion as codec
from device.profiles.witmotion import Vector, WitMotionPacket, WitMotionStream, WitRegisterWrite
from dsp.samples import SampleBlock
from firmware_sim.bluez import Characteristic, Service
from firmware_sim.footpod.base import Pod, ProfileServer, even_chunks

log = logging.getLogger(__name__)

# The largest value each int16 field holds (full scale × 32767/32768): the sensor saturates.
_ACC_MAX_G = codec.ACC_FULL_SCALE_G * 32767 / 32768
_GYRO_MAX_DPS = codec.GYRO_FULL_SCALE_DPS * 32767 / 32768
_ANGLE_MAX_DEG = codec.ANGLE_FULL_SCALE_DEG * 32767.5 / 32768


class WitMotionServer(ProfileServer):
    """Notifications of 20-byte packets, as many per notification as ``MTU − 3`` holds, and
    register writes on the write characteristic (output rate 100/200 Hz, register 0x03).

    No timestamp travels: the client stamps on receipt. Acceleration and angular rate are
    clipped to the packet's full scale (±16 g, ±2000 °/s); an accelerometer-only athlete sends
    zero angular rate. Angles are the per-axis running integral of the angular rate, wrapped
    to ±180° (an uncorrected gyro integral, not the module's fused attitude). Every register
    write is recorded; rate writes the athlete's rate cannot be decimated to are ignored, like
    other registers and malformed writes (the module does not answer writes).
    """

    name = "witmotion"
    model = "WitMotion BWT901BLECL (simulated)"
    service_uuid = codec.WITMOTION_SERVICE
    data_uuid = codec.WITMOTION_NOTIFY

    def __init__(self, pod: Pod) -> None:
        super().__init__(pod)
        self._angle_deg = np.zeros(3)
        self._per = (pod.mtu - 3) // codec.PACKET_BYTES
        if self._per < 1:
            raise ValueError(f"an MTU of {pod.mtu} cannot carry a 20-byte packet")

    def service(self) -> Service:
        return Service(
            self.service_uuid,
            [
                Characteristic(self.data_uuid, ["notify"]),
                Characteristic(
                    codec.WITMOTION_WRITE,
                    ["write", "write-without-response"],
                    on_write=self._on_write,
                ),
            ],
        )

    def encode(self, block: SampleBlock) -> list[tuple[bytes, int]]:
        n = len(block)
        if n == 0:
            return []
        acc = np.clip(block.acc_g, -_ACC_MAX_G, _ACC_MAX_G)
        gyro = np.zeros((n, 3)) if block.gyro_dps is None else block.gyro_dps
        gyro = np.clip(gyro, -_GYRO_MAX_DPS, _GYRO_MAX_DPS)
        unwrapped = self._angle_deg + np.cumsum(gyro, axis=0) / self.pod.fs_hz
        angle = (unwrapped + 180.0) % 360.0 - 180.0
        # +180° itself does not fit an int16 count: angles that would round to it are −180°.
        angle[angle >= _ANGLE_MAX_DEG] -= 360.0
        self._angle_deg = angle[-1]
        packets = [
            bytes(WitMotionPacket(_vector(a), _vector(g), _vector(r)))
            for a, g, r in zip(acc.tolist(), gyro.tolist(), angle.tolist(), strict=True)
        ]
        return [(b"".join(packets[a:b]), b - a) for a, b in even_chunks(n, self._per)]

    def bad_header(self, data: bytes) -> bytes:
        return data[:1] + b"\x00" + data[2:]  # the first packet's 55 61 becomes 55 00

    def accepts(self, data: bytes) -> bool:
        probe = WitMotionStream(self.pod.fs_hz)
        probe.feed(0.0, data)
        return probe.malformed == 0 and probe.packets > 0

    def _on_write(self, data: bytes) -> None:
        self.pod.commands.append(bytes(data))
        try:
            write = WitRegisterWrite.from_bytes(data)
        except CodecError as e:
            log.info("witmotion: ignored a malformed register write (%s)", e.reason)
            return
        rates = {code: fs_hz for fs_hz, code in codec.RATE_CODES.items()}
        if write.register == codec.RATE_REGISTER and write.value in rates:
            try:
                self.pod.set_rate(rates[write.value])
            except ValueError as e:
                log.info("witmotion: ignored a rate write: %s", e)


def _vector(values: list[float]) -> Vector:
    return (values[0], values[1], values[2])
