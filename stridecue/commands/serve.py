"""`stridecue serve`: the coach companion (the server package is imported only when it runs)."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from bus.settings import BusError
from stridecue.commands.common import (
    err,
)


def serve(
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    token: Annotated[
        str | None,
        typer.Option(help="The coach token (or STRIDECUE_COACH_TOKEN); generated if not given."),
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(help="Subscribe to this broker: mqtt://…, mqtts://… or 'embedded'."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(help="Database URL (default: a SQLite file in the data folder)."),
    ] = None,
    share_group: Annotated[
        str | None,
        typer.Option(
            help="Run as one replica of this group: one broker, one PostgreSQL, one token "
            "for all (docs/scaling.md)."
        ),
    ] = None,
) -> None:
    """The coach companion: stores every session on the bus; HTTP API and live WebSocket."""
    import secrets

    import uvicorn

    from server.app import create_app
    from server.settings import ServerSettings

    flags = {
        "port": port,
        "host": host,
        "mqtt_url": mqtt,
        "database_url": database,
        "mqtt_share_group": share_group,
    }
    generated = None
    try:
        try:
            settings = ServerSettings.load(coach_token=token, **flags)
        except ValidationError as e:
            missing = [x["loc"] for x in e.errors() if x["type"] == "missing"]
            if token is not None or missing != [("coach_token",)]:
                raise
            generated = secrets.token_urlsafe(32)
            settings = ServerSettings.load(coach_token=generated, **flags)
        if generated is not None and settings.mqtt_share_group is not None:
            # Each replica would make up its own: a coach's login would work on one only.
            err.print(
                "[red]settings:[/red] the replicas of a group share one coach token: "
                "pass --token or set STRIDECUE_COACH_TOKEN",
                soft_wrap=True,
            )
            raise typer.Exit(2)
        settings.broker()  # a bad broker URL fails here, not inside the server
    except ValidationError as e:
        for error in e.errors(include_url=False, include_input=False):
            where = ".".join(map(str, error["loc"]))
            err.print(f"[red]settings:[/red] {where}: {error['msg']}", soft_wrap=True)
        raise typer.Exit(2) from None
    except BusError as e:
        err.print(f"[red]MQTT:[/red] {e}")
        raise typer.Exit(2) from None
    base = f"http://{settings.host}:{settings.port}"
    err.print(f"coach companion on {base} (API: {base}/docs)", soft_wrap=True)
    if generated is not None:
        err.print(f"coach view: {base}/#token={generated}", markup=False, soft_wrap=True)
        err.print(f"coach token: {generated}", markup=False, soft_wrap=True)
    else:
        err.print(f"coach view: {base}/ (sign in with the coach token)", soft_wrap=True)
    if settings.mqtt_url is None:
        err.print("no MQTT broker (--mqtt or STRIDECUE_MQTT_URL): serving stored sessions only")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
