"""WitMotion packets, register commands, and the stream's header resynchronisation over any
split of the byte stream, host stamping and hole detection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.errors import CodecError
from device.profiles.witmotion import (
    WitMotionPacket,
    WitMotionStream,
    WitRegisterWrite,
    read_register,
    save,
    set_rate,
    unlock,
)


def _packet(k: int) -> bytes:
    """A packet whose values identify it: acc x = k/1000 g."""
    return bytes(
        WitMotionPacket((k / 1000, 0.0, 1.0), (0.0, 10.0 * (k % 7), 0.0), (0.0, 0.0, 90.0))
    )


def test_known_packet_bytes() -> None:
    data = bytes.fromhex("55 61 00 08 00 00 00 00 00 10 00 00 00 00 00 40 00 00 00 00")
    p = WitMotionPacket.from_bytes(data)
    assert p.acc_g == (1.0, 0.0, 0.0)
    assert p.gyro_dps == (250.0, 0.0, 0.0)
    assert p.angle_deg == (90.0, 0.0, 0.0)
    assert bytes(p) == data
    with pytest.raises(CodecError):
        WitMotionPacket.from_bytes(data[:-1])
    with pytest.raises(CodecError):
        WitMotionPacket((17.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))


counts = st.lists(st.integers(-32768, 32767), min_size=9, max_size=9)


@given(counts)
def test_packets_round_trip(c: list[int]) -> None:
    acc, gyro, angle = (
        tuple(x * s / 32768 for x in c[i : i + 3]) for i, s in ((0, 16), (3, 2000), (6, 180))
    )
    p = WitMotionPacket(acc, gyro, angle)  # type: ignore[arg-type]
    assert WitMotionPacket.from_bytes(bytes(p)) == p


def test_register_commands() -> None:
    assert bytes(unlock()) == bytes.fromhex("FF AA 69 88 B5")
    assert bytes(save()) == bytes.fromhex("FF AA 00 00 00")
    assert bytes(read_register(0x03)) == bytes.fromhex("FF AA 27 03 00")
    assert bytes(set_rate(100)) == bytes.fromhex("FF AA 03 09 00")
    assert bytes(set_rate(200)) == bytes.fromhex("FF AA 03 0A 00")
    assert WitRegisterWrite.from_bytes(bytes(set_rate(200))) == set_rate(200)
    with pytest.raises(CodecError):
        set_rate(150)


# Garbage without 0x55, so it cannot hold a false header.
garbage = st.binary(max_size=25).map(lambda b: b.replace(b"\x55", b"\x00"))


@given(st.lists(garbage, min_size=12, max_size=12), st.lists(st.integers(0, 400), max_size=30))
def test_resync_finds_the_same_packets_whatever_the_split(
    noise: list[bytes], cuts: list[int]
) -> None:
    stream_bytes = b"".join(n + _packet(k) for k, n in enumerate(noise))
    bounds = [0, *sorted(c % (len(stream_bytes) + 1) for c in cuts), len(stream_bytes)]
    stream = WitMotionStream(100.0)
    blocks = [
        b
        for i, (a, z) in enumerate(itertools.pairwise(bounds))
        for b in stream.feed(i * 0.01, stream_bytes[a:z])
    ]
    acc = np.concatenate([b.acc_g for b in blocks])
    np.testing.assert_allclose(acc[:, 0], np.arange(12) / 1000, atol=16 / 32768)
    assert stream.packets == 12
    assert stream.discarded_bytes == sum(len(n) for n in noise)


def test_bunched_deliveries_are_spread_evenly_and_a_hole_is_seen() -> None:
    """100 Hz, delivered three at a time 4 ms after every third sample (one connection event
    per 30 ms), with 2 s of samples missing at 20 s: the output keeps an even 10 ms spacing,
    the hole shows in the times and is counted, and the stamps settle back on the truth
    (plus the 4 ms transit floor, which no host can see)."""
    fs_hz = 100.0
    true_s = np.arange(4000) / fs_hz
    present = (true_s < 20.0) | (true_s >= 22.0)
    stream = WitMotionStream(fs_hz)
    out = []
    for start in range(0, 4000, 3):
        event_s = true_s[min(start + 2, 3999)] + 0.004
        for k in range(start, min(start + 3, 4000)):
            if present[k]:
                out += stream.feed(event_s, _packet(k))
    t_s = np.concatenate([b.t_s for b in out])
    kept = true_s[present]
    assert stream.lost_samples == pytest.approx(200, abs=3)
    hole = np.argmax(np.diff(t_s))
    assert kept[hole] == pytest.approx(19.99) and t_s[hole + 1] - t_s[hole] > 1.99
    settled = ((kept >= 5.0) & (kept < 20.0)) | (kept >= 30.0)
    np.testing.assert_allclose(t_s[settled] - kept[settled], 0.004, atol=1e-3)
    np.testing.assert_allclose(np.diff(t_s[(kept >= 5) & (kept < 19.9)]), 0.01, atol=1e-4)


def test_foreign_bytes_are_counted_and_never_raise() -> None:
    stream = WitMotionStream(100.0)
    assert stream.feed(0.0, b"\x00\x01\x02") == []
    assert stream.discarded_bytes == 3 and stream.malformed == 1
