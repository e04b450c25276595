"""The pages and the browser login without a browser: routes, redirects, the cookie and its
flags, cookie auth on the API and the live WebSocket (with the Origin check), static files."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from fastapi import Depends
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server.app import create_app
from server.auth import COOKIE_NAME, redact, require_coach
from server.pages import STATIC_DIR
from tests.server.conftest_app import (
    ANNA_SESSION,
    TOKEN,
    anna_messages,
    auth,
    seed,
    serving,
    settings,
)

PAGES = ("/coach", "/athletes/anna", f"/sessions/{ANNA_SESSION}")
COOKIE = {"Cookie": f"{COOKIE_NAME}={TOKEN}"}
ELSEWHERE = "http://elsewhere.example"
WRITE = "/api/test-write"  # a protected POST route added for these tests


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    """The app on a database holding Anna's session, with one extra protected POST route."""
    config = settings(tmp_path)
    seed(config.database, anna_messages())
    app = create_app(config)
    app.add_api_route(
        WRITE, lambda: {"written": True}, methods=["POST"], dependencies=[Depends(require_coach)]
    )
    with serving(app) as served:
        yield served


def _set_cookie(response: httpx.Response) -> tuple[str, dict[str, str | bool]]:
    """The value and the attributes (lower-case names) of the response's one Set-Cookie."""
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    morsel = SimpleCookie(headers[0])[COOKIE_NAME]
    attributes: dict[str, str | bool] = {k: v for k, v in morsel.items() if v}
    # SimpleCookie drops flags it does not know; read them off the header itself.
    flags = {part.strip().lower() for part in headers[0].split(";")[1:]}
    attributes |= {flag: True for flag in ("httponly", "secure") if flag in flags}
    return morsel.value, attributes


def test_the_login_page_is_public_and_the_pages_need_the_cookie(address: str) -> None:
    with httpx.Client(base_url=f"http://{address}") as client:
        login = client.get("/")
        assert login.status_code == 200
        assert login.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/static/js/login.js">' in login.text
        for path in PAGES:
            for headers in ({}, {"Cookie": f"{COOKIE_NAME}={'x' * len(TOKEN)}"}):
                refused = client.get(path, headers=headers)
                assert (refused.status_code, refused.headers["location"]) == (303, "/"), path
            for headers in (COOKIE, auth()):  # a browser's cookie, or an API client's header
                page = client.get(path, headers=headers)
                assert page.status_code == 200, path
                assert page.headers["content-type"].startswith("text/html")
                script = {"coach": "coach", "athletes": "athlete", "sessions": "session"}
                name = script[path.split("/")[1]]
                assert f'<script type="module" src="/static/js/{name}.js">' in page.text
        # Every page: a strict policy (no inline script, no other host, no framing).
        for path in ("/", *PAGES):
            headers = client.get(path, headers=COOKIE).headers
            policy = headers["content-security-policy"]
            for directive in ("default-src 'self'", "script-src 'self'", "connect-src 'self'"):
                assert directive in policy, (path, policy)
            assert "frame-ancestors 'none'" in policy
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
        # Not found: a bad athlete id, an unknown session (signed in: no redirect).
        for path in ("/athletes/Not_Valid!", "/sessions/no-such-session", f"/sessions/{'x' * 65}"):
            missing = client.get(path, headers=COOKIE)
            assert missing.status_code == 404, path
            assert "Not found" in missing.text
        schema_paths = client.get("/openapi.json").json()["paths"]
        assert not {"/", *PAGES, "/api/login", "/api/logout"} & set(schema_paths)


def test_login_sets_an_http_only_strict_cookie_and_logout_clears_it(address: str) -> None:
    with httpx.Client(base_url=f"http://{address}") as client:
        for headers in ({}, auth("x" * len(TOKEN)), {"Authorization": f"Basic {TOKEN}"}):
            refused = client.post("/api/login", headers=headers)
            assert refused.status_code == 401, headers
            assert "set-cookie" not in refused.headers
        assert not client.cookies
        login = client.post("/api/login", headers=auth())
        assert login.status_code == 204
        value, attributes = _set_cookie(login)
        assert value == TOKEN
        # A session cookie (no expiry), for the whole site, unreadable by scripts, same-site
        # requests only; not Secure over plain http (a browser would drop it).
        assert attributes == {"path": "/", "httponly": True, "samesite": "strict"}
        assert re.search(r"(?i);\s*samesite=strict\b", login.headers["set-cookie"])
        # The cookie alone now opens the API and the pages.
        assert dict(client.cookies) == {COOKIE_NAME: TOKEN}
        by_cookie = client.get("/api/athletes")
        assert by_cookie.status_code == 200
        assert by_cookie.json() == client.get("/api/athletes", headers=auth()).json()
        assert client.get("/coach").status_code == 200
        logout = client.post("/api/logout")
        assert logout.status_code == 204
        value, attributes = _set_cookie(logout)
        assert value == ""
        assert attributes["max-age"] == "0"
        assert not client.cookies
        assert client.get("/api/athletes").status_code == 401
        assert client.get("/coach").status_code == 303
        # Over https (here: from a trusted proxy, uvicorn's default for 127.0.0.1) the cookie
        # is Secure.
        https = client.post("/api/login", headers=auth() | {"X-Forwarded-Proto": "https"})
        assert _set_cookie(https)[1]["secure"] is True


def test_a_token_a_cookie_cannot_hold_still_works_as_a_bearer(tmp_path: Path) -> None:
    token = "semi;colon token with spaces"
    with serving(create_app(settings(tmp_path, coach_token=token))) as served:
        refused = httpx.post(f"http://{served}/api/login", headers=auth(token))
        assert refused.status_code == 400
        assert "cookie" in refused.json()["detail"]
        assert "set-cookie" not in refused.headers
        assert httpx.get(f"http://{served}/api/athletes", headers=auth(token)).status_code == 200


def test_the_cookie_reads_from_anywhere_but_writes_only_from_this_origin(address: str) -> None:
    own = f"http://{address}"
    with httpx.Client(base_url=own) as client:
        # Reads: the cookie is enough; another site's page cannot read the answer (no CORS).
        read = client.get("/api/athletes", headers=COOKIE | {"Origin": ELSEWHERE})
        assert read.status_code == 200
        assert "access-control-allow-origin" not in read.headers
        wrong = client.get("/api/athletes", headers={"Cookie": f"{COOKIE_NAME}=nope"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"] == "Bearer"
        # Writes with the cookie alone need this server as the Origin (same host, same port).
        port = int(address.rsplit(":", 1)[1])
        for origin in (None, ELSEWHERE, f"http://127.0.0.1:{port + 1}", "null"):
            headers = COOKIE | ({} if origin is None else {"Origin": origin})
            refused = client.post(WRITE, headers=headers)
            assert refused.status_code == 403, origin
            assert "cross-origin" in refused.json()["detail"]
        assert client.post(WRITE, headers=COOKIE | {"Origin": own}).json() == {"written": True}
        # The bearer header is not ambient: it works from anywhere, as before.
        assert client.post(WRITE, headers=auth() | {"Origin": ELSEWHERE}).status_code == 200
        assert client.post(WRITE).status_code == 401


def test_the_live_websocket_takes_the_cookie_from_its_own_pages_only(address: str) -> None:
    own = f"http://{address}"
    for path in ("/api/live", "/api/live/anna"):
        url = f"ws://{address}{path}"
        with connect(url, origin=own, additional_headers=COOKIE, open_timeout=5) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol is None
        # Cross-site WebSocket hijacking: another site's page, or no Origin at all.
        for origin in (ELSEWHERE, f"http://localhost:{address.rsplit(':', 1)[1]}", None):
            with pytest.raises(InvalidStatus) as refused:
                connect(url, origin=origin, additional_headers=COOKIE, open_timeout=5)  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403, (path, origin)
        with pytest.raises(InvalidStatus) as refused:
            wrong = {"Cookie": f"{COOKIE_NAME}=nope-nope-nope-nope"}
            connect(url, origin=own, additional_headers=wrong, open_timeout=5)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        # An explicit token still works from anywhere.
        with connect(f"{url}?token={TOKEN}", origin=ELSEWHERE, open_timeout=5):  # type: ignore[arg-type]
            pass


def test_the_cookie_never_reaches_the_logs(address: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    own = f"http://{address}"
    httpx.get(f"{own}/api/athletes", headers=COOKIE)
    httpx.post(f"{own}/api/login", headers=auth())
    with connect(f"ws://{address}/api/live", origin=own, additional_headers=COOKIE):  # type: ignore[arg-type]
        pass
    clients = ("httpx", "httpcore", "websockets.client")
    server_side = [r for r in caplog.records if not r.name.startswith(clients)]
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in server_side)
    assert f"{COOKIE_NAME}=***" in text  # the handshake's headers were logged, redacted
    assert TOKEN[:-1] not in text
    assert redact(f"cookie: a=1; {COOKIE_NAME}=abc; b=2") == f"cookie: a=1; {COOKIE_NAME}=***; b=2"
    assert redact(f"(b'cookie', b'{COOKIE_NAME}=abc')") == f"(b'cookie', b'{COOKIE_NAME}=***')"


def test_static_files_are_public_and_confined_to_their_folders(address: str) -> None:
    with httpx.Client(base_url=f"http://{address}") as client:
        for path, kind in (
            ("/static/js/coach.js", "javascript"),
            ("/static/css/app.css", "text/css"),
            ("/static/vendor/uplot/uPlot.iife.min.js", "javascript"),
            ("/static/img/icon.svg", "image/svg+xml"),
        ):
            response = client.get(path)
            assert response.status_code == 200, path
            assert kind in response.headers["content-type"], path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["cache-control"] == "no-cache"
            assert response.content == (STATIC_DIR / path.removeprefix("/static/")).read_bytes()
            again = client.get(path, headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304, path
        # The page shells are served by their (protected) routes only; nothing outside static/.
        for path in (
            "/static/html/coach.html",
            "/static/js/missing.js",
            "/static/",
            "/static/%2e%2e/pages.py",
            "/static/js/%2e%2e/%2e%2e/pages.py",
            "/static/vendor/%2e%2e/%2e%2e/auth.py",
        ):
            assert client.get(path).status_code == 404, path


def test_the_vendored_uplot_matches_the_hashes_in_its_readme() -> None:
    readme = (STATIC_DIR / "vendor" / "README.md").read_text()
    listed = dict(re.findall(r"`([\w.]+)` ([0-9a-f]{64})", readme))
    assert set(listed) == {"uPlot.iife.min.js", "uPlot.min.css"}
    for name, sha256 in listed.items():
        content = (STATIC_DIR / "vendor" / "uplot" / name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == sha256, name
    assert "| 1.6.32 |" in readme


def test_every_file_a_page_or_module_names_exists() -> None:
    """Broken references fail here, not in a coach's browser at a track."""
    named: set[Path] = set()
    for html in (STATIC_DIR / "html").glob("*.html"):
        for ref in re.findall(r'(?:src|href)="(/static/[^"]+)"', html.read_text()):
            named.add(STATIC_DIR / ref.removeprefix("/static/"))
    for module in (STATIC_DIR / "js").glob("*.js"):
        for ref in re.findall(r'^import [^;]*? from "(\./[^"]+)";', module.read_text(), re.M):
            named.add((module.parent / ref).resolve())
    assert {p.name for p in named} >= {"coach.js", "athlete.js", "api.js", "uPlot.iife.min.js"}
    missing = sorted(str(p) for p in named if not p.is_file())
    assert not missing
