"""The coach token: checked on every route but the health probe, and kept out of the logs.

Three ways to present it:

- HTTP clients send ``Authorization: Bearer <token>``.
- Browsers sign in once: the login page posts the token as that header to ``POST /api/login``,
  which answers with an ``HttpOnly``, ``SameSite=Strict`` cookie holding it, so the pages'
  scripts never keep the token. Every protected route and the live WebSockets take the cookie.
  A browser attaches a cookie to whatever request a page of another site makes it send, and
  ``SameSite`` ignores ports (another service on the same host is "same site"), so the cookie
  alone is enough only for reads: a request that changes something (``POST`` …) and a WebSocket
  handshake must also come with an ``Origin`` naming this server (cross-site request forgery,
  cross-site WebSocket hijacking).
- Browsers cannot set headers on a WebSocket, so ``/api/live`` also takes the token in the URL,
  ``?token=<token>`` (the access log redacts it, see :class:`RedactToken`), or in the
  subprotocol list: ``new WebSocket(url, ["stridecue.bearer", token])``. The server answers
  with the ``stridecue.bearer`` subprotocol only, so the token is never echoed back. Tokens
  from ``secrets.token_urlsafe`` are valid subprotocol names.

Tokens are compared in constant time (``secrets.compare_digest``).
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response, WebSocket, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection

log = logging.getLogger(__name__)

BEARER_SUBPROTOCOL = "stridecue.bearer"
COOKIE_NAME = "stridecue_token"
REDACTED = "***"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where a token can show in a log line: a query (access log), or a handshake header (uvicorn's
# WebSocket implementation logs the request headers at debug level, cookies included).
_TOKEN_PLACES = re.compile(
    r"(?i)((?:^|[?&])token=|authorization:\s*\S+\s+|stridecue\.bearer\s*,\s*)[^&\s\",]+"
    rf"|({COOKIE_NAME}=)[^;\s\",']+"
)
# What a cookie value can hold without quoting (RFC 6265 cookie-octets less the ones Python's
# http.cookies quotes): a quoted value does not survive every cookie parser.
_COOKIE_SAFE = re.compile(r"^[A-Za-z0-9!#$%&*+\-.^_`|~:]+$")
_UNAUTHORIZED = "a valid coach token is required: send 'Authorization: Bearer <token>'"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="coach token",
    description="The coach token printed by `stridecue serve`.",
)

# POST /api/login and /api/logout: for the login page's script, kept out of the OpenAPI schema
# (the cookie is a browser's business; API clients send the bearer header).
browser = APIRouter(prefix="/api", include_in_schema=False)


def token_matches(expected: str, given: str | None) -> bool:
    """``True`` when ``given`` is ``expected``; constant time, whatever ``given`` is."""
    if given is None:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


def coach_token(connection: HTTPConnection) -> str:
    token: str = connection.app.state.coach_token
    return token


def same_origin(connection: HTTPConnection) -> bool:
    """``True`` when the request's ``Origin`` names the host it was sent to.

    The host and port are compared, not the scheme: behind a proxy that ends TLS the server
    sees ``http`` while the page's origin is ``https``.
    """
    origin, host = connection.headers.get("origin"), connection.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def signed_in(connection: HTTPConnection) -> bool:
    """``True`` when a page request carries the login cookie (or the bearer header)."""
    token = coach_token(connection)
    scheme, given = get_authorization_scheme_param(connection.headers.get("authorization"))
    if scheme.lower() == "bearer" and token_matches(token, given):
        return True
    return token_matches(token, connection.cookies.get(COOKIE_NAME))


async def require_coach(
    request: Request,
    token: Annotated[str, Depends(coach_token)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency of every protected HTTP route: the bearer header or the login cookie.

    401 without either; 403 for a cookie-only request that changes something and whose
    ``Origin`` is not this server.
    """
    if credentials is not None and token_matches(token, credentials.credentials):
        return
    if token_matches(token, request.cookies.get(COOKIE_NAME)):
        if request.method in SAFE_METHODS or same_origin(request):
            return
        log.warning(
            "refused a cookie-authenticated %s %s from origin %r",
            request.method,
            request.url.path,
            request.headers.get("origin"),
        )
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="cross-origin request refused: send it from the companion's own pages, "
            "or with 'Authorization: Bearer <token>'",
        )
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail=_UNAUTHORIZED,
        headers={"WWW-Authenticate": "Bearer"},
    )


def websocket_token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The token a WebSocket client sent, and the subprotocol to accept (or ``None``).

    In order: the subprotocol list, ``?token=``, the login cookie (only from this server's own
    pages: ``None`` for another ``Origin``, which fails the token check).
    """
    protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if BEARER_SUBPROTOCOL in protocols:
        index = protocols.index(BEARER_SUBPROTOCOL)
        given = protocols[index + 1] if index + 1 < len(protocols) else None
        return given, BEARER_SUBPROTOCOL
    query = websocket.query_params.get("token")
    if query is not None:
        return query, None
    cookie = websocket.cookies.get(COOKIE_NAME)
    if cookie is not None and not same_origin(websocket):
        log.warning(
            "refused a cookie-authenticated WebSocket from origin %r (not this server's)",
            websocket.headers.get("origin"),
        )
        return None, None
    return cookie, None


@browser.post("/login", status_code=status.HTTP_204_NO_CONTENT)
def login(
    request: Request,
    token: Annotated[str, Depends(coach_token)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """Check the bearer token and answer with the login cookie (``Secure`` over https)."""
    if credentials is None or not token_matches(token, credentials.credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=_UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _COOKIE_SAFE.fullmatch(token):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail="this coach token has characters a browser cookie cannot hold: restart the "
            "server with a token of letters, digits, '-' and '_' (leave it out and "
            "`stridecue serve` generates one); API clients can still use it as a bearer token",
        )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.set_cookie(
        COOKIE_NAME,
        token,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@browser.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request) -> Response:
    """Clear the login cookie (no token needed: forgetting it is always allowed)."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


def redact(text: str) -> str:
    """``text`` with any token (query, Authorization, subprotocol, cookie) replaced by ``***``."""
    return _TOKEN_PLACES.sub(lambda m: f"{m.group(1) or m.group(2)}{REDACTED}", text)


class RedactToken(logging.Filter):
    """A logging filter that removes tokens from a record (uvicorn logs paths and headers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Argument by argument first: uvicorn's access formatter unpacks ``args``.
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:  # a token split between the format and its arguments
            record.msg, record.args = clean, None
        return True
