"""Arbitrary bytes: every codec raises nothing but ``CodecError``, every stream raises nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.errors import CodecError
from device.profiles import gatt, polar_pmd, raw_imu, rsc, witmotion

DECODERS: list[Callable[[bytes], object]] = [
    gatt.BatteryLevel.from_bytes,
    gatt.DeviceInfoString.from_bytes,
    rsc.RscMeasurement.from_bytes,
    rsc.RscFeature.from_bytes,
    rsc.RscSensorLocation.from_bytes,
    rsc.ScRequest.from_bytes,
    rsc.ScResponse.from_bytes,
    polar_pmd.PmdSettings.from_bytes,
    polar_pmd.PmdCommand.from_bytes,
    polar_pmd.PmdResponse.from_bytes,
    polar_pmd.PmdDataFrame.from_bytes,
    raw_imu.RawImuConfig.from_bytes,
    raw_imu.RawImuCommand.from_bytes,
    raw_imu.RawImuResponse.from_bytes,
    raw_imu.RawImuPacket.from_bytes,
    witmotion.WitMotionPacket.from_bytes,
    witmotion.WitRegisterWrite.from_bytes,
]

STREAMS: list[Callable[[], object]] = [
    rsc.RscStream,
    lambda: polar_pmd.PolarAccStream(200.0),
    lambda: raw_imu.RawImuStream(raw_imu.RawImuConfig()),
    lambda: raw_imu.RawImuStream(raw_imu.RawImuConfig(axes=raw_imu.Axes.ACC)),
    lambda: witmotion.WitMotionStream(100.0),
]

# Bytes that often look like the real thing: a valid prefix followed by noise.
PREFIXES = [
    b"",
    b"\x02",
    b"\x02" + bytes(8) + b"\x81",
    b"\xf0\x01\x02\x00\x00",
    b"\x55\x61",
    b"\x07",
    b"\x10\x04\x01",
    b"\x00\x00\x00\x00\x00\x00\x02\x03",
]
payloads = st.builds(lambda p, b: p + b, st.sampled_from(PREFIXES), st.binary(max_size=300))


@pytest.mark.parametrize("decode", DECODERS, ids=lambda f: f.__qualname__)
@settings(max_examples=300)
@given(data=payloads)
def test_decoders_raise_only_codec_errors(decode: Callable[[bytes], object], data: bytes) -> None:
    try:
        value = decode(data)
    except CodecError:
        return
    bytes(value)  # type: ignore[call-overload]  # whatever decodes, encodes


@pytest.mark.parametrize("make", STREAMS)
@settings(max_examples=300)
@given(notes=st.lists(st.tuples(st.floats(-1e6, 1e6), payloads), max_size=8))
def test_streams_never_raise(make: Callable[[], object], notes: list[tuple[float, bytes]]) -> None:
    stream = make()
    for host_t_s, data in notes:
        stream.feed(host_t_s, data)  # type: ignore[attr-defined]


@pytest.mark.parametrize("make", STREAMS)
@settings(max_examples=50)
@given(notes=st.lists(st.tuples(st.floats(0, 1e4), payloads), max_size=8))
def test_streams_replay_identically(
    make: Callable[[], object], notes: list[tuple[float, bytes]]
) -> None:
    """A recording replays to the same output: streams hold no hidden clock or randomness."""

    def replay() -> list[object]:
        stream = make()
        return [repr(x) for h, d in notes for x in stream.feed(h, d)]  # type: ignore[attr-defined]

    assert replay() == replay()
