"""The recording format: round trips, appends, damage handling, size, speed, and the spec page."""

from __future__ import annotations

import json
import logging
import math
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.samples import CadenceReading, SampleBlock
from recordings.logfile import (
    SYNC,
    LogFormatError,
    LogHeader,
    LogReader,
    LogWriter,
    Note,
    Notification,
    Record,
    read_log,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "log-format.md"
RSC_MEASUREMENT = "00002a53-0000-1000-8000-00805f9b34fb"
HEADER = LogHeader("sim-pod", "foot", 200.0, "2024-05-01T06:30:00Z", extra={"firmware": "1.2"})


def frame(rtype: int, payload: bytes, flags: int = 0) -> bytes:
    """An independent encoder written from docs/log-format.md, not from the module."""
    head = SYNC + struct.pack("<BBI", rtype, flags, len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(head + payload))


def block(rng: np.random.Generator, t0_s: float, n: int, gyro: bool) -> SampleBlock:
    """Samples whose values are exactly representable in float32, as a sensor delivers them."""
    t_s = t0_s + np.cumsum(rng.uniform(0.004, 0.006, n))
    acc = rng.normal(0.0, 2.0, (n, 3)).astype(np.float32).astype(np.float64)
    dps = rng.normal(0.0, 300.0, (n, 3)).astype(np.float32).astype(np.float64) if gyro else None
    return SampleBlock(t_s, acc, dps)


def mixed_records(seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [
        block(rng, 0.0, 4, gyro=True),
        block(rng, 0.02, 7, gyro=True),
        CadenceReading(0.05, 171.5, 3.25),
        block(rng, 0.06, 1, gyro=False),
        Notification(0.0612, RSC_MEASUREMENT, bytes([0x02, 0x9A, 0x01, 0xAC])),
        Note(0.07, {"gap": {"start_s": 0.07, "end_s": 0.5}, "lost_samples": 86}),
        CadenceReading(0.5, 168.0, None),
        block(rng, 0.5, 4, gyro=False),
        Notification(0.75, RSC_MEASUREMENT, b""),
    ]


def assert_same(got: Record, want: Record) -> None:
    assert type(got) is type(want)
    if isinstance(want, SampleBlock):
        assert isinstance(got, SampleBlock)
        np.testing.assert_array_equal(got.t_s, want.t_s, strict=True)
        np.testing.assert_array_equal(got.acc_g, want.acc_g, strict=True)
        if want.gyro_dps is None:
            assert got.gyro_dps is None
        else:
            assert got.gyro_dps is not None
            np.testing.assert_array_equal(got.gyro_dps, want.gyro_dps, strict=True)
    else:
        assert got == want


def write(path: Path, records: list[Record], coalesce_s: float = 0.0) -> list[int]:
    """Write ``records`` one per record; return the file offset where each one starts."""
    offsets = []
    with LogWriter(path, HEADER, coalesce_s=coalesce_s) as writer:
        for record in records:
            writer.flush()
            offsets.append(path.stat().st_size)
            writer.write(record)
    return offsets


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "recordings.logfile" and r.levelname == "WARNING"
    ]


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    records = mixed_records()
    write(path, records)
    reader = read_log(path)
    assert reader.header == HEADER
    got = list(reader)
    assert len(got) == len(records)
    for g, w in zip(got, records, strict=True):
        assert_same(g, w)
    assert (reader.truncated, reader.corrupted, reader.skipped) == (0, 0, 0)


def test_short_uuid_reads_back_in_canonical_form(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    with LogWriter(path, HEADER) as writer:
        writer.write(Notification(1.0, "2A53", b"\x00"))
    assert list(LogReader(path)) == [Notification(1.0, RSC_MEASUREMENT, b"\x00")]


def test_writer_coalesces_small_blocks_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    blocks = [block(rng, 0.02 * i, 4, gyro=True) for i in range(40)]
    note = Note(0.41, {"mark": 1})
    path = tmp_path / "run.log"
    with LogWriter(path, HEADER, coalesce_s=0.25) as writer:
        for b in blocks[:21]:
            writer.write(b)
        writer.write(note)
        for b in blocks[21:]:
            writer.write(b)
    got = list(LogReader(path))
    # >= 50 samples per record at 200 Hz: 13 blocks fill a record; the note flushes the next 8
    # early; close() flushes the last 6.
    kinds = [len(r) if isinstance(r, SampleBlock) else "note" for r in got]
    assert kinds == [52, 32, "note", 52, 24]
    assert_same(got[2], note)
    samples = [r for r in got if isinstance(r, SampleBlock)]
    assert_same(SampleBlock.concat(samples), SampleBlock.concat(blocks))


def test_flush_makes_pending_samples_readable(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    b = block(rng, 0.0, 4, gyro=False)
    path = tmp_path / "run.log"
    writer = LogWriter(path, HEADER)
    writer.write(b)
    assert list(LogReader(path)) == []  # still coalescing
    writer.flush(fsync=True)
    (got,) = list(LogReader(path))
    assert_same(got, b)
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b)


def test_append_keeps_the_first_header(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    records = mixed_records()
    write(path, records[:4])
    resumed = LogHeader("sim-pod", "foot", 200.0, "2024-05-01T06:41:07+00:00")
    with LogWriter(path, resumed, coalesce_s=0) as writer:
        assert writer.header == HEADER
        for record in records[4:]:
            writer.write(record)
    reader = LogReader(path)
    assert reader.header == HEADER
    for g, w in zip(reader, records, strict=True):
        assert_same(g, w)


def test_append_refuses_another_recording(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    write(path, [])
    other = LogHeader("other-pod", "foot", 200.0, "2024-05-01T06:30:00Z")
    with pytest.raises(LogFormatError, match="new file"):
        LogWriter(path, other)
    text = tmp_path / "notes.log"
    text.write_text("my run notes\n")
    with pytest.raises(LogFormatError, match="not a stridecue log"):
        LogWriter(text, HEADER)
    assert text.read_text() == "my run notes\n"


@pytest.mark.parametrize(
    "bad",
    [
        {"start_time": "2024-05-01T06:30:00"},
        {"start_time": "2024-05-01T08:30:00+02:00"},
        {"placement": "wrist"},
        {"sample_rate_hz": 0.0},
        {"format_version": 2},
    ],
)
def test_writer_rejects_a_bad_header(tmp_path: Path, bad: dict[str, object]) -> None:
    fields = {"device": "pod", "placement": "foot", "sample_rate_hz": 200.0}
    fields |= {"start_time": "2024-05-01T06:30:00Z"} | bad
    with pytest.raises(ValueError):
        LogWriter(tmp_path / "run.log", LogHeader(**fields))  # type: ignore[arg-type]
    assert not (tmp_path / "run.log").exists()


@pytest.mark.parametrize("count", [1, 2, 3, 5, 6, 7, 8, 9])
def test_truncated_last_record_at_every_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, count: int
) -> None:
    path = tmp_path / "run.log"
    records = mixed_records()[:count]
    start = write(path, records)[-1]
    full = path.read_bytes()
    cut_path = tmp_path / "cut.log"
    for cut in range(start + 1, len(full)):
        cut_path.write_bytes(full[:cut])
        caplog.clear()
        reader = LogReader(cut_path)
        got = list(reader)
        assert len(got) == count - 1, cut
        for g, w in zip(got, records, strict=False):
            assert_same(g, w)
        assert (reader.truncated, reader.corrupted) == (1, 0), cut
        assert len(warnings_of(caplog)) == 1


def test_corrupted_middle_record_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "run.log"
    records = mixed_records()
    offsets = write(path, records)
    victim = 1
    full = path.read_bytes()
    bad_path = tmp_path / "bad.log"
    for i in range(offsets[victim], offsets[victim + 1]):
        damaged = bytearray(full)
        damaged[i] ^= 0xFF
        bad_path.write_bytes(bytes(damaged))
        caplog.clear()
        reader = LogReader(bad_path)
        got = list(reader)
        want = records[:victim] + records[victim + 1 :]
        assert len(got) == len(want), i
        for g, w in zip(got, want, strict=True):
            assert_same(g, w)
        assert (reader.corrupted, reader.truncated) == (1, 0), i
        assert len(warnings_of(caplog)) == 1


def test_damaged_last_record_is_corruption_not_truncation(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    records = mixed_records()
    last = write(path, records)[-1]
    damaged = bytearray(path.read_bytes())
    damaged[last + 12] ^= 0x01  # inside the payload: the record is whole but its CRC fails
    path.write_bytes(bytes(damaged))
    reader = LogReader(path)
    assert len(list(reader)) == len(records) - 1
    assert (reader.corrupted, reader.truncated) == (1, 0)


def test_unknown_record_type_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    records = mixed_records()
    offsets = write(path, records)
    full = path.read_bytes()
    newer = frame(0x7E, b"from a newer writer")
    path.write_bytes(full[: offsets[3]] + newer + full[offsets[3] :])
    reader = LogReader(path)
    got = list(reader)
    for g, w in zip(got, records, strict=True):
        assert_same(g, w)
    assert (reader.skipped, reader.corrupted, reader.truncated) == (1, 0, 0)


def header_record(**fields: object) -> bytes:
    obj = {
        "format_version": 1,
        "device": "pod",
        "placement": "foot",
        "sample_rate_hz": 200.0,
        "start_time": "2024-05-01T06:30:00Z",
        "units": {"t": "s", "acc": "g", "gyro": "deg/s"},
        "extra": {},
    }
    return frame(0x01, json.dumps(obj | fields).encode())


def test_independent_encoder_is_read(tmp_path: Path) -> None:
    path = tmp_path / "hand.log"
    t = struct.pack("<2d", 0.0, 0.005)
    acc = struct.pack("<6f", 0.0, 0.0, 1.0, 0.5, -0.25, 2.0)
    gyro = struct.pack("<6f", 1.0, 2.0, 3.0, -4.0, -5.0, -6.0)
    samples = frame(0x02, struct.pack("<I", 2) + t + acc + gyro, flags=1)
    cadence = frame(0x03, struct.pack("<3d", 1.0, 180.0, 4.5), flags=1)
    path.write_bytes(header_record() + samples + cadence)
    got = list(LogReader(path))
    assert_same(
        got[0],
        SampleBlock(
            np.array([0.0, 0.005]),
            np.array([[0.0, 0.0, 1.0], [0.5, -0.25, 2.0]]),
            np.array([[1.0, 2.0, 3.0], [-4.0, -5.0, -6.0]]),
        ),
    )
    assert got[1] == CadenceReading(1.0, 180.0, 4.5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"t_s,acc_x_g\n0,1\n", "not a stridecue log"),
        (SYNC + b"\x01\x00", "damaged or cut short"),
        (header_record(format_version=2), "version 2.*upgrade stridecue"),
        (header_record(format_version="1"), "format_version"),
        (header_record(device=None), "device"),
    ],
)
def test_not_a_readable_log(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(content)
    with pytest.raises(LogFormatError, match=message) as info:
        LogReader(path)
    assert info.value.path == path


def test_one_hour_in_20ms_blocks_fits_30_mb(tmp_path: Path) -> None:
    fs_hz, minute_s = 200.0, 60.0
    rng = np.random.default_rng(3)
    whole = block(rng, 0.0, int(fs_hz * minute_s), gyro=True)
    sizes = {}
    for coalesce_s in (0.25, 0.0):
        path = tmp_path / f"size{coalesce_s}.log"
        with LogWriter(path, HEADER, coalesce_s=coalesce_s) as writer:
            header_bytes = path.stat().st_size
            for i in range(0, len(whole), 4):
                writer.write(whole.slice(i, i + 4))
        sizes[coalesce_s] = path.stat().st_size - header_bytes
    # 32 bytes per 6-axis sample; each record adds 18 (14 of framing, 4 of sample count).
    n = len(whole)
    assert sizes[0.0] == n * 32 + math.ceil(n / 4) * 18
    assert sizes[0.25] == n * 32 + math.ceil(n / 52) * 18
    per_hour = {k: v * 3600 / minute_s for k, v in sizes.items()}  # 26.3 and 23.3 MB
    assert max(per_hour.values()) <= 30e6


def test_reading_an_hour_takes_under_a_second(tmp_path: Path) -> None:
    fs_hz, n = 200.0, 200 * 3600
    rng = np.random.default_rng(4)
    whole = block(rng, 0.0, n, gyro=True)
    path = tmp_path / "hour.log"
    with LogWriter(path, HEADER) as writer:
        for i in range(0, n, int(fs_hz / 4)):  # what the writer's coalescing produces
            writer.write(whole.slice(i, i + 50))
    start = time.perf_counter()
    got = SampleBlock.concat([r for r in LogReader(path) if isinstance(r, SampleBlock)])
    elapsed_s = time.perf_counter() - start
    assert_same(got, whole)
    assert elapsed_s < 1.0


def test_docs_example_is_what_the_writer_writes(tmp_path: Path) -> None:
    if not DOCS.is_file():
        pytest.skip("docs/log-format.md is not in this tree")
    text = DOCS.read_text(encoding="utf-8")
    dump = re.search(r"```\n(00000000: .*?)```", text, re.DOTALL)
    assert dump is not None
    hex_digits = "".join(line[10:49].replace(" ", "") for line in dump.group(1).splitlines())
    path = tmp_path / "tiny.log"
    header = LogHeader("pod", "foot", 200.0, "2024-05-01T06:30:00Z")
    with LogWriter(path, header, coalesce_s=0) as writer:
        writer.write(
            SampleBlock(np.array([0.0, 0.005]), np.array([[0, 0, 1.0], [0.5, -0.25, 2.0]]))
        )
        writer.write(CadenceReading(0.25, 172.0, None))
        writer.write(Note(0.5, {"gap": 1}))
    assert path.read_bytes() == bytes.fromhex(hex_digits)


@pytest.fixture(scope="module")
def valid_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("fuzz") / "valid.log"
    write(path, mixed_records())
    return path.with_name("fuzzed.log"), path.read_bytes()


TAIL_PIECES = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.just(SYNC),
        st.just(frame(0x02, b"\x01\x00\x00\x00")),  # intact frame, payload too short for n = 1
        st.builds(lambda n: SYNC + struct.pack("<BBI", 2, 0, n), st.integers(0, 2**32 - 1)),
    ),
    max_size=6,
).map(b"".join)


@settings(max_examples=150, deadline=None)
@given(tail=TAIL_PIECES)
def test_appended_garbage_only_ever_drops_the_garbage(
    valid_log: tuple[Path, bytes], tail: bytes
) -> None:
    path, base = valid_log
    path.write_bytes(base + tail)
    records = mixed_records()
    reader = LogReader(path)
    got = list(reader)
    for g, w in zip(got, records, strict=False):
        assert_same(g, w)
    assert len(got) == len(records)
    assert (reader.truncated + reader.corrupted >= 1) == (len(tail) > 0)
