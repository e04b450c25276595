"""Polar PMD: control-point commands and replies, settings records, data frames (the published
example, hand-packed and generated delta frames), and the accelerometer stream's sample times
and device-to-host clock mapping."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from device.errors import CodecError
from device.profiles.polar_pmd import (
    MeasurementType,
    PmdCommand,
    PmdDataFrame,
    PmdOp,
    PmdResponse,
    PmdSettings,
    PmdStatus,
    PolarAccStream,
    encode_frame,
)

EXAMPLE = bytes.fromhex("02 EA 54 A2 42 8B 45 52 08 01 45 FF E4 FF B5 03")
H10_START = bytes.fromhex("02 02 02 01 08 00 00 01 C8 00 01 01 10 00")


def test_the_published_example_frame() -> None:
    frame = PmdDataFrame.from_bytes(EXAMPLE)
    assert frame.measurement_type == MeasurementType.ACC
    assert not frame.delta
    assert frame.samples.tolist() == [[-187, -28, 949]]
    assert frame.timestamp_ns == int.from_bytes(EXAMPLE[1:9], "little")
    assert bytes(frame) == EXAMPLE


def test_a_hand_packed_delta_frame() -> None:
    # Reference (1, -2, 3); one block of 2 samples × 3 channels at 2 bits, LSB-first:
    # deltas 1, -1, 0, -2, 1, 1 → bit pairs 01 11 00 10 01 01 → bytes 0x8D 0x05.
    body = bytes.fromhex("01 00 FE FF 03 00 02 02 8D 05")
    data = bytes([2]) + (5_000).to_bytes(8, "little") + bytes([0x81]) + body
    frame = PmdDataFrame.from_bytes(data)
    assert frame.delta and frame.timestamp_ns == 5_000
    assert frame.samples.tolist() == [[1, -2, 3], [2, -3, 3], [0, -2, 4]]
    assert bytes(frame) == data


def test_the_delta_encoder_picks_the_width_per_block() -> None:
    quiet = np.tile([[0, 0, 1000]], (17, 1)) + np.arange(17)[:, None] % 2  # deltas ±1: 2 bits
    loud = quiet[-1] + np.cumsum(np.full((16, 3), 300), axis=0)  # deltas 300: 10 bits
    data = encode_frame(np.vstack([quiet, loud]), 10**12, delta=True, block_samples=16)
    body = data[10 + 6 :]
    first_bits, first_count = body[0], body[1]
    second = 2 + -(-first_count * 3 * first_bits // 8)
    assert (first_bits, first_count) == (2, 16)
    assert (body[second], body[second + 1]) == (10, 16)
    assert len(body) == second + 2 + 16 * 3 * 10 // 8


frames = st.tuples(
    hnp.arrays(
        np.int64, st.tuples(st.integers(1, 40), st.just(3)), elements=st.integers(-32768, 32767)
    ),
    st.integers(0, 2**64 - 1),
    st.booleans(),
    st.integers(1, 255),
)


@given(frames)
def test_frames_round_trip(case: tuple[np.ndarray, int, bool, int]) -> None:
    samples, ts_ns, delta, block = case
    data = encode_frame(samples, ts_ns, delta=delta, block_samples=block)
    frame = PmdDataFrame.from_bytes(data)
    assert frame.delta is delta and frame.timestamp_ns == ts_ns
    np.testing.assert_array_equal(frame.samples, samples)


@pytest.mark.parametrize(
    "data",
    [
        EXAMPLE[:9],  # no frame type
        EXAMPLE[:-1],  # a torn sample
        EXAMPLE[:9] + b"\x03" + EXAMPLE[10:],  # unknown uncompressed frame type
        EXAMPLE[:10] + bytes.fromhex("01 00 FE FF 03 00 02 02 8D"),  # delta block cut short
        EXAMPLE[:10] + bytes.fromhex("01 00 FE FF 03 00 00 02"),  # zero-width deltas
    ],
)
def test_malformed_frames_raise_codec_error(data: bytes) -> None:
    data = data[:9] + bytes([data[9] | 0x80]) + data[10:] if len(data) > 16 else data
    with pytest.raises(CodecError):
        PmdDataFrame.from_bytes(data)


def test_an_uncompressed_sample_beyond_int16_cannot_be_encoded() -> None:
    with pytest.raises(CodecError):
        encode_frame([[40000, 0, 0]], 0)


def test_control_point_commands_and_replies() -> None:
    start = PmdCommand.from_bytes(H10_START)
    assert start.op is PmdOp.START and start.measurement_type == MeasurementType.ACC
    assert start.settings == PmdSettings(
        sample_rates_hz=(200,), resolutions_bits=(16,), ranges_g=(8,)
    )
    assert PmdCommand.from_bytes(bytes(start)) == start
    assert bytes(PmdCommand(PmdOp.GET_SETTINGS, MeasurementType.ACC)) == bytes.fromhex("01 02")
    assert bytes(PmdCommand(PmdOp.STOP, MeasurementType.ACC)) == bytes.fromhex("03 02")
    with pytest.raises(CodecError):
        PmdCommand(PmdOp.STOP, 2, PmdSettings())

    ok = PmdResponse.from_bytes(bytes.fromhex("F0 02 02 00 00"))
    assert ok.ok and ok.op is PmdOp.START and not ok.more
    refused = PmdResponse.from_bytes(bytes.fromhex("F0 02 02 08 00"))
    assert not refused.ok and refused.status == PmdStatus.INVALID_SAMPLE_RATE
    assert refused.meaning == "invalid sample rate"
    offered = PmdResponse.from_bytes(
        bytes.fromhex(
            "F0 01 02 00 00 00 04 19 00 32 00 64 00 C8 00 01 01 10 00 02 03 02 00 04 00 08 00"
        )
    )
    assert offered.settings() == PmdSettings((25, 50, 100, 200), (16,), (2, 4, 8))
    verity = PmdSettings(sample_rates_hz=(52,), factors=(np.float32(0.000244).item(),))
    assert PmdSettings.from_bytes(bytes(verity)) == verity
    with pytest.raises(CodecError):
        PmdSettings.from_bytes(bytes.fromhex("07 01 00"))  # unknown setting type


settings = st.builds(
    PmdSettings,
    st.lists(st.integers(0, 0xFFFF), max_size=4).map(tuple),
    st.lists(st.integers(0, 0xFFFF), max_size=4).map(tuple),
    st.lists(st.integers(0, 0xFFFF), max_size=4).map(tuple),
    st.lists(st.integers(0, 0xFF), max_size=4).map(tuple),
    st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=2).map(tuple),
)


@given(settings, st.integers(0, 255), st.integers(0, 255), st.booleans())
def test_settings_and_responses_round_trip(
    s: PmdSettings, mtype: int, status: int, more: bool
) -> None:
    assert PmdSettings.from_bytes(bytes(s)) == s
    command = PmdCommand.start(mtype, s)
    assert PmdCommand.from_bytes(bytes(command)) == command
    reply = PmdResponse(PmdOp.GET_SETTINGS, mtype, status, more, bytes(s))
    assert PmdResponse.from_bytes(bytes(reply)) == reply


def _acc_session(
    duration_s: float,
    *,
    fs_hz: float = 200.0,
    per_frame: int = 36,
    drift_ppm: float = 0.0,
    latency_s: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
) -> tuple[list[tuple[float, bytes]], np.ndarray]:
    """Frames of a device whose clock runs ``drift_ppm`` fast, received after a random latency;
    returns the notifications and the true host time of every sample."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * fs_hz) // per_frame * per_frame
    true_s = np.arange(n) / fs_hz  # host clock
    device_ns = np.rint((5e8 + true_s * (1 + drift_ppm * 1e-6)) * 1e9).astype(np.int64)
    mg = np.zeros((n, 3), dtype=np.int64)
    mg[:, 2] = 1000
    notes = []
    for end in range(per_frame, n + 1, per_frame):
        host = true_s[end - 1] + rng.uniform(*latency_s)
        notes.append((host, encode_frame(mg[end - per_frame : end], int(device_ns[end - 1]))))
    return notes, true_s


def _run(stream: PolarAccStream, notes: list[tuple[float, bytes]]) -> np.ndarray:
    return np.concatenate([b.t_s for h, d in notes for b in stream.feed(h, d)])


def test_samples_are_spread_between_frame_timestamps_and_scaled_to_g() -> None:
    notes, true_s = _acc_session(5.0)
    stream = PolarAccStream(200.0)
    blocks = [b for h, d in notes for b in stream.feed(h, d)]
    t_s = np.concatenate([b.t_s for b in blocks])
    np.testing.assert_allclose(t_s, true_s, atol=1e-6)
    np.testing.assert_array_equal(blocks[0].acc_g[:, 2], 1.0)
    assert stream.packets == len(notes) and stream.lost_samples == 0


def test_a_lost_frame_is_counted_and_leaves_a_hole_in_the_times() -> None:
    notes, true_s = _acc_session(5.0)
    stream = PolarAccStream(200.0)
    t_s = _run(stream, notes[:10] + notes[12:])
    assert stream.lost_samples == 72 and stream.lost_packets == 2
    np.testing.assert_allclose(t_s, np.concatenate([true_s[:360], true_s[432:]]), atol=1e-6)


def test_a_device_clock_jump_restarts_the_mapping(caplog: pytest.LogCaptureFixture) -> None:
    notes, true_s = _acc_session(4.0)
    stream = PolarAccStream(200.0)
    jumped = [
        (h, d[:1] + (int.from_bytes(d[1:9], "little") - 10**17).to_bytes(8, "little") + d[9:])
        for h, d in notes[10:]
    ]
    with caplog.at_level(logging.WARNING):
        t_s = _run(stream, notes[:10] + jumped)
    assert stream.clock_resets == 1
    assert np.all(np.diff(t_s) >= 0)
    np.testing.assert_allclose(t_s[-36:], true_s[-36:], atol=0.006)


def test_clock_drift_is_tracked_despite_latency() -> None:
    """A device clock 100 ppm fast and 0–40 ms (20 ± 20 ms) of random latency, with 1 % of
    frames delayed by a further 300 ms: after the first minute (one offset window) every
    mapped time is within 1 ms of the host truth for the rest of 10 minutes (uncorrected,
    the drift alone would reach 60 ms)."""
    notes, true_s = _acc_session(600.0, drift_ppm=100.0, latency_s=(0.0, 0.040), seed=3)
    rng = np.random.default_rng(4)
    notes = [(h + 0.3 * (rng.random() < 0.01), d) for h, d in notes]
    stream = PolarAccStream(200.0)
    t_s = _run(stream, notes)
    settled = true_s >= 60.0
    assert np.max(np.abs(t_s - true_s)[settled]) < 1e-3
    assert stream.clock.drift_ppm == pytest.approx(-100.0, abs=10.0)


def test_malformed_and_foreign_frames_are_counted_not_raised() -> None:
    stream = PolarAccStream(200.0)
    assert stream.feed(0.0, EXAMPLE[:-1]) == []
    assert stream.feed(0.1, b"\x00" + EXAMPLE[1:]) == []  # an ECG frame on the ACC stream
    assert stream.malformed == 2 and stream.packets == 0
