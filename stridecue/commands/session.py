"""Sessions without hardware: the demo, simulated logs, replays, accuracy against ground truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from dsp.plan import template
from firmware_sim.impair import Impairments
from firmware_sim.runner import SimulatedAthlete
from recordings.logfile import LogError, LogHeader, LogWriter, utc_now
from recordings.sources import RecordedSource, SimulatedSource
from recordings.trials import TrialError, find_trials, truth_path_for, write_truth
from stridecue.commands.common import (
    AthleteOpt,
    CooldownOpt,
    FatiguedOpt,
    IllnessOpt,
    MqttOpt,
    PlacementOpt,
    PoorSleepOpt,
    RecoveryOpt,
    RepOpt,
    RepsOpt,
    SeedOpt,
    SorenessOpt,
    TemplateOpt,
    WarmupOpt,
    _fmt,
    _live_run,
    _placement,
    _plan,
    _readiness,
    _ready,
    _settings,
    _speed,
    console,
    err,
)


def demo(
    athletes: Annotated[int, typer.Option(help="Simulated athletes (at least 2 make a team).")] = 3,
    speed: Annotated[float, typer.Option(help="Stream seconds per wall second.")] = 10.0,
    port: Annotated[
        int | None, typer.Option(help="The companion's port (default 8000, or any free one).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="The coach token (default: a new one each run).")
    ] = None,
    template_name: TemplateOpt = "nrr",
    direct: Annotated[
        bool, typer.Option(help="Feed the engines directly, not through Bluetooth (bleak).")
    ] = False,
    warmup_s: WarmupOpt = None,
    reps: RepsOpt = None,
    rep_s: RepOpt = None,
    recovery_s: RecoveryOpt = None,
    cooldown_s: CooldownOpt = None,
) -> None:
    """The whole chain with nothing to set up: a simulated team, a broker, the coach companion.

    Each athlete runs a closed-loop session on its own simulated footpod through bleak (an
    emulated BlueZ, when dbus-daemon is installed), publishing to an embedded MQTT broker; the
    companion stores every session in a SQLite file in the data folder and serves the coach and
    athlete pages. Prints the coach URL and token. Ctrl-C stops everything.
    """
    import asyncio
    import secrets

    from bus.settings import Settings
    from server.settings import MIN_TOKEN_CHARS
    from stridecue.demo import DemoConfig, run_demo
    from stridecue.team import bluetooth_available, roster

    plan = _plan(template_name, warmup_s, reps, rep_s, recovery_s, cooldown_s)
    if athletes < 1:
        raise typer.BadParameter("at least one athlete", param_hint="--athletes")
    if speed <= 0:
        raise typer.BadParameter("speed must be > 0", param_hint="--speed")
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise typer.BadParameter(
            f"the coach token must be at least {MIN_TOKEN_CHARS} characters", param_hint="--token"
        )
    bluetooth = not direct and bluetooth_available()
    how = "through bleak on an emulated BlueZ" if bluetooth else "fed directly to the engines"
    if not direct and not bluetooth:
        how += " (no dbus-daemon here for the emulated BlueZ)"
    err.print(
        f"stridecue demo · {athletes} simulated athletes · {plan.name} · ×{speed:g} · {how}",
        soft_wrap=True,
    )
    config = DemoConfig(
        members=roster(athletes),
        plan=plan,
        speed=speed,
        bluetooth=bluetooth,
        token=token or secrets.token_urlsafe(24),
        port=port,
        data_dir=Settings().data_path / "demo",
    )
    try:
        asyncio.run(run_demo(config, lambda text: err.print(text, markup=False, soft_wrap=True)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print("stopped")
    except OSError as e:
        err.print(f"[red]cannot run the demo:[/red] {e}")
        raise typer.Exit(2) from None


def sim_run(
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
    """One simulated athlete runs a session closed loop, in the terminal (no companion).

    A live view (or --json events); with --mqtt (or STRIDECUE_MQTT_URL) its events are also
    published ('embedded' starts a broker in-process).
    """
    plan = _plan(template_name, warmup_s, reps, rep_s, recovery_s, cooldown_s)
    pace = _speed(speed)
    # A block every 20 ms of wall time: a sensor's packet rhythm, sped up with the session.
    block_s = 1.0 if pace is None else 0.02 * max(1.0, pace)
    runner = SimulatedAthlete(plan, _placement(placement), seed=seed, closed_loop=True)
    source = SimulatedSource(runner, block_s=block_s)
    title = f"stridecue sim-run · simulated {placement} sensor · {plan.name} · ×{speed}"
    settings = _settings(mqtt, athlete)
    readiness = _readiness(soreness, poor_sleep, illness, fatigued)
    _live_run(
        lambda: _ready(source), plan, title, pace, json_lines, settings, "firmware_sim", readiness
    )


def simulate(
    output: Annotated[Path, typer.Option("-o", "--output", help="The .log to write.")],
    template_name: TemplateOpt = "nrr",
    placement: PlacementOpt = "foot",
    seed: SeedOpt = 7,
    rate_hz: Annotated[float, typer.Option(help="Sample rate (Hz).")] = 200.0,
    impair: Annotated[
        str,
        typer.Option(
            help="Impairments, e.g. 'noise=0.05,orientation,saturation=8,drop=0.01'; "
            "'accel-only,saturation=8' at --rate-hz 100 is a shoe clip without a gyroscope."
        ),
    ] = "",
    recovery: Annotated[
        str, typer.Option(help="Between reps the runner jogs, walks or stands: jog|walk|stand.")
    ] = "jog",
    surges: Annotated[
        int, typer.Option(help="Short pick-ups of pace in the warm-up and cool-down (not reps).")
    ] = 0,
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
    try:
        athlete = SimulatedAthlete(
            plan,
            where,
            seed=seed,
            fs_hz=rate_hz,
            impairments=impairments,
            recovery=recovery,
            surges=surges,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
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
    readiness = _readiness(soreness, poor_sleep, illness, fatigued)
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


def evaluate(
    paths: Annotated[list[Path], typer.Argument(help="Running-truth folders or simulated logs.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Accuracy against ground truth, per trial and per dataset."""
    from recordings.evaluate import evaluate_trial, finite, report

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
