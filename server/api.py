"""The HTTP API under ``/api`` and the live WebSockets; every route but ``/health`` needs the token.

The store's rows are pydantic models made for JSON: they are the response models (OpenAPI at
``/docs``). Store calls block, so the HTTP routes are plain functions: FastAPI runs them in its
thread pool.
"""

from __future__ import annotations

import asyncio
from statistics import fmean
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, WebSocket, status
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from bus.topics import ATHLETE_ID
from server.auth import coach_token, require_coach, token_matches, websocket_token
from server.ingest import Ingest
from server.live import LiveClient, LiveHub
from server.store import AthleteRow, CueRow, MetricRow, RepRow, SessionRow, Store

AthleteIdPath = Annotated[str, Path(pattern=ATHLETE_ID.pattern, description="Athlete id.")]
SessionIdPath = Annotated[str, Path(min_length=1, max_length=64, description="Session id.")]


class ReportSummary(BaseModel):
    reps_done: int
    reps_planned: int | None
    mean_cadence_spm: float | None = Field(
        description="Mean over the complete reps' mean cadences."
    )
    mean_gct_ms: float | None = Field(
        description="Mean over the complete reps' mean contact times."
    )
    flagged_reps: list[int] = Field(description="Rep numbers the fatigue rule flagged.")
    incomplete_reps: list[int] = Field(
        description="Rep numbers with a hole in their data: flagged, not summarised."
    )


class Report(BaseModel):
    session: SessionRow
    reps: list[RepRow]
    summary: ReportSummary


class IngestHealth(BaseModel):
    subscribed: bool
    connects: int
    accepted: dict[str, int]
    malformed: dict[str, int]
    duplicates: int
    gaps: int
    stored: int
    store_errors: int
    share_group: str | None = Field(default=None, description="Set on a replica of a group.")
    share_accepted: dict[str, int] = Field(
        default_factory=dict, description="A replica's share of the stream, by kind."
    )


class LiveHealth(BaseModel):
    clients: int
    published: int
    dropped_clients: int


class Health(BaseModel):
    """Liveness and counters only: no athlete data."""

    status: Literal["ok"] = "ok"
    mqtt: IngestHealth | None = Field(description="Null when no broker is configured.")
    live: LiveHealth


def get_store(connection: HTTPConnection) -> Store:
    store: Store = connection.app.state.store
    return store


def get_hub(connection: HTTPConnection) -> LiveHub:
    hub: LiveHub = connection.app.state.hub
    return hub


def get_ingest(connection: HTTPConnection) -> Ingest | None:
    ingest: Ingest | None = connection.app.state.ingest
    return ingest


StoreDep = Annotated[Store, Depends(get_store)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown id."}}

public = APIRouter(prefix="/api", tags=["health"])
protected = APIRouter(prefix="/api", dependencies=[Depends(require_coach)], tags=["data"])
live = APIRouter(prefix="/api", tags=["live"])


@public.get("/health")
def health(
    hub: Annotated[LiveHub, Depends(get_hub)],
    ingest: Annotated[Ingest | None, Depends(get_ingest)],
) -> Health:
    """Liveness and the ingest and live counters (malformed messages by reason)."""
    mqtt = None
    if ingest is not None:
        decoder = ingest.decoder
        shared = ingest.share_decoder.accepted if ingest.share_decoder is not None else {}
        mqtt = IngestHealth(
            subscribed=ingest.subscribed.is_set(),
            connects=ingest.connects,
            accepted={kind.value: n for kind, n in decoder.accepted.items()},
            malformed={reason.value: n for reason, n in decoder.malformed.items()},
            duplicates=decoder.duplicates,
            gaps=decoder.gaps,
            stored=ingest.stored,
            store_errors=ingest.store_errors,
            share_group=ingest.share_group,
            share_accepted={kind.value: n for kind, n in shared.items()},
        )
    live_health = LiveHealth(
        clients=hub.clients, published=hub.published, dropped_clients=hub.dropped_clients
    )
    return Health(mqtt=mqtt, live=live_health)


@protected.get("/athletes")
def athletes(store: StoreDep) -> list[AthleteRow]:
    """Every athlete seen on the bus, with their publisher's latest status."""
    return store.athletes()


@protected.get("/athletes/{athlete_id}/sessions", responses=_NOT_FOUND)
def athlete_sessions(athlete_id: AthleteIdPath, store: StoreDep) -> list[SessionRow]:
    """An athlete's sessions, the newest first."""
    if not any(a.id == athlete_id for a in store.athletes()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no athlete {athlete_id!r}")
    return store.sessions(athlete_id)


def _session(store: Store, session_id: str) -> SessionRow:
    # PostgreSQL text cannot hold a NUL: no stored session has one, and the query would fail.
    found = None if "\x00" in session_id else store.session(session_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no session {session_id!r}")
    return found


@protected.get("/sessions/{session_id}", responses=_NOT_FOUND)
def session(session_id: SessionIdPath, store: StoreDep) -> SessionRow:
    """One session and its latest state."""
    return _session(store, session_id)


@protected.get("/sessions/{session_id}/cues", responses=_NOT_FOUND)
def cues(session_id: SessionIdPath, store: StoreDep) -> list[CueRow]:
    """The session's cues, in ``seq`` order."""
    _session(store, session_id)
    return store.cues(session_id)


@protected.get("/sessions/{session_id}/reps", responses=_NOT_FOUND)
def reps(session_id: SessionIdPath, store: StoreDep) -> list[RepRow]:
    """The session's finished reps, in ``seq`` order."""
    _session(store, session_id)
    return store.reps(session_id)


@protected.get("/sessions/{session_id}/metrics", responses=_NOT_FOUND)
def metrics(
    session_id: SessionIdPath,
    store: StoreDep,
    every_s: Annotated[
        float | None,
        Query(gt=0, le=3600, allow_inf_nan=False, description="Bucket width (sensor s)."),
    ] = None,
) -> list[MetricRow]:
    """The session's per-second metrics; with ``every_s``, one mean point per bucket of that
    many seconds (for the charts of long sessions)."""
    _session(store, session_id)
    return store.metrics(session_id, every_s=every_s)


@protected.get("/sessions/{session_id}/report", responses=_NOT_FOUND)
def report(session_id: SessionIdPath, store: StoreDep) -> Report:
    """The session, its reps and a summary: reps done, the complete reps' mean cadence and
    contact time, the reps the fatigue rule flagged and those with a hole in their data."""
    found = _session(store, session_id)
    done = store.reps(session_id)
    # A rep with a hole is not summarised, whatever means its publisher sent.
    measured = [r for r in done if r.complete]
    cadences = [r.mean_cadence_spm for r in measured if r.mean_cadence_spm is not None]
    contacts = [r.mean_gct_ms for r in measured if r.mean_gct_ms is not None]
    summary = ReportSummary(
        reps_done=len(done),
        reps_planned=found.reps,
        mean_cadence_spm=fmean(cadences) if cadences else None,
        mean_gct_ms=fmean(contacts) if contacts else None,
        flagged_reps=[r.rep for r in done if r.fatigue_flag],
        incomplete_reps=[r.rep for r in done if not r.complete],
    )
    return Report(session=found, reps=done, summary=summary)


@live.websocket("/live")
async def live_team(
    websocket: WebSocket,
    hub: Annotated[LiveHub, Depends(get_hub)],
    token: Annotated[str, Depends(coach_token)],
) -> None:
    """Every athlete's new messages, as ``{"athlete_id", "kind", "message"}`` JSON texts."""
    await _follow(websocket, hub, token, None)


@live.websocket("/live/{athlete_id}")
async def live_athlete(
    websocket: WebSocket,
    athlete_id: AthleteIdPath,
    hub: Annotated[LiveHub, Depends(get_hub)],
    token: Annotated[str, Depends(coach_token)],
) -> None:
    """One athlete's new messages."""
    await _follow(websocket, hub, token, athlete_id)


async def _follow(websocket: WebSocket, hub: LiveHub, token: str, athlete_id: str | None) -> None:
    given, subprotocol = websocket_token(websocket)
    if not token_matches(token, given):
        await websocket.close(
            code=status.WS_1008_POLICY_VIOLATION, reason="a valid coach token is required"
        )
        return
    await websocket.accept(subprotocol=subprotocol)
    client = hub.connect(athlete_id)
    pump = asyncio.create_task(_pump(websocket, client), name="live-pump")
    watch = asyncio.create_task(_watch(websocket), name="live-watch")
    try:
        await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.disconnect(client)
        for task in (pump, watch):
            task.cancel()
        # A peer that went away makes the other task fail on send or receive: expected here.
        await asyncio.gather(pump, watch, return_exceptions=True)


async def _pump(websocket: WebSocket, client: LiveClient) -> None:
    while (text := await client.next()) is not None:
        await websocket.send_text(text)
    await websocket.close(
        code=status.WS_1013_TRY_AGAIN_LATER, reason="too slow: messages were dropped; reconnect"
    )


async def _watch(websocket: WebSocket) -> None:
    """Return when the client disconnects (anything it sends is ignored)."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
