"""The outbox: order, ack, durability across a close and a SIGKILL, the bound, bad files."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bus.outbox import Outbox, OutboxCorruptError, OutboxLockedError
from bus.settings import BusError

REPO = Path(__file__).resolve().parents[2]


def fill(outbox: Outbox, n: int, start: int = 0) -> list[int]:
    return [outbox.put(f"t/{i}", f"payload {i}".encode(), 1) for i in range(start, start + n)]


def test_pending_in_insertion_order_and_ack_removes(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    ids = fill(outbox, 5)
    assert ids == sorted(ids)
    assert [e.payload for e in outbox.pending()] == [f"payload {i}".encode() for i in range(5)]
    assert [(e.topic, e.qos) for e in outbox.pending()] == [(f"t/{i}", 1) for i in range(5)]
    outbox.ack(ids[1])
    outbox.ack(ids[3])
    outbox.ack(12345)  # unknown: nothing happens
    assert [e.id for e in outbox.pending()] == [ids[0], ids[2], ids[4]]
    assert len(outbox) == 3
    outbox.close()


def test_reopen_after_close_without_ack_gives_everything_back(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path)
    ids = fill(outbox, 3)
    outbox.ack(ids[0])
    outbox.close()
    again = Outbox(path)
    assert [(e.id, e.payload) for e in again.pending()] == [
        (ids[1], b"payload 1"),
        (ids[2], b"payload 2"),
    ]
    assert len(again) == 2
    assert fill(again, 1)[0] > ids[2]  # ids never reused, so a re-sent message keeps its place
    again.close()


def test_put_is_durable_when_the_process_is_killed_right_after(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    script = (
        "import sys\n"
        "from bus.outbox import Outbox\n"
        "box = Outbox(sys.argv[1])\n"
        "for i in range(3):\n"
        "    print(box.put(f't/{i}', bytes([i]) * 10, 1), flush=True)\n"
        "sys.stdin.read()\n"  # wait to be killed: no close, no atexit
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        ids = [int(child.stdout.readline()) for _ in range(3)]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    outbox = Outbox(path)
    assert [(e.id, e.payload) for e in outbox.pending()] == [
        (ids[i], bytes([i]) * 10) for i in range(3)
    ]
    outbox.close()


def test_full_outbox_drops_the_oldest_counts_and_warns_once_per_episode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", max_messages=4)
    with caplog.at_level(logging.WARNING, logger="bus.outbox"):
        ids = fill(outbox, 7)
        assert len(outbox) == 4
        assert outbox.dropped == 3
        assert [e.id for e in outbox.pending()] == ids[3:]
        assert len(caplog.records) == 1
        outbox.ack(ids[3])
        fill(outbox, 1, start=7)  # room again: the episode ends
        fill(outbox, 1, start=8)  # full again: a new episode, a new warning
    assert outbox.dropped == 4
    assert [e.payload for e in outbox.pending()] == [
        b"payload 5",
        b"payload 6",
        b"payload 7",
        b"payload 8",
    ]
    assert len(caplog.records) == 2
    outbox.close()


def test_reopening_with_a_smaller_bound_trims_on_the_next_put(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path)
    ids = fill(outbox, 5)
    outbox.close()
    small = Outbox(path, max_messages=2)
    new = fill(small, 1, start=5)
    assert [e.id for e in small.pending()] == [ids[4], *new]
    assert small.dropped == 4
    small.close()


def test_corrupt_file_is_a_clear_bus_error(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    with pytest.raises(OutboxCorruptError, match="damaged") as info:
        Outbox(path)
    assert isinstance(info.value, BusError)
    assert str(path) in str(info.value)


def test_a_second_publisher_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    first = Outbox(path)
    fill(first, 1)
    with pytest.raises(OutboxLockedError, match="in use by another publisher") as info:
        Outbox(path, lock_timeout_s=0.05)
    assert isinstance(info.value, BusError)
    first.close()
    second = Outbox(path)  # the lock goes with the first one
    assert len(second) == 1
    second.close()
