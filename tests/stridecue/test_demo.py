"""`stridecue demo`, the README's main command: the whole chain, then a clean Ctrl-C.

The command runs as the user runs it (a process of its own), with a short plan: a simulated team
through bleak on emulated BlueZ (or fed directly), the embedded broker and the companion. What
the companion stored is checked against the plan over its API, then SIGINT must stop every part:
exit code 0, no traceback, no athlete process or private dbus-daemon left behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from bus.broker import free_port
from stridecue.team import bluetooth_available

TOKEN = "demo-token-0123456789"
REPS = 2
PLAN = ["--warmup-s", "30", "--reps", str(REPS), "--rep-s", "15", "--recovery-s", "20"]
PLAN += ["--cooldown-s", "10"]
ATHLETES = ("anna", "ben")
DEADLINE_S = 90.0


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited process its new parent has not reaped yet)."""
    try:
        stat = (Path(f"/proc/{pid}") / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _survivors(pids: set[int], within_s: float = 10.0) -> set[str]:
    """The command lines of ``pids`` still running ``within_s`` after the demo exited.

    Not their parent's to wait for: multiprocessing's resource tracker, say, exits when it sees
    its pipe close, a moment after the demo. Nothing signals that to us, so poll.
    """
    deadline = time.monotonic() + within_s
    while (alive := {pid for pid in pids if _running(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {_command(pid) for pid in alive}


def _command(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid} (gone)"


async def _demo(
    tmp_path: Path, *flags: str, until: str = "the sessions are over"
) -> tuple[str, dict[str, list[dict]], set[int]]:
    """Run the demo until it says ``until``, read what the companion stored, then Ctrl-C it."""
    env = os.environ | {"STRIDECUE_DATA_DIR": str(tmp_path / "data")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stridecue",
        "demo",
        "--athletes",
        str(len(ATHLETES)),
        "--speed",
        "10",
        "--port",
        str(free_port()),
        "--token",
        TOKEN,
        *PLAN,
        *flags,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, as in a terminal
    )
    assert process.stderr is not None
    said: list[str] = []
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not any(until in line for line in said):
                line = await process.stderr.readline()
                assert line, "the demo ended early:\n" + "".join(said)
                said.append(line.decode())
        url = next(re.search(r"coach view: (\S+)/#token=", s) for s in said if "coach view" in s)
        assert url is not None
        base = url.group(1)
        stored: dict[str, list[dict]] = {}
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            for athlete in ATHLETES:
                sessions = (await client.get(f"/api/athletes/{athlete}/sessions")).json()
                if not sessions:
                    continue
                session = sessions[0]["id"]
                stored[athlete] = (await client.get(f"/api/sessions/{session}/cues")).json()
                stored[f"{athlete} reps"] = (
                    await client.get(f"/api/sessions/{session}/reps")
                ).json()
        descendants = _children(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        async with asyncio.timeout(30):
            rest = (await process.stderr.read()).decode()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    said.append(rest)
    text = "".join(said)
    assert code == 0, text
    assert "stopped" in rest
    assert "Traceback" not in text
    return text, stored, descendants


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param((), marks=pytest.mark.ble, id="bluetooth"),
        pytest.param(("--direct",), id="direct"),
    ],
)
def test_demo_runs_the_whole_chain_and_stops_cleanly(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    if not flags and not bluetooth_available():
        pytest.skip("no dbus-daemon for the emulated BlueZ")
    text, stored, descendants = asyncio.run(_demo(tmp_path, *flags))
    assert ("through bleak on an emulated BlueZ" in text) == (not flags)
    assert f"coach token: {TOKEN}" in text
    assert sorted(a for a in stored if " " not in a) == sorted(ATHLETES)
    for athlete in ATHLETES:
        kinds = [c["kind"] for c in stored[athlete]]
        # The plan, cued in full and in order, for every athlete (closed loop: each runner
        # answered the engine's cues, so each rep was found).
        one = ["get_ready", "countdown", "countdown", "countdown", "go", "rep_start", "ease"]
        assert kinds == [*one, "rep_end"] * REPS + ["set_done", "session_done"], athlete
        assert [c["seq"] for c in stored[athlete]] == list(range(1, len(kinds) + 1))
        reps = stored[f"{athlete} reps"]
        assert [r["rep"] for r in reps] == list(range(1, REPS + 1))
        assert f"{athlete:>10} · Workout complete" in text
    alive = _survivors(descendants)
    assert not alive, f"processes left behind after Ctrl-C: {alive}"
    assert descendants, "the athletes ran in processes of their own"


@pytest.mark.ble
def test_ctrl_c_in_the_middle_of_the_sessions_stops_everything_cleanly(tmp_path: Path) -> None:
    if not bluetooth_available():
        pytest.skip("no dbus-daemon for the emulated BlueZ")
    # Interrupted at the first "Go!": the footpods are streaming, the links are up.
    _, stored, descendants = asyncio.run(_demo(tmp_path, until="· Go! Rep 1 of"))
    assert any(c["kind"] == "go" for a in ATHLETES for c in stored.get(a, []))
    assert not any(c["kind"] == "session_done" for a in ATHLETES for c in stored.get(a, []))
    assert not _survivors(descendants), "processes left behind after Ctrl-C"
