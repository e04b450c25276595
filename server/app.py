"""The companion's FastAPI app: built by :func:`create_app`, wired in its lifespan.

Nothing happens at import time. The lifespan opens the store, starts the MQTT ingest task (when
a broker is configured), the live hub and the upload replay worker, puts them on ``app.state``
for the routes' dependencies, and closes everything in reverse order on shutdown. CORS stays
closed unless origins are configured; request bodies over ``max_body_bytes`` get 413 (uploaded
logs: over ``max_upload_bytes``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, HTTPException, status
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.broker import EmbeddedBroker
from bus.settings import BrokerConfig
from server import api, exports, pages, uploads
from server.auth import RedactToken
from server.ingest import Ingest
from server.live import LiveHub
from server.settings import ServerSettings
from server.store import Store

log = logging.getLogger(__name__)

# uvicorn logs each request's path with its query string: where a ``?token=`` would show.
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error")


def create_app(settings: ServerSettings) -> FastAPI:
    """The companion app for ``settings``; run it with uvicorn (``stridecue serve``)."""
    app = FastAPI(
        title="Stridecue coach companion",
        summary="Every athlete's sessions, reps, cues and metrics; live over WebSocket.",
        lifespan=_lifespan(settings),
    )
    app.state.coach_token = settings.coach_token.get_secret_value()
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        limits={uploads.PATH: settings.max_upload_bytes},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization"],
        )
    app.include_router(api.public)
    app.include_router(api.protected)
    app.include_router(api.live)
    app.include_router(exports.router)
    app.include_router(uploads.router)
    app.include_router(pages.router)
    return app


def _lifespan(
    settings: ServerSettings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            redactor = RedactToken()
            for name in REDACTED_LOGGERS:
                logging.getLogger(name).addFilter(redactor)
                stack.callback(logging.getLogger(name).removeFilter, redactor)
            if settings.database_url is None:
                settings.data_dir.expanduser().mkdir(parents=True, exist_ok=True)
            store = await asyncio.to_thread(Store.open, settings.database)
            stack.callback(store.close)
            hub = LiveHub(settings.live_queue_size)
            broker = settings.broker()
            if settings.embedded:
                embedded = await stack.enter_async_context(EmbeddedBroker())
                broker = BrokerConfig("127.0.0.1", embedded.port)
                log.info("embedded MQTT broker listening on %s (127.0.0.1 only)", embedded.url)
            ingest = None
            if broker is not None:
                ingest = Ingest(
                    broker,
                    save=store.ingest,
                    hub=hub,
                    client_id=settings.mqtt_client_id,
                    share_group=settings.mqtt_share_group,
                )
            app.state.store, app.state.hub, app.state.ingest = store, hub, ingest
            app.state.uploads = uploads.open_uploads(settings, store, hub)
            async with asyncio.TaskGroup() as tasks:
                task = None if ingest is None else tasks.create_task(ingest.run(), name="ingest")
                replays = tasks.create_task(app.state.uploads.run(), name="uploads")
                try:
                    yield
                finally:
                    if task is not None:
                        task.cancel()
                    replays.cancel()  # stops a replay under way after its current block

    return lifespan


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``.

    ``limits`` gives some paths a limit of their own (an uploaded log is far larger than any
    JSON body). A declared ``Content-Length`` is refused before the app runs; a streamed
    (chunked) body is counted as the route reads it, and refused as soon as it passes the limit.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limits.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            too_large = declared.isdigit()
            await _reject(
                send,
                status.HTTP_413_CONTENT_TOO_LARGE if too_large else status.HTTP_400_BAD_REQUEST,
                _detail(max_bytes) if too_large else "invalid Content-Length header",
            )
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=_detail(max_bytes))
            return message

        await self.app(scope, counted, send)


def _detail(max_bytes: int) -> str:
    return f"request body too large: the limit is {max_bytes} bytes"


async def _reject(send: Send, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
