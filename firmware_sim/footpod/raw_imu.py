"""Stridecue's raw-IMU footpod profile, device side: configuration, control point, batches."""

from __future__ import annotations

from dataclasses import replace

from device.errors import CodecError
from device.profiles import raw_imu as codec
from device.profiles.raw_imu import (
    Axes,
    RawImuCommand,
    RawImuConfig,
    RawImuOp,
    RawImuPacket,
    RawImuResponse,
    RawImuResult,
)
from dsp.samples import SampleBlock
from firmware_sim.bluez import AttError, Characteristic, Service
from firmware_sim.footpod.base import (
    ATT_CCCD_IMPROPERLY_CONFIGURED,
    ATT_INVALID_LENGTH,
    ATT_OUT_OF_RANGE,
    Pod,
    ProfileServer,
    even_chunks,
)
from firmware_sim.signals import has_gyro


class RawImuServer(ProfileServer):
    """Configuration (read/write ``RawImuConfig``), control point (write + indicate:
    start, stop, reset the sequence number) and data notifications.

    The initial configuration matches the athlete: its rate, ±16 g, ±2000 °/s, gyro on a foot
    sensor only. A configuration write is refused with ATT "out of range" (``0xFF``) when the
    device cannot honour it: a rate that is not an integer division of the athlete's, or a
    gyro the sensor does not have. The stream keeps its sequence number across a stop and a
    start, as firmware would; only ``reset-sequence`` (or a new link) sets it back to 0.
    """

    name = "raw-imu"
    model = "Stridecue raw-IMU footpod (simulated)"
    service_uuid = codec.RAW_IMU_SERVICE
    data_uuid = codec.RAW_IMU_DATA

    def __init__(self, pod: Pod) -> None:
        super().__init__(pod)
        fs_hz = pod.athlete.fs_hz
        if fs_hz != int(fs_hz):
            raise ValueError(f"the raw-IMU profile needs a whole sample rate, got {fs_hz} Hz")
        gyro = has_gyro(pod.athlete.placement)
        self.config = RawImuConfig(
            sample_rate_hz=int(fs_hz),
            acc_range_g=16,
            gyro_range_dps=2000,
            axes=Axes.ACC | Axes.GYRO if gyro else Axes.ACC,
        )
        self._gyro_available = gyro
        self._started = False
        self._seq = 0

    def service(self) -> Service:
        return Service(
            self.service_uuid,
            [
                Characteristic(
                    codec.RAW_IMU_CONFIG, ["read", "write"], bytes(self.config), self._on_config
                ),
                Characteristic(
                    codec.RAW_IMU_CONTROL_POINT, ["write", "indicate"], on_write=self._on_command
                ),
                Characteristic(self.data_uuid, ["notify"]),
            ],
        )

    def started(self) -> bool:
        return self._started

    def link_down(self) -> None:
        self._started = False
        self._seq = 0

    def rate_changed(self, fs_hz: float) -> None:
        self.config = replace(self.config, sample_rate_hz=round(fs_hz))
        self.pod.peripheral.set_value(codec.RAW_IMU_CONFIG, bytes(self.config))

    def encode(self, block: SampleBlock) -> list[tuple[bytes, int]]:
        per = codec.max_samples(self.pod.mtu, self.config.gyro)
        out: list[tuple[bytes, int]] = []
        for start, stop in even_chunks(len(block), per):
            (packet,) = codec.encode_batches(
                block.slice(start, stop), self._seq, self.pod.mtu, self.config
            )
            self._seq = (self._seq + 1) % codec.SEQ_MODULUS
            out.append((packet, stop - start))
        return out

    def bad_header(self, data: bytes) -> bytes:
        flags_at = codec.HEADER.size - 1
        return data[:flags_at] + bytes([data[flags_at] | 0xF8]) + data[flags_at + 1 :]

    def accepts(self, data: bytes) -> bool:
        try:
            RawImuPacket.from_bytes(data)
        except CodecError:
            return False
        return True

    def _on_config(self, data: bytes) -> None:
        if len(data) != len(bytes(self.config)):
            raise AttError(ATT_INVALID_LENGTH)
        try:
            config = RawImuConfig.from_bytes(data)
        except CodecError:
            raise AttError(ATT_OUT_OF_RANGE) from None
        if config.gyro and not self._gyro_available:
            raise AttError(ATT_OUT_OF_RANGE)
        try:
            self.pod.set_rate(config.sample_rate_hz)
        except ValueError:
            raise AttError(ATT_OUT_OF_RANGE) from None
        self.config = config
        self.pod.peripheral.set_value(codec.RAW_IMU_CONFIG, data)

    def _on_command(self, data: bytes) -> bytes:
        self.pod.commands.append(bytes(data))
        if not self.pod.peripheral.subscribed(codec.RAW_IMU_CONTROL_POINT):
            raise AttError(ATT_CCCD_IMPROPERLY_CONFIGURED)
        if len(data) != 1:
            raise AttError(ATT_INVALID_LENGTH)
        try:
            op = RawImuCommand.from_bytes(data).op
        except CodecError:
            raise AttError(ATT_OUT_OF_RANGE) from None
        if op is RawImuOp.START:
            self._started = True
        elif op is RawImuOp.STOP:
            self._started = False
        else:
            self._seq = 0
        return bytes(RawImuResponse(op, RawImuResult.SUCCESS))
