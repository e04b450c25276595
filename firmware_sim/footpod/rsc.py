"""A standard Running Speed and Cadence footpod, device side: 2 Hz measurements from the truth.

A commercial footpod reports a smoothed cadence, not samples: here the cadence is computed from
the athlete's TRUE contacts (the step intervals of the last ``window_s``), so it is the truth a
client can be checked against. RSC has no start command: it streams while subscribed.
"""

from __future__ import annotations

import numpy as np

from device.errors import CodecError
from device.profiles import rsc as codec
from device.profiles.rsc import (
    CadenceUnit,
    RscFeature,
    RscFeatureFlags,
    RscMeasurement,
    RscSensorLocation,
    SensorLocation,
)
from dsp.events import Placement
from dsp.samples import SampleBlock
from firmware_sim.bluez import Characteristic, Service
from firmware_sim.footpod.base import Pod, ProfileServer

_LOCATIONS = {
    Placement.FOOT: SensorLocation.TOP_OF_SHOE,
    Placement.SHANK: SensorLocation.OTHER,
    Placement.TRUNK: SensorLocation.HIP,
}
_EASY_STEP_M, _STRIDE_STEP_M = 1.1, 1.5  # step length at the athlete's easy and stride cadence
_MIN_STEP_M, _MAX_STEP_M = 0.5, 2.2
RUNNING_MIN_SPM = 130.0  # below this the running bit is cleared (Stryd wakes above 130)


class RscServer(ProfileServer):
    """RSC measurement notifications (speed, cadence, stride length, running bit) at
    ``measurement_hz`` of athlete time, feature and sensor-location reads.

    Cadence is ``60 × (n − 1) / (ic_last − ic_first)`` over the ``n`` true contacts of both feet
    that began in the last ``window_s`` and are over (0 with fewer than two), in steps/min, or
    halved and rounded for ``cadence_unit="strides"`` (footpods that count one foot). Speed is
    not measured: it is cadence × a step-length model, linear between 1.1 m at the athlete's
    easy cadence and 1.5 m at their stride cadence. The stride-length field is the distance per
    unit of the cadence field (a step, or a stride of two steps), so that speed = cadence ×
    stride length on every device. ``set_rate`` changes the measurement rate.
    """

    name = "rsc"
    model = "Stridecue RSC footpod (simulated)"
    service_uuid = codec.RSC_SERVICE
    data_uuid = codec.RSC_MEASUREMENT

    def __init__(
        self, pod: Pod, *, cadence_unit: CadenceUnit = CadenceUnit.STEPS, window_s: float = 2.0
    ) -> None:
        super().__init__(pod)
        if cadence_unit is CadenceUnit.AUTO:
            raise ValueError("a device counts steps or strides; 'auto' is the client's setting")
        self.cadence_unit = cadence_unit
        self.window_s = window_s
        self.measurement_hz = 2.0
        self._next_s = 1.0 / self.measurement_hz  # athlete time of the next measurement
        profile = pod.athlete.profile
        self._step_slope = (_STRIDE_STEP_M - _EASY_STEP_M) / (
            profile.stride_cadence_spm - profile.easy_cadence_spm
        )
        self._easy_spm = profile.easy_cadence_spm

    def service(self) -> Service:
        features = RscFeatureFlags.STRIDE_LENGTH | RscFeatureFlags.RUNNING_STATUS
        location = _LOCATIONS[self.pod.athlete.placement]
        return Service(
            self.service_uuid,
            [
                Characteristic(self.data_uuid, ["notify"]),
                Characteristic(codec.RSC_FEATURE, ["read"], bytes(RscFeature(features))),
                Characteristic(codec.SENSOR_LOCATION, ["read"], bytes(RscSensorLocation(location))),
            ],
        )

    def rate_changed(self, fs_hz: float) -> None:
        self.measurement_hz = fs_hz

    def step_length_m(self, cadence_spm: float) -> float:
        """The speed model: metres per step at ``cadence_spm``."""
        length = _EASY_STEP_M + self._step_slope * (cadence_spm - self._easy_spm)
        return float(np.clip(length, _MIN_STEP_M, _MAX_STEP_M))

    def encode(self, block: SampleBlock) -> list[tuple[bytes, int]]:
        if len(block) == 0:
            return []
        # Athlete time = device time − offset: measurements fall on the athlete's own clock.
        end_s = float(block.t_s[-1]) - self.pod.clock_offset_s
        due = []
        while self._next_s <= end_s:
            due.append(self._next_s)
            self._next_s += 1.0 / self.measurement_hz
        if not due:
            return []
        contacts = np.array([(ic, to) for ic, to, _ in self.pod.athlete.truth().contacts_s])
        return [(bytes(self.measurement(contacts.reshape(-1, 2), t_s)), 1) for t_s in due]

    def measurement(self, contacts_s: np.ndarray, t_s: float) -> RscMeasurement:
        """The measurement at athlete time ``t_s`` from true contacts ``(ic_s, to_s)`` (n, 2).

        Only contacts finished by ``t_s`` count, as a device knows a step once it is over.
        """
        ic_s, to_s = contacts_s[:, 0], contacts_s[:, 1]
        recent = ic_s[(ic_s >= t_s - self.window_s) & (to_s <= t_s)]
        spm = 60.0 * (recent.size - 1) / (recent[-1] - recent[0]) if recent.size >= 2 else 0.0
        per_unit = 2 if self.cadence_unit is CadenceUnit.STRIDES else 1
        step_m = self.step_length_m(spm) if spm > 0 else 0.0
        return RscMeasurement(
            speed_m_s=spm / 60.0 * step_m,
            cadence_per_min=round(spm / per_unit),
            running=spm >= RUNNING_MIN_SPM,
            stride_length_m=step_m * per_unit,
        )

    def bad_header(self, data: bytes) -> bytes:
        return bytes([data[0] | 0xF8]) + data[1:]

    def accepts(self, data: bytes) -> bool:
        try:
            RscMeasurement.from_bytes(data)
        except CodecError:
            return False
        return True
