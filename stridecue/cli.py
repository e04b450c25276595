"""The `stridecue` command: one app assembled from the command modules."""

from __future__ import annotations

import typer

from stridecue.commands import bench, ble, serve, session

app = typer.Typer(
    help="Real-time stride feedback: cadence, ground contact time and rep cues.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(session.demo)
app.command(name="sim-run")(session.sim_run)
app.command()(session.simulate)
app.command()(session.replay)
app.command(name="eval")(session.evaluate)
app.command()(ble.scan)
app.command()(ble.record)
app.command()(ble.run)
app.command(name="sim-footpod")(ble.sim_footpod)
app.command()(serve.serve)

bench_app = typer.Typer(help="Speed and memory figures (medians; keys carry their units).")
bench_app.callback(invoke_without_command=True)(bench.bench)
bench_app.command("mqtt")(bench.bench_mqtt)
bench_app.command("ble")(bench.bench_ble)
bench_app.command("e2e")(bench.bench_e2e)
app.add_typer(bench_app, name="bench")
