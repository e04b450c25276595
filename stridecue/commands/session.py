"""Sessions without hardware: the demo, simulated logs, replays, accuracy against ground truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
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
    paths: Annotated[
        list[Path], typer.Argument(help="Running-truth or real-run folders, or simulated logs.")
    ],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Accuracy against ground truth, per trial and per dataset.

    Recordings without contact truth (real runs) are checked for agreement instead: per 10-s
    window, each sensor's cadence against the stride periodicity of the signal, and sensors worn
    at once against each other, split by activity.
    """
    from recordings.agreement import agreement_report, sensor_windows
    from recordings.evaluate import evaluate_trial, finite, report, run_trial

    try:
        trials = find_trials(paths)
    except TrialError as e:
        err.print(f"[red]nothing to evaluate:[/red] {e}")
        raise typer.Exit(2) from None
    results, windows = [], []
    with Progress(console=err, transient=True, disable=json_out) as progress:
        task = progress.add_task("evaluating", total=len(trials))
        for trial in trials:
            if len(trial.contacts_s):
                results.append(evaluate_trial(trial))
            else:
                windows.append(sensor_windows(trial, run_trial(trial)))
            progress.advance(task)
    doc = finite(report(results))
    if windows:
        doc["agreement"] = finite(agreement_report(windows))
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
        return
    for section in ("trials", "placements", "datasets"):
        for table in _accuracy_tables(section, doc[section]):
            console.print(table, "")
    if windows:
        for name, recording in doc["agreement"]["recordings"].items():
            console.print(_agreement_table(name, recording, doc["agreement"]["targets"]), "")


# Short headers for the accuracy tables (the JSON keeps the full names): numbers in ms and spm.
_CONTACT_COLUMNS = {
    "trials": "n",
    "n_contacts": "con-\ntacts",
    "recall": "recall\n%",
    "precision": "prec.\n%",
    "gct_mae_ms": "GCT\nMAE\nms",
    "gct_bias_ms": "GCT\nbias\nms",
    "ic_bias_ms": "IC\nbias\nms",
    "cadence_mae_spm": "cad.\nMAE\nspm",
}
_REP_COLUMNS = {
    "reps_found": "reps\nfound",
    "false_reps": "false\nreps",
    "rep_start_err_s": "start err s\nmed / max",
    "rep_end_err_s": "end err s\nmed / max",
    "stream_cadence_mae_spm": "live cad.\nMAE spm",
    "stream_cadence_samples": "live\nseconds",
}


def _cell(key: str, figures: dict[str, Any]) -> str:
    value = figures.get(key)
    if value is None:
        return "–"
    if key in ("recall", "precision"):
        return f"{100 * value:.1f}"
    if key == "reps_found":
        return f"{value}/{figures.get('reps_true')}"
    if isinstance(value, dict):
        return " / ".join("–" if v is None else f"{v:.2f}" for v in value.values())
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _accuracy_tables(section: str, rows: dict[str, dict[str, Any]]) -> list[Table]:
    """The contact figures of one section, and the rep figures (when any) in a second table:
    both fit 80 columns."""
    tables = []
    for columns, title in ((_CONTACT_COLUMNS, section), (_REP_COLUMNS, f"{section}: reps")):
        keys = [k for k in columns if any(k in figures for figures in rows.values())]
        if section == "trials":
            keys = [k for k in keys if k != "trials"]  # one each
        if not rows or (not any(k in _REP_COLUMNS for k in keys) and columns is _REP_COLUMNS):
            continue
        table = Table(
            title=title,
            header_style="dim",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            padding=(0, 0, 0, 1),
        )
        if columns is _CONTACT_COLUMNS:
            glitches = sum(f.get("truth_glitches_dropped") or 0 for f in rows.values())
            if glitches:
                table.caption = f"true contacts shorter than 60 ms left out: {glitches}"
        table.add_column("name", overflow="fold")
        for k in keys:
            table.add_column(columns[k], justify="right", no_wrap=True)
        for name, figures in rows.items():
            table.add_row(name, *(_cell(k, figures) for k in keys))
        tables.append(table)
    return tables


def _share(count: dict[str, Any] | None) -> str:
    if not count or not count["of"]:
        return "–"
    return f"{count['agree']}/{count['of']} {100 * count['share']:.0f}%"


def _agreement_table(name: str, recording: dict[str, Any], targets: dict[str, float]) -> Table:
    """One recording's agreement: a row per figure, a column per sensor and per pair."""
    recording_id = name.split("/", 1)[-1]

    def short(trial: str) -> str:
        stem = trial.split("/", 1)[-1]
        return stem.removeprefix(recording_id).strip("_") or stem

    sensors = recording["sensors"]
    n = recording["windows"]
    table = Table(
        title=f"agreement · {name}",
        caption=(
            f"10-s windows: {n['running']} running, {n['walking']} walking, {n['still']} still "
            f"(the {short(recording['reference'])}'s periodicity, also the reference); "
            "pairs: the two sensors' cadences within the tolerance of each other"
        ),
        header_style="dim",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("cadence")
    table.add_column("target", justify="right")
    for trial, figures in sensors.items():
        table.add_column(f"{figures['placement']}\n{short(trial)}", justify="right")
    for pair in recording["pairs"]:
        table.add_column(" ~ ".join(short(t) for t in pair["sensors"]), justify="right")
    rows = [
        ("running_within_3_spm", "running, ≤ 3 spm of ref."),
        ("walking_within_5_spm", "walking, ≤ 5 spm of ref."),
        ("still_no_cadence", "still, none reported"),
        ("own_running_within_3_spm", "running, ≤ 3 spm of own"),
        ("own_walking_within_5_spm", "walking, ≤ 5 spm of own"),
    ]
    for key, label in rows:
        target = targets.get(key)
        table.add_row(
            label,
            "" if target is None else f"≥ {100 * target:.0f}%",
            *(_share(f.get(key)) for f in sensors.values()),
            *(_share(p.get(key)) if key in p else "" for p in recording["pairs"]),
        )
    return table
