"""The upload jobs: what an upload is, and the queue that replays them one at a time.

Upload states live in the server's memory, the newest ``KEEP_FINISHED`` finished ones kept: a
restart forgets them (a replay under way when the server stops is cut short and reported
failed, the queued ones are dropped). The stored session is durable like any other. The worker
runs each replay in a thread, so the event loop keeps serving, and hands the new cues, reps and
states to the live hub from the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final

from pydantic import BaseModel, Field

from bus.convert import new_session_id
from bus.messages import KIND_OF, Message
from bus.topics import Kind
from dsp.plan import SessionPlan
from server import replay
from server.errors import ServerError
from server.live import LiveHub
from server.store import Store

log = logging.getLogger(__name__)

KEEP_FINISHED: Final = 100
LIVE_KINDS: Final = frozenset({Kind.CUES, Kind.REPS, Kind.SESSION})


class UploadState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class LogDamage(BaseModel):
    """What the replay dropped; everything valid before and after it was replayed."""

    truncated_records: int = Field(ge=0, le=1, description="A last record cut short (0 or 1).")
    corrupted_stretches: int = Field(ge=0, description="Damaged bytes skipped to the next record.")
    skipped_records: int = Field(ge=0, description="Intact records of an unknown type.")
    malformed_packets: int = Field(ge=0, description="BLE notifications the decoder refused.")


class Upload(BaseModel):
    """One uploaded log and its replay (kept in the server's memory only)."""

    id: str
    athlete_id: str
    template: str | None = Field(description="Cued with this plan, or null: auto rep detection.")
    state: UploadState
    progress: float = Field(ge=0.0, le=1.0, description="Share of the log replayed and stored.")
    session_id: str | None = Field(description="The stored session, once the replay started.")
    error: str | None = Field(description="Why the replay failed.")
    size_bytes: int = Field(ge=0)
    device: str
    placement: str
    sample_rate_hz: float
    recorded_at: datetime = Field(description="The log's start time: where the session sits.")
    duration_s: float = Field(ge=0.0, description="Sensor time the log spans.")
    damage: LogDamage
    messages_stored: int = Field(ge=0)
    received_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(eq=False, slots=True)
class _Job:
    upload: Upload  # updated in place, by the worker thread too; routes answer copies
    path: Path
    plan: SessionPlan | None
    survey: replay.Survey
    stop: threading.Event = field(default_factory=threading.Event)  # set: end the replay


class UploadQueueFullError(ServerError):
    def __init__(self, size: int) -> None:
        super().__init__(
            f"{size} uploads are already waiting for their replay: try again in a minute"
        )


def _now() -> datetime:
    return datetime.now(UTC)


class Uploads:
    """The upload jobs: a bounded queue, replayed one at a time by :meth:`run`."""

    def __init__(
        self, store: Store, hub: LiveHub, folder: Path, *, max_bytes: int, queue_size: int
    ) -> None:
        self.store = store
        self.hub = hub
        self.folder = folder
        self.max_bytes = max_bytes
        self.queue_size = queue_size
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(queue_size)
        self._jobs: dict[str, _Job] = {}

    @property
    def full(self) -> bool:
        return self._queue.full()

    def get(self, upload_id: str) -> Upload | None:
        job = self._jobs.get(upload_id)
        return None if job is None else job.upload.model_copy(deep=True)

    def all(self) -> list[Upload]:
        """Every upload still remembered, the newest first."""
        return [job.upload.model_copy(deep=True) for job in reversed(self._jobs.values())]

    def submit(
        self,
        path: Path,
        *,
        athlete_id: str,
        plan: SessionPlan | None,
        survey: replay.Survey,
        size_bytes: int,
    ) -> Upload:
        """Queue the checked log at ``path`` (the job owns the file from now on)."""
        if self._queue.full():
            raise UploadQueueFullError(self.queue_size)
        header = survey.header
        upload = Upload(
            id=uuid.uuid4().hex,
            athlete_id=athlete_id,
            template=None if plan is None else plan.name,
            state=UploadState.QUEUED,
            progress=0.0,
            session_id=None,
            error=None,
            size_bytes=size_bytes,
            device=header.device,
            placement=header.placement,
            sample_rate_hz=header.sample_rate_hz,
            recorded_at=survey.start,
            duration_s=survey.duration_s,
            damage=LogDamage(
                truncated_records=survey.truncated,
                corrupted_stretches=survey.corrupted,
                skipped_records=survey.skipped,
                malformed_packets=0,
            ),
            messages_stored=0,
            received_at=_now(),
            started_at=None,
            finished_at=None,
        )
        job = _Job(upload, path, plan, survey)
        self._queue.put_nowait(job)
        self._jobs[upload.id] = job
        self._forget_old()
        return upload.model_copy(deep=True)

    async def run(self) -> None:
        """Replay the queued uploads one after the other until cancelled.

        Cancelled (the server stops), it stops the replay under way after its current block,
        waits for its thread, and drops the queued uploads.
        """
        try:
            while True:
                await self._run(await self._queue.get())
        finally:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                self._finish(job, "the server stopped before replaying it: upload the log again")

    async def _run(self, job: _Job) -> None:
        upload = job.upload
        upload.session_id = new_session_id()
        upload.state, upload.started_at = UploadState.RUNNING, _now()
        worker = asyncio.ensure_future(
            asyncio.to_thread(self._replay, job, asyncio.get_running_loop())
        )
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            job.stop.set()
            try:
                with contextlib.suppress(Exception):
                    await worker  # returns within one block of the log
            finally:
                self._finish(
                    job, "the server stopped during the replay: what was replayed is stored"
                )
            raise
        except replay.ReplayError as e:
            self._finish(job, e.reason)
        except Exception as e:
            # Any other failure (the database went away…) ends this upload, not the worker.
            log.exception("upload %s: the replay failed", upload.id)
            self._finish(job, f"the replay failed: {e}")
        else:
            upload.progress = 1.0
            self._finish(job, None)

    def _replay(self, job: _Job, loop: asyncio.AbstractEventLoop) -> None:
        """In the worker thread: replay, publishing progress and the new live messages."""
        upload = job.upload

        def on_stored(
            messages: Sequence[Message], new: Sequence[bool], outcome: replay.Outcome
        ) -> None:
            upload.messages_stored = outcome.messages
            upload.damage.malformed_packets = outcome.malformed_packets
            upload.progress = max(upload.progress, job.survey.fraction(outcome.stream_s))
            live = [m for m, is_new in zip(messages, new, strict=True) if is_new]
            live = [m for m in live if KIND_OF[type(m)] in LIVE_KINDS]
            if live:
                loop.call_soon_threadsafe(self._publish, live)

        assert upload.session_id is not None
        replay.replay(
            job.path,
            athlete_id=upload.athlete_id,
            session_id=upload.session_id,
            plan=job.plan,
            survey=job.survey,
            store=self.store,
            on_stored=on_stored,
            stop=job.stop,
        )

    def _publish(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self.hub.publish(message.athlete_id, KIND_OF[type(message)], message)

    def _finish(self, job: _Job, error: str | None) -> None:
        upload = job.upload
        upload.state = UploadState.FAILED if error else UploadState.DONE
        upload.error, upload.finished_at = error, _now()
        job.path.unlink(missing_ok=True)
        damage = upload.damage
        log.log(
            logging.WARNING if error else logging.INFO,
            "upload %s of %s: %s; session %s, %d messages stored; %d truncated, %d corrupted, "
            "%d skipped records, %d malformed packets",
            upload.id,
            upload.athlete_id,
            error or "replayed",
            upload.session_id,
            upload.messages_stored,
            damage.truncated_records,
            damage.corrupted_stretches,
            damage.skipped_records,
            damage.malformed_packets,
        )

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.upload.finished_at is not None]
        for upload_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[upload_id]
