"""The coach token: on every route of the schema, on the live stream, and never in the logs."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server.app import create_app
from server.auth import BEARER_SUBPROTOCOL, redact, token_matches
from tests.server.conftest_app import TOKEN, auth, serving, settings

PUBLIC = {"/api/health"}
# Routes open on purpose, outside the schema too: none holds athlete data (the login page and its
# static files, signing out, and the API's own documentation).
OPEN_ROUTES = PUBLIC | {
    "/",
    "/static/{path:path}",
    "/api/logout",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}


def _example(path: str) -> str:
    """The path with every ``{parameter}`` filled with a valid-looking value."""
    return re.sub(r"\{[^}]+\}", "anna", path)


def test_every_route_of_the_schema_refuses_a_missing_or_wrong_token(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path))
    schema = app.openapi()
    routes = [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if path not in PUBLIC
    ]
    # The walk covers the API as built, not a list kept by hand; at least these must be there.
    assert {path for _, path in routes} >= {
        "/api/athletes",
        "/api/athletes/{athlete_id}/sessions",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/cues",
        "/api/sessions/{session_id}/reps",
        "/api/sessions/{session_id}/metrics",
        "/api/sessions/{session_id}/report",
    }
    # The scheme is documented in OpenAPI, and every protected operation requires it.
    assert schema["components"]["securitySchemes"]["coach token"]["scheme"] == "bearer"
    for path in schema["paths"].keys() - PUBLIC:
        for operation in schema["paths"][path].values():
            assert operation["security"] == [{"coach token": []}], path
    wrong = "x" * len(TOKEN)
    with serving(app) as address, httpx.Client(base_url=f"http://{address}") as client:
        for method, path in routes:
            url = _example(path)
            for headers in ({}, auth(wrong), {"Authorization": f"Basic {TOKEN}"}):
                response = client.request(method, url, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
            assert client.request(method, url, headers=auth()).status_code != 401, path
        # The liveness probe is open and holds no athlete data.
        health = client.get("/api/health")
        assert health.status_code == 200
        assert "anna" not in health.text


def test_every_route_the_app_serves_refuses_a_missing_token(tmp_path: Path) -> None:
    """The walk above covers the schema; this one every route served, hidden ones and WebSockets
    included, so that a route added without the token check fails here."""
    app = create_app(settings(tmp_path))
    http: list[tuple[str, str]] = []
    sockets: list[str] = []
    for route in iter_route_contexts(app.routes):
        path = route.path
        assert path is not None, route
        if path in OPEN_ROUTES:
            continue
        if isinstance(route.original_route, APIWebSocketRoute | WebSocketRoute):
            sockets.append(path)
        elif route.methods:
            http += [(method, path) for method in sorted(route.methods - {"HEAD"})]
        else:
            pytest.fail(f"a route of another kind at {path}: say in this test how it is guarded")
    assert set(sockets) >= {"/api/live", "/api/live/{athlete_id}"}
    assert {path for _, path in http} >= {"/api/athletes", "/api/sessions/{session_id}/report"}
    with (
        serving(app) as address,
        httpx.Client(base_url=f"http://{address}", follow_redirects=False) as client,
    ):
        for method, path in http:
            response = client.request(method, _example(path))
            if path.startswith("/api/"):
                assert response.status_code == 401, (method, path)
            else:  # a page: to the login page, and nothing of the page itself
                assert response.status_code == 303, (method, path)
                assert response.headers["location"] == "/", (method, path)
        for path in sockets:
            with pytest.raises(InvalidStatus) as refused:
                connect(f"ws://{address}{_example(path)}", open_timeout=5)
            assert refused.value.response.status_code == 403, path


def test_the_live_stream_needs_the_token(tmp_path: Path) -> None:
    with serving(create_app(settings(tmp_path))) as address:
        base = f"ws://{address}/api/live"
        for url, protocols in (
            (base, None),
            (f"{base}?token=wrong-token-wrong-token", None),
            (f"{base}/anna", None),
            (base, [BEARER_SUBPROTOCOL, "wrong-token-wrong-token"]),
            (base, [BEARER_SUBPROTOCOL]),
        ):
            with pytest.raises(InvalidStatus) as refused:
                connect(url, subprotocols=protocols, open_timeout=5)  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403, (url, protocols)
        with connect(f"{base}?token={TOKEN}", open_timeout=5) as ws:
            assert ws.subprotocol is None
        with connect(f"{base}/anna?token={TOKEN}", open_timeout=5):
            pass
        # The browser's way: the token rides in the subprotocol list and is not echoed back.
        with connect(base, subprotocols=[BEARER_SUBPROTOCOL, TOKEN], open_timeout=5) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == BEARER_SUBPROTOCOL
            assert ws.response is not None
            assert TOKEN not in str(ws.response.headers)


def test_the_token_never_reaches_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with serving(create_app(settings(tmp_path))) as address:
        httpx.get(f"http://{address}/api/athletes?token={TOKEN}", headers=auth())
        httpx.get(f"http://{address}/api/athletes?x=1&token={TOKEN}")
        with connect(f"ws://{address}/api/live?token={TOKEN}", open_timeout=5):
            pass
        protocols = [BEARER_SUBPROTOCOL, TOKEN]
        with connect(f"ws://{address}/api/live", subprotocols=protocols, open_timeout=5):  # type: ignore[arg-type]
            pass
        with connect(f"ws://{address}/api/live?token={TOKEN}", additional_headers=auth()):
            pass
        with pytest.raises(InvalidStatus):
            connect(f"ws://{address}/api/live/anna?token={TOKEN[:-1]}", open_timeout=5)
    # The test's own clients (httpx, websockets.client) log what they send: not the server's.
    clients = ("httpx", "httpcore", "websockets.client")
    server_side = [r for r in caplog.records if not r.name.startswith(clients)]
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in server_side)
    # The server did log these requests, paths and handshake headers included (so that the
    # check below means something) ...
    assert text.count("token=***") >= 5
    assert f"{BEARER_SUBPROTOCOL}, ***" in text
    assert "authorization: Bearer ***" in text
    # ... and no part of the token is in any record.
    assert TOKEN[:-1] not in text


def test_redact_and_compare() -> None:
    assert redact("GET /api/live?token=abc&x=1 HTTP/1.1") == "GET /api/live?token=***&x=1 HTTP/1.1"
    assert redact("/a?x=1&TOKEN=abc") == "/a?x=1&TOKEN=***"
    assert redact("/a?mytoken=abc") == "/a?mytoken=abc"
    assert redact("< Authorization: Bearer abc") == "< Authorization: Bearer ***"
    assert redact("< sec-websocket-protocol: stridecue.bearer, abc") == (
        "< sec-websocket-protocol: stridecue.bearer, ***"
    )
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN, TOKEN[:-1])
    assert not token_matches(TOKEN, None)
    assert not token_matches(TOKEN, "")
