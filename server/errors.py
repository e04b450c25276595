"""The server's root exception: every error it raises on purpose is a ``ServerError``."""

from __future__ import annotations


class ServerError(Exception):
    """Something the companion server cannot do; the message says what to change."""
