"""Shared by the commands: consoles, option types, argument checks and the live session runner."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bus.session import open_bus
from bus.settings import BusError, Settings
from bus.topics import check_athlete_id
from device.errors import DeviceError
from dsp.events import Event, Placement
from dsp.plan import TEMPLATES, SessionPlan, template
from dsp.session import Readiness
from recordings.runner import Sink, build_engine, run_session
from recordings.sources import Source
from stridecue.jsonl import event_line
from stridecue.live import LiveView

console = Console()
err = Console(stderr=True)

TemplateOpt = Annotated[
    str, typer.Option("--template", help=f"Session template: {', '.join(TEMPLATES)}.")
]
PlacementOpt = Annotated[str, typer.Option(help="Sensor placement: foot, shank or trunk.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the simulated athlete.")]
WarmupOpt = Annotated[float | None, typer.Option(help="Warm-up duration (s).")]
RepsOpt = Annotated[int | None, typer.Option(help="Number of reps.")]
RepOpt = Annotated[float | None, typer.Option(help="Rep duration (s).")]
RecoveryOpt = Annotated[float | None, typer.Option(help="Minimum recovery (s).")]
CooldownOpt = Annotated[float | None, typer.Option(help="Cool-down duration (s).")]


def _plan(
    name: str,
    warmup_s: float | None,
    reps: int | None,
    rep_s: float | None,
    recovery_s: float | None,
    cooldown_s: float | None,
) -> SessionPlan:
    try:
        return template(name).with_overrides(
            warmup_s=warmup_s,
            reps=reps,
            rep_s=rep_s,
            min_recovery_s=recovery_s,
            cooldown_s=cooldown_s,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


MqttOpt = Annotated[
    str | None,
    typer.Option(
        help="Publish to this broker: mqtt://…, mqtts://… or 'embedded'.", show_default=False
    ),
]
AthleteOpt = Annotated[
    str | None, typer.Option(help="Athlete id for the published topics.", show_default=False)
]


SorenessOpt = Annotated[bool, typer.Option("--soreness", help="Readiness: sore legs.")]
PoorSleepOpt = Annotated[bool, typer.Option("--poor-sleep", help="Readiness: slept badly.")]
IllnessOpt = Annotated[bool, typer.Option("--illness", help="Readiness: unwell.")]
FatiguedOpt = Annotated[bool, typer.Option("--fatigued", help="Readiness: accumulated fatigue.")]


def _settings(mqtt: str | None, athlete: str | None) -> Settings:
    """Settings from the flags, the environment and the config file, checked."""
    try:
        settings = Settings.load(mqtt_url=mqtt, athlete_id=athlete)
        check_athlete_id(settings.athlete_id)
        settings.broker()  # a malformed URL is an error now, not in the middle of the run
    except (ValueError, ValidationError) as e:
        raise typer.BadParameter(str(e)) from None
    return settings


def _readiness(soreness: bool, poor_sleep: bool, illness: bool, fatigued: bool) -> Readiness:
    return Readiness(
        soreness=soreness, poor_sleep=poor_sleep, illness=illness, accumulated_fatigue=fatigued
    )


def _placement(name: str) -> Placement:
    try:
        return Placement.parse(name)
    except ValueError:
        raise typer.BadParameter(f"unknown placement {name!r}: use foot, shank or trunk") from None


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise typer.BadParameter(f"speed must be a number or 'max', got {text!r}") from None
    if speed <= 0:
        raise typer.BadParameter("speed must be > 0")
    return speed


def _print_events(events: Sequence[Event]) -> None:
    for e in events:
        sys.stdout.write(event_line(e) + "\n")


@asynccontextmanager
async def _ready(source: Source) -> AsyncIterator[Source]:
    yield source


def _live_run(
    open_source: Callable[[], AbstractAsyncContextManager[Source]],
    plan: SessionPlan | None,
    title: str,
    speed: float | None,
    json_lines: bool,
    settings: Settings,
    device: str,
    readiness: Readiness,
) -> None:
    """Run the session with its sinks: JSON lines or the live view, and the bus if configured.

    The source is opened inside the event loop (a Bluetooth device knows its sample rate only
    once connected), then the engine is built for it.
    """
    live = Live(console=console, refresh_per_second=8, transient=False)

    async def main() -> None:
        async with open_source() as source:
            engine = build_engine(source, plan, readiness)
            view = LiveView(engine, title)
            live.update(view)
            async with open_bus(
                settings,
                engine,
                device=device,
                template=plan.name if plan else None,
                announce=lambda text: err.print(f"[dim]{text}[/dim]"),
            ) as bus:
                sinks: list[Sink] = [_print_events if json_lines else view]
                if bus is not None:
                    sinks.append(bus)
                await run_session(source, engine, sinks, speed=speed)

    try:
        if json_lines:
            asyncio.run(main())
        else:
            with live:
                asyncio.run(main())
    except BusError as e:
        err.print(f"[red]MQTT:[/red] {e}")
        raise typer.Exit(2) from None
    except DeviceError as e:
        err.print(f"[red]Bluetooth:[/red] {e}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("[dim]stopped[/dim]")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, dict):
        return " / ".join(_fmt(v) for v in value.values())
    return "–" if value is None else str(value)


def _print_figures(figures: dict[str, object], json_out: bool) -> None:
    if json_out:
        sys.stdout.write(json.dumps(figures) + "\n")
        return
    table = Table(header_style="dim")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in figures.items():
        table.add_row(k, _fmt(v))
    console.print(table)
