"""The pages: coach view, athlete view, session report and the login page (no build step).

Each page is a static HTML shell whose ES modules (``/static/js``) fetch the API and follow the
live WebSocket with the login cookie (see :mod:`server.auth`). Shells, scripts and styles hold
no data, so ``/static`` is public, while the pages answer 303 to the login page (``/``) without
the cookie. Every page carries a strict Content-Security-Policy: scripts, styles and
connections from this origin only, no inline script, no framing. Nothing is fetched from another
host: the pages work offline on a laptop at a track.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from bus.topics import ATHLETE_ID
from server.api import get_store
from server.auth import browser, signed_in
from server.store import Store

STATIC_DIR = Path(__file__).parent / "static"
HTML_DIR = STATIC_DIR / "html"
# Served under /static: the shells in html/ are served by their page routes only.
PUBLIC_FOLDERS = frozenset({"css", "js", "img", "vendor"})
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (ETag): a new version of the companion is picked up at once.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)
router.include_router(browser)
_static = StaticFiles(directory=STATIC_DIR)


@router.get("/")
def login_page() -> Response:
    """Public: reads ``#token=`` (or a form field), signs in, goes on to ``/coach``."""
    return _page("login.html")


@router.get("/coach")
def coach_page(request: Request) -> Response:
    """Every athlete live: cue, cadence, contact time, state, charts, reps."""
    return _page("coach.html") if signed_in(request) else _sign_in()


@router.get("/athletes/{athlete_id}")
def athlete_page(request: Request, athlete_id: str) -> Response:
    """One athlete's phone: the cue (big, spoken), the rep counter, the recovery countdown.

    Any valid id: the phone may be opened before the athlete's first message.
    """
    if not signed_in(request):
        return _sign_in()
    if not ATHLETE_ID.fullmatch(athlete_id):
        return _page("notfound.html", status.HTTP_404_NOT_FOUND)
    return _page("athlete.html")


@router.get("/sessions/{session_id}")
def session_page(
    request: Request, session_id: str, store: Annotated[Store, Depends(get_store)]
) -> Response:
    """A stored session's report: per-rep plots with their drift, CSV and FIT exports."""
    if not signed_in(request):
        return _sign_in()
    if len(session_id) > 64 or store.session(session_id) is None:
        return _page("notfound.html", status.HTTP_404_NOT_FOUND)
    return _page("session.html")


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"])
async def static(path: str, request: Request) -> Response:
    """Scripts, styles, icons and vendored libraries (public: they hold no data)."""
    folder = path.split("/", 1)[0]
    if folder not in PUBLIC_FOLDERS:
        return _page("notfound.html", status.HTTP_404_NOT_FOUND)
    # StaticFiles resolves the path inside its folder (no ``..`` escape) and answers
    # conditional requests (ETag, Last-Modified) with 304.
    response = await _static.get_response(path, request.scope)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _page(name: str, status_code: int = status.HTTP_200_OK) -> Response:
    return FileResponse(
        HTML_DIR / name, status_code=status_code, media_type="text/html", headers=PAGE_HEADERS
    )


def _sign_in() -> Response:
    return RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
