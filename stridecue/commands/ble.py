"""The Bluetooth commands: scan, record, run, and the simulated footpod."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from device.errors import DeviceError
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
    _settings,
    console,
    err,
)

DeviceOpt = Annotated[str, typer.Option("--device", help="The device's name or address.")]
ProfileOpt = Annotated[
    str, typer.Option(help="raw-imu, polar-pmd, rsc, witmotion, or auto (from the scan).")
]


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
    readiness = _readiness(soreness, poor_sleep, illness, fatigued)
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
