"""The coach token: checked on every route but the health probe, and kept out of the logs.

HTTP clients send ``Authorization: Bearer <token>``. Browsers cannot set headers on a WebSocket,
so ``/api/live`` also takes the token in one of two places:

- ``?token=<token>`` in the URL (simple; the access log redacts it, see :class:`RedactToken`);
- the subprotocol list: ``new WebSocket(url, ["stridecue.bearer", token])``. The server answers
  with the ``stridecue.bearer`` subprotocol only, so the token is never echoed back. Tokens
  from ``secrets.token_urlsafe`` are valid subprotocol names.

Tokens are compared in constant time (``secrets.compare_digest``).
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, WebSocket, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

BEARER_SUBPROTOCOL = "stridecue.bearer"
REDACTED = "***"
# Where a token can show in a log line: a query (access log), or a handshake header (uvicorn's
# WebSocket implementation logs the request headers at debug level).
_TOKEN_PLACES = re.compile(
    r"(?i)((?:^|[?&])token=|authorization:\s*\S+\s+|stridecue\.bearer\s*,\s*)[^&\s\",]+"
)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="coach token",
    description="The coach token printed by `stridecue serve`.",
)


def token_matches(expected: str, given: str | None) -> bool:
    """``True`` when ``given`` is ``expected``; constant time, whatever ``given`` is."""
    if given is None:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


def coach_token(connection: HTTPConnection) -> str:
    token: str = connection.app.state.coach_token
    return token


async def require_coach(
    token: Annotated[str, Depends(coach_token)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency of every protected HTTP route: 401 without the right bearer token."""
    if credentials is None or not token_matches(token, credentials.credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid coach token is required: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def websocket_token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The token a WebSocket client sent, and the subprotocol to accept (or ``None``)."""
    protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if BEARER_SUBPROTOCOL in protocols:
        index = protocols.index(BEARER_SUBPROTOCOL)
        given = protocols[index + 1] if index + 1 < len(protocols) else None
        return given, BEARER_SUBPROTOCOL
    return websocket.query_params.get("token"), None


def redact(text: str) -> str:
    """``text`` with any token (query, Authorization, subprotocol) replaced by ``***``."""
    return _TOKEN_PLACES.sub(rf"\g<1>{REDACTED}", text)


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
