"""The `stridecue` command."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.progress import Progress
from rich.table import Table

from device.errors import DeviceError
from dsp.events import Event, Placement
from dsp.plan import TEMPLATES, SessionPlan, template
from dsp.session import Readiness
from firmware_sim.impair import Impairments
from firmware_sim.runner import SimulatedAthlete
from stridecue.jsonl import event_line
from stridecue.live import LiveView
from stridecue.logfile import LogError, LogHeader, LogWriter, utc_now
from stridecue.mqtt.bus import open_bus
from stridecue.mqtt.settings import EMBEDDED, BusError, Settings
from stridecue.mqtt.topics import check_athlete_id
from stridecue.runner import Sink, build_engine, run_session
from stridecue.sources import RecordedSource, SimulatedSource, Source
from stridecue.trials import TrialError, find_trials, truth_path_for, write_truth

app = typer.Typer(
    help="Real-time stride feedback: cadence, ground contact time and rep cues.",
    no_args_is_help=True,
    add_completion=False,
)
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


@app.command()
def demo(
    speed: Annotated[str, typer.Option(help="Stream seconds per wall second, or 'max'.")] = "30",
    template_name: TemplateOpt = "nrr",
    placement: PlacementOpt = "foot",
    seed: SeedOpt = 7,
    warmup_s: WarmupOpt = None,
    reps: RepsOpt = None,
    rep_s: RepOpt = None,
    recovery_s: RecoveryOpt = None,
    cooldown_s: CooldownOpt = None,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
    mqtt: MqttOpt = None,
    athlete: AthleteOpt = None,
    soreness: SorenessOpt = False,
    poor_sleep: PoorSleepOpt = False,
    illness: IllnessOpt = False,
    fatigued: FatiguedOpt = False,
) -> None:
    """A simulated athlete runs a session closed-loop on the engine's cues, compressed in time.

    Its events go to an embedded MQTT broker unless --mqtt (or STRIDECUE_MQTT_URL) names one.
    """
    plan = _plan(template_name, warmup_s, reps, rep_s, recovery_s, cooldown_s)
    pace = _speed(speed)
    # A block every 20 ms of wall time: a sensor's packet rhythm, sped up with the session.
    block_s = 1.0 if pace is None else 0.02 * max(1.0, pace)
    runner = SimulatedAthlete(plan, _placement(placement), seed=seed, closed_loop=True)
    source = SimulatedSource(runner, block_s=block_s)
    title = f"stridecue demo · simulated {placement} sensor · {plan.name} · ×{speed}"
    settings = _settings(mqtt, athlete)
    if settings.mqtt_url is None:
        settings = settings.model_copy(update={"mqtt_url": EMBEDDED})
    readiness = Readiness(
        soreness=soreness, poor_sleep=poor_sleep, illness=illness, accumulated_fatigue=fatigued
    )
    _live_run(
        lambda: _ready(source), plan, title, pace, json_lines, settings, "firmware_sim", readiness
    )


@app.command()
def simulate(
    output: Annotated[Path, typer.Option("-o", "--output", help="The .log to write.")],
    template_name: TemplateOpt = "nrr",
    placement: PlacementOpt = "foot",
    seed: SeedOpt = 7,
    rate_hz: Annotated[float, typer.Option(help="Sample rate (Hz).")] = 200.0,
    impair: Annotated[
        str, typer.Option(help="Impairments, e.g. 'noise=0.05,orientation,saturation=8,drop=0.01'.")
    ] = "",
    warmup_s: WarmupOpt = None,
    reps: RepsOpt = None,
    rep_s: RepOpt = None,
    recovery_s: RecoveryOpt = None,
    cooldown_s: CooldownOpt = None,
) -> None:
    """Write a simulated session (open loop) as a log, and its ground truth beside it."""
    plan = _plan(template_name, warmup_s, reps, rep_s, recovery_s, cooldown_s)
    try:
        impairments = Impairments.from_spec(impair)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    where = _placement(placement)
    athlete = SimulatedAthlete(plan, where, seed=seed, fs_hz=rate_hz, impairments=impairments)
    source = SimulatedSource(athlete, block_s=1.0)
    header = LogHeader(
        device="firmware_sim",
        placement=where.value,
        sample_rate_hz=rate_hz,
        start_time=utc_now(),
        extra={"seed": seed, "template": plan.name, "impairments": impairments.to_dict()},
    )
    output.unlink(missing_ok=True)
    with LogWriter(output, header) as writer:
        for block in source:
            writer.write(block)
    truth = source.athlete.truth().to_json_dict(plan.name)
    write_truth(truth_path_for(output), truth)
    err.print(
        f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB) and {truth_path_for(output).name}: "
        f"{len(truth['contacts_s'])} contacts, {len(truth['reps_s'])} reps"
    )


@app.command()
def replay(
    path: Annotated[Path, typer.Argument(help="A .log recording or a running-truth .csv.")],
    speed: Annotated[str, typer.Option(help="1, 10, … or 'max'.")] = "max",
    template_name: Annotated[
        str | None, typer.Option("--template", help="Cued mode with this plan (default: auto).")
    ] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
    mqtt: MqttOpt = None,
    athlete: AthleteOpt = None,
    soreness: SorenessOpt = False,
    poor_sleep: PoorSleepOpt = False,
    illness: IllnessOpt = False,
    fatigued: FatiguedOpt = False,
) -> None:
    """Replay a recording through the engine: auto mode, or cued with --template."""
    try:
        source = RecordedSource.open(path)
    except (LogError, TrialError) as e:
        err.print(f"[red]cannot replay:[/red] {e}")
        raise typer.Exit(2) from None
    try:
        plan = template(template_name) if template_name else None
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--template") from None
    title = f"stridecue replay · {path.name} · {source.placement.value}"
    settings = _settings(mqtt, athlete)
    readiness = Readiness(
        soreness=soreness, poor_sleep=poor_sleep, illness=illness, accumulated_fatigue=fatigued
    )
    _live_run(
        lambda: _ready(source),
        plan,
        title,
        _speed(speed),
        json_lines,
        settings,
        source.header.device,
        readiness,
    )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, dict):
        return " / ".join(_fmt(v) for v in value.values())
    return "–" if value is None else str(value)


@app.command(name="eval")
def evaluate(
    paths: Annotated[list[Path], typer.Argument(help="Running-truth folders or simulated logs.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Accuracy against ground truth, per trial and per dataset."""
    from stridecue.evaluate import evaluate_trial, finite, report

    try:
        trials = find_trials(paths)
    except TrialError as e:
        err.print(f"[red]nothing to evaluate:[/red] {e}")
        raise typer.Exit(2) from None
    results = []
    with Progress(console=err, transient=True, disable=json_out) as progress:
        task = progress.add_task("evaluating", total=len(trials))
        for trial in trials:
            results.append(evaluate_trial(trial))
            progress.advance(task)
    doc = finite(report(results))
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
        return
    for section in ("trials", "placements", "datasets"):
        table = Table(title=section, header_style="dim")
        table.add_column("name")
        all_keys = list(dict.fromkeys(k for v in doc[section].values() for k in v))
        for k in all_keys:
            table.add_column(k, justify="right")
        for name, figures in doc[section].items():
            table.add_row(name, *(_fmt(figures.get(k)) for k in all_keys))
        console.print(table)


bench_app = typer.Typer(help="Speed and memory figures (medians; keys carry their units).")
app.add_typer(bench_app, name="bench")


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


@bench_app.callback(invoke_without_command=True)
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
    from stridecue.bench import run_bench

    figures = run_bench(
        minutes=minutes,
        athletes=athletes,
        stream_seconds=stream_s,
        repeats=repeats,
        progress=None if json_out else err,
    )
    _print_figures(figures, json_out)


@bench_app.command("mqtt")
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
    from stridecue.mqtt.bench import run_mqtt_bench
    from stridecue.mqtt.settings import BrokerConfig

    try:
        broker = BrokerConfig.from_url(mqtt)
        figures = asyncio.run(
            run_mqtt_bench(broker, athletes=athletes or [1, 100], speed=speed, stream_s=stream_s)
        )
    except BusError as e:
        err.print(f"[red]MQTT:[/red] {e}")
        raise typer.Exit(2) from None
    _print_figures(figures, json_out)


@bench_app.command("ble")
def bench_ble(
    json_out: Annotated[bool, typer.Option("--json", help="One flat JSON object.")] = False,
    latency_s: Annotated[float, typer.Option(help="Seconds of the 200 Hz latency run.")] = 30.0,
    sustained_s: Annotated[float, typer.Option(help="Seconds of the 1 kHz run.")] = 60.0,
) -> None:
    """The Bluetooth path on the emulated BlueZ: notification → step latency, 1 kHz sustained."""
    from stridecue.ble_bench import run_ble_bench

    figures = asyncio.run(run_ble_bench(latency_s=latency_s, sustained_s=sustained_s))
    _print_figures(figures, json_out)


DeviceOpt = Annotated[str, typer.Option("--device", help="The device's name or address.")]
ProfileOpt = Annotated[
    str, typer.Option(help="raw-imu, polar-pmd, rsc, witmotion, or auto (from the scan).")
]


@app.command()
def scan(
    timeout_s: Annotated[float, typer.Option("--timeout", help="Scan duration (s).")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per device.")] = False,
) -> None:
    """Nearby Bluetooth devices: name, address, signal strength and the profile detected."""
    from stridecue.ble import scan_devices

    try:
        found = asyncio.run(scan_devices(timeout_s))
    except Exception as e:  # bleak raises a few unrelated types when no adapter is there
        err.print(f"[red]Bluetooth:[/red] cannot scan: {e}")
        raise typer.Exit(2) from None
    if json_out:
        for f in found:
            sys.stdout.write(json.dumps(asdict(f)) + "\n")
        return
    table = Table(header_style="dim")
    for column in ("name", "address", "RSSI", "profile"):
        table.add_column(column)
    for f in found:
        profile = (f.profile or "–") + (" (from services)" if f.discovered else "")
        table.add_row(f.name or "–", f.address, f"{f.rssi_dbm} dBm", profile)
    console.print(table)


@app.command()
def record(
    device: DeviceOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="The .log to write.")],
    profile: ProfileOpt = "auto",
    placement: PlacementOpt = "foot",
    duration_s: Annotated[
        float | None, typer.Option("--duration", help="Stop after this long (s).")
    ] = None,
) -> None:
    """Record a device's raw notifications with host receive times (replays byte for byte)."""
    from stridecue.ble import open_device

    where = _placement(placement)

    async def main() -> None:
        async with open_device(
            device, profile, where, output=output, duration_s=duration_s
        ) as source:
            err.print(f"recording {device} ({source.driver.name}) to {output}: Ctrl-C to stop")
            async for _ in source:
                pass

    try:
        asyncio.run(main())
    except DeviceError as e:
        err.print(f"[red]Bluetooth:[/red] {e}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass
    err.print(f"wrote {output}")


@app.command()
def run(
    device: DeviceOpt,
    template_name: TemplateOpt = "nrr",
    profile: ProfileOpt = "auto",
    placement: PlacementOpt = "foot",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Also record the raw data here.")
    ] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
    mqtt: MqttOpt = None,
    athlete: AthleteOpt = None,
    duration_s: Annotated[
        float | None, typer.Option("--duration", help="Stop after this long (s).")
    ] = None,
    warmup_s: WarmupOpt = None,
    reps: RepsOpt = None,
    rep_s: RepOpt = None,
    recovery_s: RecoveryOpt = None,
    cooldown_s: CooldownOpt = None,
    soreness: SorenessOpt = False,
    poor_sleep: PoorSleepOpt = False,
    illness: IllnessOpt = False,
    fatigued: FatiguedOpt = False,
) -> None:
    """A live session from a Bluetooth footpod or IMU: cues in the terminal (and over MQTT)."""
    from stridecue.ble import open_device

    plan = _plan(template_name, warmup_s, reps, rep_s, recovery_s, cooldown_s)
    where = _placement(placement)
    settings = _settings(mqtt, athlete)
    readiness = Readiness(
        soreness=soreness, poor_sleep=poor_sleep, illness=illness, accumulated_fatigue=fatigued
    )
    title = f"stridecue run · {device} · {where.value} · {plan.name}"
    _live_run(
        lambda: open_device(device, profile, where, output=output, duration_s=duration_s),
        plan,
        title,
        None,
        json_lines,
        settings,
        device,
        readiness,
    )


@app.command(name="sim-footpod")
def sim_footpod(
    profile: Annotated[str, typer.Option(help="raw-imu, polar-pmd, rsc or witmotion.")] = "raw-imu",
    template_name: TemplateOpt = "nrr",
    placement: PlacementOpt = "foot",
    seed: SeedOpt = 7,
    speed: Annotated[float, typer.Option(help="Session compression (1: real time).")] = 1.0,
    name: Annotated[str, typer.Option(help="The advertised name.")] = "Stridecue Footpod",
    warmup_s: WarmupOpt = None,
    reps: RepsOpt = None,
    rep_s: RepOpt = None,
    recovery_s: RecoveryOpt = None,
    cooldown_s: CooldownOpt = None,
) -> None:
    """Serve a simulated athlete as a BLE footpod on a private dbus-daemon (no hardware)."""
    from stridecue.ble import serve_footpod

    plan = _plan(template_name, warmup_s, reps, rep_s, recovery_s, cooldown_s)
    if speed <= 0:
        raise typer.BadParameter("speed must be > 0")
    try:
        asyncio.run(
            serve_footpod(
                profile,
                plan,
                _placement(placement),
                seed=seed,
                speed=speed,
                name=name,
                # Whole lines, no markup: the shell commands must survive a copy and paste.
                announce=lambda text: err.print(text, soft_wrap=True, markup=False),
            )
        )
    except DeviceError as e:
        err.print(f"[red]Bluetooth:[/red] {e}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("[dim]footpod stopped[/dim]")


# --- `stridecue serve`: the coach companion (server/) -----------------------------------------
# Self-contained: the server package is imported only when the command runs.


@app.command()
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
) -> None:
    """The coach companion: stores every session on the bus; HTTP API and live WebSocket."""
    import secrets

    import uvicorn

    from server.app import create_app
    from server.settings import ServerSettings

    flags = {"port": port, "host": host, "mqtt_url": mqtt, "database_url": database}
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
        settings.broker()  # a bad broker URL fails here, not inside the server
    except ValidationError as e:
        for error in e.errors(include_url=False, include_input=False):
            where = ".".join(map(str, error["loc"]))
            err.print(f"[red]settings:[/red] {where}: {error['msg']}", soft_wrap=True)
        raise typer.Exit(2) from None
    except BusError as e:
        err.print(f"[red]MQTT:[/red] {e}")
        raise typer.Exit(2) from None
    err.print(f"coach companion on http://{settings.host}:{settings.port} (API: /docs)")
    if generated is not None:
        err.print(f"coach token: {generated}", markup=False, soft_wrap=True)
    if settings.mqtt_url is None:
        err.print("no MQTT broker (--mqtt or STRIDECUE_MQTT_URL): serving stored sessions only")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
