"""`stridecue bench`: the engine, the MQTT path, the Bluetooth path and the whole chain."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bus.settings import BusError
from stridecue.commands.common import (
    _print_figures,
    err,
)


def bench(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="One flat JSON object.")] = False,
    minutes: Annotated[float, typer.Option(help="Length of the replayed session.")] = 60.0,
    athletes: Annotated[int, typer.Option(help="Athletes streamed together.")] = 500,
    stream_s: Annotated[float, typer.Option(help="Stream seconds per streaming run.")] = 20.0,
    repeats: Annotated[int, typer.Option(help="Runs per figure (the median is kept).")] = 3,
) -> None:
    """The engine: offline replay, streaming many athletes, memory growth."""
    if ctx.invoked_subcommand is not None:
        return
    from stridecue.bench.engine import run_bench

    figures = run_bench(
        minutes=minutes,
        athletes=athletes,
        stream_seconds=stream_s,
        repeats=repeats,
        progress=None if json_out else err,
    )
    _print_figures(figures, json_out)


def bench_mqtt(
    mqtt: Annotated[
        str, typer.Option(help="The broker (a real Mosquitto).")
    ] = "mqtt://127.0.0.1:1883",
    json_out: Annotated[bool, typer.Option("--json", help="One flat JSON object.")] = False,
    athletes: Annotated[
        list[int] | None, typer.Option(help="Athletes publishing at once (repeatable).")
    ] = None,
    speed: Annotated[float, typer.Option(help="Session compression (1: real time).")] = 1.0,
    stream_s: Annotated[float, typer.Option(help="Stream seconds per run.")] = 60.0,
) -> None:
    """Sample → cue received by a subscriber, through a broker: 1 and 100 athletes at once."""
    from bus.settings import BrokerConfig
    from stridecue.bench.mqtt import run_mqtt_bench

    try:
        broker = BrokerConfig.from_url(mqtt)
        figures = asyncio.run(
            run_mqtt_bench(broker, athletes=athletes or [1, 100], speed=speed, stream_s=stream_s)
        )
    except BusError as e:
        err.print(f"[red]MQTT:[/red] {e}")
        raise typer.Exit(2) from None
    _print_figures(figures, json_out)


def bench_ble(
    json_out: Annotated[bool, typer.Option("--json", help="One flat JSON object.")] = False,
    latency_s: Annotated[float, typer.Option(help="Seconds of the 200 Hz latency run.")] = 30.0,
    sustained_s: Annotated[float, typer.Option(help="Seconds of the 1 kHz run.")] = 60.0,
) -> None:
    """The Bluetooth path on the emulated BlueZ: notification → step latency, 1 kHz sustained."""
    from stridecue.bench.ble import run_ble_bench

    figures = asyncio.run(run_ble_bench(latency_s=latency_s, sustained_s=sustained_s))
    _print_figures(figures, json_out)


def bench_e2e(
    mqtt: Annotated[
        str, typer.Option(help="The broker (a real Mosquitto).")
    ] = "mqtt://127.0.0.1:1883",
    json_out: Annotated[bool, typer.Option("--json", help="One flat JSON object.")] = False,
    athletes: Annotated[
        list[int] | None, typer.Option(help="Team sizes after the single athlete (repeatable).")
    ] = None,
    stream_s: Annotated[float, typer.Option(help="Stream seconds per run (real time).")] = 60.0,
    chromium: Annotated[str, typer.Option(help="The browser to drive.")] = "/usr/bin/chromium",
) -> None:
    """Sample → cue on the coach page in a real browser; 1, 10, 50 and 100 athletes, with CPU."""
    from bus.settings import BrokerConfig
    from stridecue.bench.e2e import E2EBenchError, run_e2e_bench

    try:
        broker = BrokerConfig.from_url(mqtt)
        figures = asyncio.run(
            run_e2e_bench(
                broker,
                athletes=[10, 50, 100] if athletes is None else athletes,
                stream_s=stream_s,
                chromium=chromium,
            )
        )
    except BusError as e:
        err.print(f"[red]MQTT:[/red] {e}")
        raise typer.Exit(2) from None
    except E2EBenchError as e:
        err.print(f"[red]bench e2e:[/red] {e}")
        raise typer.Exit(2) from None
    _print_figures(figures, json_out)
