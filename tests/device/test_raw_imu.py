"""The open raw-IMU footpod profile: configuration, control point, data packets, the MTU
batcher, and the stream's sequence-gap accounting, clock unwrap and drift tracking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from device.errors import CodecError
from device.profiles.raw_imu import (
    ACC_RANGES_G,
    GYRO_RANGES_DPS,
    Axes,
    RawImuCommand,
    RawImuConfig,
    RawImuOp,
    RawImuPacket,
    RawImuResponse,
    RawImuResult,
    RawImuStream,
    encode_batches,
    max_samples,
)
from dsp.samples import SampleBlock

SIX_AXIS = RawImuConfig(200, 16, 2000, Axes.ACC | Axes.GYRO)
ACC_ONLY = RawImuConfig(200, 8, 2000, Axes.ACC)


def test_configuration_known_bytes_and_range_checks() -> None:
    assert bytes(SIX_AXIS) == bytes.fromhex("C8 00 10 D0 07 03")
    assert RawImuConfig.from_bytes(bytes.fromhex("E8 03 04 F4 01 01")) == RawImuConfig(
        1000, 4, 500, Axes.ACC
    )
    for bad in ("C8 00 03 D0 07 03", "00 00 10 D0 07 03", "C8 00 10 D0 07 02", "C8 00 10 D0 07"):
        with pytest.raises(CodecError):
            RawImuConfig.from_bytes(bytes.fromhex(bad))


@given(
    st.integers(1, 3200),
    st.sampled_from(ACC_RANGES_G),
    st.sampled_from(GYRO_RANGES_DPS),
    st.sampled_from([Axes.ACC, Axes.ACC | Axes.GYRO]),
)
def test_configuration_round_trips(rate: int, acc: int, gyro: int, axes: Axes) -> None:
    config = RawImuConfig(rate, acc, gyro, axes)
    assert RawImuConfig.from_bytes(bytes(config)) == config


@given(st.sampled_from(RawImuOp), st.sampled_from(RawImuResult))
def test_control_point_round_trips(op: RawImuOp, result: RawImuResult) -> None:
    assert RawImuCommand.from_bytes(bytes(RawImuCommand(op))).op is op
    assert bytes(RawImuResponse(op, result)) == bytes([0x80, op, result])
    assert RawImuResponse.from_bytes(bytes([0x80, op, result])) == RawImuResponse(op, result)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    hnp.arrays(np.int16, st.tuples(st.integers(1, 40), st.sampled_from([3, 6]))),
    st.booleans(),
)
def test_data_packets_round_trip(seq: int, t_us: int, samples: np.ndarray, sat: bool) -> None:
    p = RawImuPacket.from_bytes(bytes(RawImuPacket(seq, t_us, samples, sat)))
    assert (p.seq, p.t_first_us, p.saturated) == (seq, t_us, sat)
    np.testing.assert_array_equal(p.samples, samples)


def test_a_packet_has_exactly_the_bytes_its_header_announces() -> None:
    data = bytes(RawImuPacket(7, 1000, np.zeros((2, 3), np.int16)))
    assert data[:8] == bytes.fromhex("07 00 E8 03 00 00 02 01")
    for bad in (data[:-1], data + b"\x00", data[:7] + b"\x09" + data[8:], data[:6] + b"\x00\x01"):
        with pytest.raises(CodecError):
            RawImuPacket.from_bytes(bad)


def test_max_samples_fills_the_mtu() -> None:
    assert max_samples(23, gyro=False) == 2 and max_samples(23, gyro=True) == 1
    assert max_samples(247, gyro=False) == 39 and max_samples(247, gyro=True) == 19
    assert max_samples(4000, gyro=False) == 255
    with pytest.raises(CodecError):
        max_samples(20, gyro=True)


def _block(n: int, fs_hz: float, t0_s: float, seed: int = 0) -> SampleBlock:
    rng = np.random.default_rng(seed)
    acc = rng.normal(0.0, 3.0, (n, 3))
    gyro = rng.normal(0.0, 400.0, (n, 3))
    return SampleBlock(t0_s + np.arange(n) / fs_hz, acc, gyro)


def _notes(packets: list[bytes], per: int, fs_hz: float, latency_s: float = 0.0) -> list:
    """Each packet received when its last sample is taken (host clock = first-packet-relative
    device clock here), plus ``latency_s``."""
    return [((i * per + per - 1) / fs_hz + latency_s, p) for i, p in enumerate(packets)]


def _feed(stream: RawImuStream, notes: list) -> SampleBlock:
    return SampleBlock.concat([b for h, d in notes for b in stream.feed(h, d)])


def test_samples_survive_encoding_within_one_lsb() -> None:
    block = _block(400, 200.0, 3.0)
    packets = encode_batches(block, 0, 247, SIX_AXIS)
    assert len(packets) == -(-400 // 19) and all(len(p) <= 244 for p in packets)
    out = _feed(RawImuStream(SIX_AXIS), _notes(packets, 19, 200.0))
    np.testing.assert_allclose(out.acc_g, block.acc_g, atol=16 / 32768 / 2 + 1e-12)
    assert out.gyro_dps is not None and block.gyro_dps is not None
    np.testing.assert_allclose(out.gyro_dps, block.gyro_dps, atol=2000 / 32768 / 2 + 1e-9)
    np.testing.assert_allclose(out.t_s, block.t_s - 3.0, atol=1e-6)


def test_out_of_range_values_are_clipped_and_flagged() -> None:
    block = SampleBlock(np.arange(4) / 200, np.array([[0, 0, 1.0], [0, 0, 20.0]] * 2))
    packets = encode_batches(block, 0, 23, ACC_ONLY)
    assert [RawImuPacket.from_bytes(p).saturated for p in packets] == [True, True]
    stream = RawImuStream(ACC_ONLY)
    out = _feed(stream, _notes(packets, 2, 200.0))
    assert out.acc_g[1, 2] == pytest.approx(8.0 * 32767 / 32768)
    assert stream.saturated_packets == 2


def test_sequence_wrap_is_not_a_loss_and_gaps_are_counted() -> None:
    block = _block(200, 200.0, 0.0)
    packets = encode_batches(block, 65530, 23, ACC_ONLY)  # 100 packets of 2 samples
    assert RawImuPacket.from_bytes(packets[10]).seq == 4  # wrapped
    notes = _notes(packets, 2, 200.0)
    stream = RawImuStream(ACC_ONLY)
    kept = notes[:20] + notes[23:60] + notes[61:]
    out = _feed(stream, kept)
    assert (stream.lost_packets, stream.lost_samples) == (4, 8)
    assert stream.restarts == 0
    np.testing.assert_allclose(out.t_s, np.delete(block.t_s, [*range(40, 46), 120, 121]), atol=1e-6)
    assert np.max(np.diff(out.t_s)) == pytest.approx(7 / 200)  # the hole the engine sees


def test_the_device_clock_unwraps_across_its_wrap() -> None:
    wrap_s = 2**32 * 1e-6
    block = _block(4000, 200.0, wrap_s - 5.0)  # 20 s straddling the wrap
    packets = encode_batches(block, 0, 23, ACC_ONLY)
    assert RawImuPacket.from_bytes(packets[-1]).t_first_us < 20_000_000
    out = _feed(RawImuStream(ACC_ONLY), _notes(packets, 2, 200.0))
    np.testing.assert_allclose(out.t_s, block.t_s - block.t_s[0], atol=2e-6)


def test_whole_wraps_missed_in_a_long_silence_are_recovered_from_host_time() -> None:
    wrap_s = 2**32 * 1e-6
    before = encode_batches(_block(2, 200.0, 10.0), 0, 23, ACC_ONLY)
    after = encode_batches(_block(2, 200.0, 10.0 + wrap_s + 30.0), 5, 23, ACC_ONLY)
    stream = RawImuStream(ACC_ONLY)
    stream.feed(0.005, before[0])
    (block,) = stream.feed(0.005 + wrap_s + 30.0, after[0])
    assert block.t_s[0] == pytest.approx(wrap_s + 30.0, abs=1e-3)
    assert stream.restarts == 0 and stream.lost_packets == 4


def test_a_sequence_going_back_restarts_the_stream() -> None:
    packets = encode_batches(_block(20, 200.0, 50.0), 100, 23, ACC_ONLY)
    restarted = encode_batches(_block(20, 200.0, 0.0), 0, 23, ACC_ONLY)
    stream = RawImuStream(ACC_ONLY)
    first = _feed(stream, _notes(packets, 2, 200.0))
    second = _feed(stream, _notes(restarted, 2, 200.0, latency_s=0.1))
    assert stream.restarts == 1 and stream.lost_packets == 0
    assert second.t_s[0] >= first.t_s[-1]


def test_clock_drift_is_tracked_despite_latency() -> None:
    """100 ppm fast device clock, 0–40 ms random latency: within 1 ms of host truth after the
    first minute, for 10 minutes."""
    fs_hz, per, drift = 200.0, 6, 100e-6
    n = 600 * 200 // per * per
    true_s = np.arange(n) / fs_hz
    device = SampleBlock(1000.0 + true_s * (1 + drift), np.zeros((n, 3)))
    packets = encode_batches(device, 0, 3 + 8 + per * 6, ACC_ONLY)
    rng = np.random.default_rng(7)
    latency = rng.uniform(0.0, 0.040, len(packets))
    notes = [(true_s[i * per + per - 1] + latency[i], p) for i, p in enumerate(packets)]
    stream = RawImuStream(ACC_ONLY)
    out = _feed(stream, notes)
    settled = true_s >= 60.0
    assert np.max(np.abs(out.t_s - true_s)[settled]) < 1e-3
    assert stream.clock.drift_ppm == pytest.approx(-100.0, abs=5.0)


def test_a_packet_with_other_axes_than_configured_is_rejected() -> None:
    packets = encode_batches(_block(2, 200.0, 0.0), 0, 47, SIX_AXIS)
    stream = RawImuStream(ACC_ONLY)
    assert stream.feed(0.0, packets[0]) == [] and stream.malformed == 1
