"""RSC codecs (every measurement flag combination, feature, location, control point) and the
cadence stream with its steps/strides auto-detection."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.errors import CodecError
from device.profiles.rsc import (
    CadenceUnit,
    RscFeature,
    RscFeatureFlags,
    RscMeasurement,
    RscSensorLocation,
    RscStream,
    ScOpcode,
    ScRequest,
    ScResponse,
    ScResult,
    SensorLocation,
)

# Every flag combination, hand-encoded: speed 3.5 m/s = 896/256 (0x0380), cadence 90,
# stride 1.23 m (0x007B cm), distance 1234.5 m (12345 dm = 0x00003039).
KNOWN = [
    ("00 80 03 5a", RscMeasurement(3.5, 90, False)),
    ("01 80 03 5a 7b 00", RscMeasurement(3.5, 90, False, stride_length_m=1.23)),
    ("02 80 03 5a 39 30 00 00", RscMeasurement(3.5, 90, False, total_distance_m=1234.5)),
    ("03 80 03 5a 7b 00 39 30 00 00", RscMeasurement(3.5, 90, False, 1.23, 1234.5)),
    ("04 80 03 5a", RscMeasurement(3.5, 90, True)),
    ("05 80 03 5a 7b 00", RscMeasurement(3.5, 90, True, stride_length_m=1.23)),
    ("06 80 03 5a 39 30 00 00", RscMeasurement(3.5, 90, True, total_distance_m=1234.5)),
    ("07 80 03 5a 7b 00 39 30 00 00", RscMeasurement(3.5, 90, True, 1.23, 1234.5)),
]


@pytest.mark.parametrize(("hex_", "value"), KNOWN)
def test_every_flag_combination_decodes_and_encodes_known_bytes(
    hex_: str, value: RscMeasurement
) -> None:
    data = bytes.fromhex(hex_)
    assert RscMeasurement.from_bytes(data) == value
    assert bytes(value) == data


measurements = st.builds(
    RscMeasurement,
    speed_m_s=st.integers(0, 0xFFFF).map(lambda c: c / 256),
    cadence_per_min=st.integers(0, 255),
    running=st.booleans(),
    stride_length_m=st.none() | st.integers(0, 0xFFFF).map(lambda c: c / 100),
    total_distance_m=st.none() | st.integers(0, 0xFFFF_FFFF).map(lambda c: c / 10),
)


@given(measurements)
def test_measurement_round_trips(m: RscMeasurement) -> None:
    assert RscMeasurement.from_bytes(bytes(m)) == m


@pytest.mark.parametrize(
    "hex_",
    [
        "04 80 03",  # short
        "05 80 03 5a",  # stride flag without the stride
        "04 80 03 5a 00",  # longer than the flags promise
        "08 80 03 5a",  # reserved flag bit
        "",
    ],
)
def test_malformed_measurements_raise_codec_error(hex_: str) -> None:
    with pytest.raises(CodecError) as e:
        RscMeasurement.from_bytes(bytes.fromhex(hex_))
    assert e.value.profile == "rsc"


def test_out_of_range_fields_raise() -> None:
    with pytest.raises(CodecError):
        RscMeasurement(-0.1, 90, True)
    with pytest.raises(CodecError):
        RscMeasurement(3.0, 256, True)
    with pytest.raises(CodecError):
        RscMeasurement(3.0, 90, True, stride_length_m=700.0)


def test_feature_location_and_control_point_known_bytes() -> None:
    feature = RscFeature.from_bytes(bytes.fromhex("07 00"))
    assert (
        feature.features
        == (RscFeatureFlags.STRIDE_LENGTH | RscFeatureFlags.TOTAL_DISTANCE)
        | RscFeatureFlags.RUNNING_STATUS
    )
    assert bytes(feature) == bytes.fromhex("07 00")
    with pytest.raises(CodecError):
        RscFeature.from_bytes(bytes.fromhex("20 00"))
    assert RscSensorLocation.from_bytes(b"\x02").location is SensorLocation.IN_SHOE
    with pytest.raises(CodecError):
        RscSensorLocation.from_bytes(b"\x63")

    set_distance = ScRequest(ScOpcode.SET_CUMULATIVE_DISTANCE, cumulative_distance_m=1234.5)
    assert bytes(set_distance) == bytes.fromhex("01 39 30 00 00")
    assert ScRequest.from_bytes(bytes.fromhex("03 0e")).location is SensorLocation.CHEST
    with pytest.raises(CodecError):
        ScRequest(ScOpcode.START_CALIBRATION, location=SensorLocation.HIP)
    reply = ScResponse.from_bytes(bytes.fromhex("10 04 01 01 02 03"))
    assert reply.request is ScOpcode.REQUEST_SUPPORTED_LOCATIONS
    assert reply.result is ScResult.SUCCESS
    assert reply.supported_locations == (
        SensorLocation.TOP_OF_SHOE,
        SensorLocation.IN_SHOE,
        SensorLocation.HIP,
    )
    with pytest.raises(CodecError):
        ScResponse.from_bytes(bytes.fromhex("10 01 02 01"))  # locations after a non-list reply


requests = st.one_of(
    st.integers(0, 0xFFFF_FFFF).map(
        lambda dm: ScRequest(ScOpcode.SET_CUMULATIVE_DISTANCE, cumulative_distance_m=dm / 10)
    ),
    st.sampled_from(SensorLocation).map(
        lambda loc: ScRequest(ScOpcode.UPDATE_SENSOR_LOCATION, location=loc)
    ),
    st.sampled_from([ScOpcode.START_CALIBRATION, ScOpcode.REQUEST_SUPPORTED_LOCATIONS]).map(
        ScRequest
    ),
)


@given(requests, st.sampled_from(ScResult), st.lists(st.sampled_from(SensorLocation)))
def test_control_point_round_trips(
    request: ScRequest, result: ScResult, locations: list[SensorLocation]
) -> None:
    assert ScRequest.from_bytes(bytes(request)) == request
    listed = request.opcode is ScOpcode.REQUEST_SUPPORTED_LOCATIONS and result is ScResult.SUCCESS
    response = ScResponse(request.opcode, result, tuple(locations) if listed else ())
    assert ScResponse.from_bytes(bytes(response)) == response


@given(st.integers(0, 0x1F), st.sampled_from(SensorLocation))
def test_feature_and_location_round_trip(bits: int, location: SensorLocation) -> None:
    feature = RscFeature(RscFeatureFlags(bits))
    assert RscFeature.from_bytes(bytes(feature)) == feature
    assert RscSensorLocation.from_bytes(bytes(RscSensorLocation(location))).location is location


def _packets(cadences: list[int], speed_m_s: float = 3.5) -> list[bytes]:
    return [bytes(RscMeasurement(speed_m_s, c, True)) for c in cadences]


def test_auto_detects_a_strides_device_and_doubles_every_reading() -> None:
    stream = RscStream(CadenceUnit.AUTO, detect_readings=5)
    walk = [bytes(RscMeasurement(1.0, 55, False))] * 3  # walking: says nothing about the unit
    out = []
    for i, data in enumerate(walk + _packets([88, 89, 90, 91, 90, 92])):
        out += stream.feed(float(i), data)
    assert stream.detected_unit is CadenceUnit.STRIDES
    assert [r.cadence_spm for r in out] == [110.0] * 3 + [176.0, 178.0, 180.0, 182.0, 180.0, 184.0]
    assert [r.t_s for r in out] == [float(i) for i in range(9)]
    assert out[-1].speed_m_s == 3.5


def test_auto_detects_a_steps_device() -> None:
    stream = RscStream()
    out = [r for i, d in enumerate(_packets([176, 178, 180, 182, 180])) for r in stream.feed(i, d)]
    assert stream.detected_unit is CadenceUnit.STEPS
    assert [r.cadence_spm for r in out] == [176.0, 178.0, 180.0, 182.0, 180.0]


def test_auto_holds_readings_until_it_decides_then_falls_back_to_steps() -> None:
    stream = RscStream(max_held=4)
    slow = bytes(RscMeasurement(1.0, 60, False))
    assert stream.feed(0.0, slow) == [] and stream.feed(1.0, slow) == []
    assert stream.feed(2.0, slow) == []
    released = stream.feed(3.0, slow)
    assert stream.detected_unit is CadenceUnit.STEPS
    assert [r.cadence_spm for r in released] == [60.0] * 4


@pytest.mark.parametrize(("unit", "factor"), [(CadenceUnit.STEPS, 1), (CadenceUnit.STRIDES, 2)])
def test_a_fixed_unit_is_applied_from_the_first_reading(unit: CadenceUnit, factor: int) -> None:
    stream = RscStream(unit)
    (reading,) = stream.feed(0.5, _packets([85])[0])
    assert reading.cadence_spm == 85.0 * factor


def test_malformed_notifications_are_counted_logged_once_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = RscStream(CadenceUnit.STEPS)
    with caplog.at_level(logging.WARNING, logger="device.profiles.rsc"):
        assert stream.feed(0.0, b"\x04\x80") == []
        assert stream.feed(0.1, b"\x04\x80") == []
        assert len(stream.feed(0.2, _packets([170])[0])) == 1
    assert stream.malformed == 2 and stream.packets == 1
    assert len(caplog.records) == 1 and "at least 4 bytes" in caplog.records[0].getMessage()
