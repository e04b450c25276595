"""Upload of a recorded log, replayed through the engine in the background into a stored session.

``POST /api/uploads?athlete_id=…`` streams the raw ``.log`` bytes to a temporary file in the
data folder (never whole in memory; 413 past ``max_upload_bytes``), checks it the way
``stridecue replay`` opens it (422 with the reader's reason otherwise) and answers 202 with an
:class:`Upload`. :class:`Uploads` replays the accepted logs one at a time; a bounded queue holds
the others (503 when full). The replay stores a new session on the recording's own clock (wall
time = the header's ``start_time`` + sensor time) and passes its new cues, reps and states to
the live hub. The temporary file is deleted when the replay ends, whatever its outcome. Upload
states live in memory only (see :mod:`server.upload_jobs`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from starlette.requests import ClientDisconnect, HTTPConnection

from bus.topics import ATHLETE_ID
from dsp.plan import TEMPLATES, SessionPlan, template
from server import replay
from server.auth import require_coach
from server.live import LiveHub
from server.settings import ServerSettings
from server.store import Store
from server.upload_jobs import Upload, UploadQueueFullError, Uploads

PATH: Final = "/api/uploads"
FOLDER: Final = "uploads"  # inside the data folder
_WRITE_BYTES: Final = 1 << 20  # body chunks are gathered to this size per disk write
_FORM_TYPES: Final = ("multipart/form-data", "application/x-www-form-urlencoded")


def open_uploads(settings: ServerSettings, store: Store, hub: LiveHub) -> Uploads:
    """The app's upload jobs, their files in the data folder (created at the first upload)."""
    return Uploads(
        store,
        hub,
        settings.data_dir.expanduser() / FOLDER,
        max_bytes=settings.max_upload_bytes,
        queue_size=settings.max_queued_uploads,
    )


def get_uploads(connection: HTTPConnection) -> Uploads:
    uploads: Uploads = connection.app.state.uploads
    return uploads


UploadsDep = Annotated[Uploads, Depends(get_uploads)]
router = APIRouter(prefix="/api", dependencies=[Depends(require_coach)], tags=["upload"])

_LOG_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The raw bytes of a .log recording (stridecue record, run -o, simulate).",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_ACCEPTED: dict[str, Any] = {
    "description": "Queued for its replay.",
    "headers": {
        "Location": {"description": "Where to follow it.", "schema": {"type": "string"}},
    },
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"description": "The log is larger than the server's upload limit."},
    415: {"description": "A form was sent: send the raw .log bytes."},
    422: {"description": "Not a log the engine can replay, or a bad athlete id or template."},
    503: {"description": "Too many uploads already wait for their replay."},
}


def _plan(name: str | None) -> SessionPlan | None:
    if name is None:
        return None
    try:
        return template(name)
    except ValueError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(e)) from None


def _busy(error: UploadQueueFullError) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error), headers={"Retry-After": "60"}
    )


async def _receive(request: Request, folder: Path, max_bytes: int) -> tuple[Path, int]:
    """Stream the body to a new file in ``folder``; its path and size (413 past ``max_bytes``)."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".log", dir=folder)
    path, size = Path(name), 0
    try:
        with os.fdopen(fd, "wb") as file:
            pending = bytearray()
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(
                        status.HTTP_413_CONTENT_TOO_LARGE,
                        detail=f"the log is larger than the upload limit of {max_bytes} bytes",
                    )
                pending += chunk
                if len(pending) >= _WRITE_BYTES:
                    await asyncio.to_thread(file.write, pending)
                    pending = bytearray()
            await asyncio.to_thread(file.write, pending)
    except ClientDisconnect:
        path.unlink(missing_ok=True)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="the upload was interrupted before its end"
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size


@router.post(
    "/uploads",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a recorded log to replay",
    responses={202: _ACCEPTED, **_REFUSALS},
    openapi_extra=_LOG_BODY,
)
async def upload(
    request: Request,
    response: Response,
    uploads: UploadsDep,
    athlete_id: Annotated[
        str, Query(pattern=ATHLETE_ID.pattern, description="Whose session the log is.")
    ],
    template_name: Annotated[
        str | None,
        Query(
            alias="template",
            description=f"Cue with this plan ({', '.join(TEMPLATES)}); "
            "default: auto rep detection, as `stridecue replay` without --template.",
        ),
    ] = None,
) -> Upload:
    """Upload a recorded ``.log``; it is replayed through the engine in the background.

    Follow its progress at the ``Location`` answered; it ends ``done`` with the id of the
    stored session, or ``failed`` with the reason.
    """
    plan = _plan(template_name)
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() in _FORM_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send the raw .log bytes as the body (application/octet-stream), not a form",
        )
    if uploads.full:  # refuse before receiving megabytes for nothing
        raise _busy(UploadQueueFullError(uploads.queue_size))
    path, size = await _receive(request, uploads.folder, uploads.max_bytes)
    try:
        survey = await asyncio.to_thread(replay.survey, path, plan)
        accepted = uploads.submit(
            path, athlete_id=athlete_id, plan=plan, survey=survey, size_bytes=size
        )
    except replay.ReplayError as e:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=e.reason) from None
    except UploadQueueFullError as e:
        path.unlink(missing_ok=True)
        raise _busy(e) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    response.headers["Location"] = f"{PATH}/{accepted.id}"
    return accepted


# Plain reads of the jobs held by the event loop: async, so that they run on it, not in threads.
@router.get("/uploads")
async def uploads_list(uploads: UploadsDep) -> list[Upload]:
    """Every upload this server remembers (since its start), the newest first."""
    return uploads.all()


@router.get("/uploads/{upload_id}", responses={404: {"description": "Unknown upload."}})
async def upload_state(
    upload_id: Annotated[str, PathParam(min_length=1, max_length=64)], uploads: UploadsDep
) -> Upload:
    """One upload: its state and progress, the stored session once done."""
    found = uploads.get(upload_id)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"no upload {upload_id!r} (uploads are forgotten when the server restarts)",
        )
    return found
