"""The publisher's outbox: cues and rep summaries on disk until the broker acknowledged them.

One SQLite file per publisher, in WAL mode with ``synchronous=FULL``: every ``put`` and ``ack`` is
fsynced before it returns, so neither a crash of the process nor a power cut loses a cue the
engine emitted. Cues and reps come a few per minute, so the fsync costs nothing that matters.
The file is opened with an exclusive lock: two publishers on one outbox would send its messages
twice and ack each other's, so the second one gets :class:`OutboxLockedError`.

The outbox is bounded: when full, the OLDEST pending message is dropped (a runner mid-session
cares about the latest cue), counted in ``dropped`` and logged once per overflow episode.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bus.settings import BusError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL CHECK (qos IN (0, 1, 2))
)
"""


class OutboxError(BusError):
    """The outbox file cannot be used."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class OutboxLockedError(OutboxError):
    """Another process holds the outbox file."""


class OutboxCorruptError(OutboxError):
    """The outbox file is not a sound SQLite database."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One durable message waiting for the broker's acknowledgement."""

    id: int
    topic: str
    payload: bytes
    qos: int


class Outbox:
    """A bounded, durable FIFO of MQTT messages in one SQLite file.

    Parameters
    ----------
    path
        The SQLite file (created if missing).
    max_messages
        How many pending messages it holds; beyond that the oldest is dropped.
    lock_timeout_s
        How long to wait for another process's lock before :class:`OutboxLockedError`.
    """

    def __init__(
        self, path: Path | str, max_messages: int = 10_000, *, lock_timeout_s: float = 0.5
    ) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.dropped = 0
        self._overflowing = False
        try:
            self._db = sqlite3.connect(self.path, timeout=lock_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise OutboxError(self.path, f"cannot open the outbox {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # The first write takes the exclusive lock and keeps it until close().
            with self._transaction():
                self._db.execute(_SCHEMA)
            (check,) = self._db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            (self._count,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise OutboxLockedError(
                    self.path,
                    f"the outbox {self.path} is in use by another publisher (one outbox per "
                    "running publisher: stop the other one or give this one its own data folder)",
                ) from exc
            raise OutboxError(self.path, f"cannot use the outbox {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutboxCorruptError(
                self.path,
                f"the outbox {self.path} is damaged ({exc}): move it aside and start again "
                "(its unsent cues and reps are lost)",
            ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put(self, topic: str, payload: bytes, qos: int) -> int:
        """Store a message (durably, before returning); its id."""
        excess = max(0, self._count + 1 - self.max_messages)
        with self._transaction():
            if excess:
                self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                    (excess,),
                )
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos) VALUES (?, ?, ?)", (topic, payload, qos)
            )
        self._count += 1 - excess
        self.dropped += excess
        if excess and not self._overflowing:
            log.warning(
                "outbox %s is full (%d messages): dropping the oldest until the broker takes "
                "them (%d dropped so far)",
                self.path,
                self.max_messages,
                self.dropped,
            )
        self._overflowing = excess > 0
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def pending(self) -> list[Entry]:
        """Every message not yet acknowledged, oldest first."""
        rows = self._db.execute("SELECT id, topic, payload, qos FROM outbox ORDER BY id")
        return [Entry(i, t, bytes(p), q) for i, t, p, q in rows]

    def ack(self, entry_id: int) -> None:
        """The broker has the message: forget it (acking an unknown id is a no-op)."""
        with self._transaction():
            deleted = self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,)).rowcount
        self._count -= deleted

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._db.close()
