"""A simulated team: each athlete is a phone of its own, running a closed-loop session.

Every member runs in its own process, as on a real team where each runner's phone talks to its
own footpod: a simulated athlete served as a BLE footpod through an emulated BlueZ on a private
``dbus-daemon`` (the real bleak code path), a :class:`~device.source.BleSource`, the stride
engine, and a durable publisher to the team's broker. The runner reacts to the engine's cues
(closed loop). Without ``dbus-daemon`` the athlete feeds the engine directly.

Processes rather than tasks: bleak finds BlueZ through the process's environment (one emulated
adapter per process), and the members' engines spread over the machine's cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

from bus.session import open_bus
from bus.settings import Settings
from dsp.events import Placement
from dsp.plan import SessionPlan
from firmware_sim.gait import AthleteProfile
from firmware_sim.runner import SimulatedAthlete
from recordings.runner import build_engine, run_session
from recordings.sources import SimulatedSource

log = logging.getLogger(__name__)

# A block every 20 ms of wall time when the athlete feeds the engine directly.
DIRECT_TICK_S = 0.02


@dataclass(frozen=True, slots=True)
class Member:
    """One simulated athlete of the team and the sensor it wears."""

    athlete_id: str
    placement: Placement
    profile: str  # the BLE profile its footpod speaks
    seed: int
    fatiguing: bool = False


# Three kinds of runner a coach meets: a shoe pod, a chest strap (Polar), and a shank IMU on a
# runner who tires from the fourth rep (the fatigue rule flags it, and ends the set early).
ROSTER = (
    Member("anna", Placement.FOOT, "raw-imu", seed=7),
    Member("ben", Placement.TRUNK, "polar-pmd", seed=11),
    Member("chloe", Placement.SHANK, "raw-imu", seed=23, fatiguing=True),
)


def roster(n: int) -> list[Member]:
    """``n`` members: the roster first, then more of the same kinds with their own seeds."""
    if n < 1:
        raise ValueError("a team needs at least one athlete")
    members = list(ROSTER[:n])
    for i in range(len(ROSTER), n):
        kind = ROSTER[i % len(ROSTER)]
        members.append(
            Member(f"athlete-{i + 1}", kind.placement, kind.profile, 100 + i, kind.fatiguing)
        )
    return members


def bluetooth_available() -> bool:
    """The emulated BlueZ needs a ``dbus-daemon`` to run on."""
    return shutil.which("dbus-daemon") is not None


@dataclass(frozen=True, slots=True)
class Run:
    """What every member's process needs: the plan, the pace, the broker, where to keep data."""

    plan: SessionPlan
    speed: float
    broker_url: str
    data_dir: Path
    bluetooth: bool


async def run_member(member: Member, run: Run) -> None:
    """One athlete's whole session, published to ``run.broker_url``; returns when it is done."""
    profile = AthleteProfile.draw(member.seed, fatiguing=member.fatiguing)
    athlete = SimulatedAthlete(
        run.plan, member.placement, seed=member.seed, closed_loop=True, profile=profile
    )
    settings = Settings(
        mqtt_url=run.broker_url, athlete_id=member.athlete_id, data_dir=run.data_dir
    )
    if not run.bluetooth:
        source = SimulatedSource(athlete, block_s=DIRECT_TICK_S * run.speed)
        engine = build_engine(source, run.plan)
        async with open_bus(
            settings, engine, device="firmware_sim", template=run.plan.name, announce=log.info
        ) as bus:
            await run_session(source, engine, [] if bus is None else [bus], speed=run.speed)
        return
    await _run_over_bluetooth(member, athlete, settings, run)


async def _run_over_bluetooth(
    member: Member, athlete: SimulatedAthlete, settings: Settings, run: Run
) -> None:
    # Imported here: a machine without dbus-daemon never needs them.
    from device.source import BleSource
    from firmware_sim.bluez.testing import emulated_bluez
    from firmware_sim.footpod import SimulatedFootpod
    from stridecue.ble import make_driver

    name = f"Stridecue {member.athlete_id}"
    pod = SimulatedFootpod(athlete, member.profile, name=name, speed=run.speed)
    source = BleSource(
        name,
        make_driver(member.profile),
        placement=member.placement,
        on_cue=pod.on_cue,
        # The footpod runs ``speed`` times faster than the wall clock: so does the host's.
        clock=lambda: run.speed * time.monotonic(),
    )
    async with emulated_bluez(pod.peripheral), asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(pod.serve(), name=f"footpod {member.athlete_id}")
        async with source:
            engine = build_engine(source, run.plan)
            async with open_bus(
                settings, engine, device=member.profile, template=run.plan.name, announce=log.info
            ) as bus:
                await run_session(source, engine, [] if bus is None else [bus])
        serving.cancel()


def _member_main(member: Member, run: Run) -> None:
    """A member's process: its session, then exit; Ctrl-C or SIGTERM unwind it cleanly (the
    private dbus-daemon is stopped, the outbox closed)."""
    logging.basicConfig(level=logging.WARNING, format=f"{member.athlete_id}: %(message)s")

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await run_member(member, run)

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())


@dataclass
class Team:
    """The members' processes. ``start()`` them, ``await wait()``, ``stop()`` on the way out."""

    members: Sequence[Member]
    run: Run
    processes: list[BaseProcess] = field(default_factory=list)

    def start(self) -> None:
        # spawn, not fork: the parent runs an event loop, a broker and a web server.
        context = multiprocessing.get_context("spawn")
        for member in self.members:
            process = context.Process(
                target=_member_main,
                args=(member, self.run),
                name=f"stridecue-athlete-{member.athlete_id}",
                daemon=True,
            )
            process.start()
            self.processes.append(process)

    async def wait(self) -> list[int | None]:
        """Wait for every member to finish; their exit codes."""
        await asyncio.gather(*(asyncio.to_thread(p.join) for p in self.processes))
        return [p.exitcode for p in self.processes]

    def stop(self, grace_s: float = 5.0) -> None:
        """Ask every member still running to stop (SIGTERM), then make sure it did."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
