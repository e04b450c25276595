"""A private ``dbus-daemon`` that plays the system bus for the emulated BlueZ.

The machine's real system bus refuses to let an ordinary user own ``org.bluez`` and must never be
touched by tests, so the emulator runs its own daemon with a permissive policy, listening on a
socket in a temporary folder. Clients reach it by setting ``DBUS_SYSTEM_BUS_ADDRESS`` to
:attr:`PrivateBus.address` (bleak reads that variable each time it opens a bus connection).
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


class BusError(RuntimeError):
    """The private ``dbus-daemon`` could not be started."""


class PrivateBus:
    """A ``dbus-daemon`` child process with a permissive policy on a private socket.

    Start and stop it explicitly or use it as a context manager. It is synchronous on purpose:
    starting takes a few milliseconds and it can then be used from sync and async code alike.

    Parameters
    ----------
    daemon
        The ``dbus-daemon`` executable; found on ``PATH`` (and ``/usr/bin``) when omitted.
    start_timeout_s
        How long to wait for the daemon to print its address.
    """

    def __init__(self, daemon: str | None = None, *, start_timeout_s: float = 5.0) -> None:
        self._daemon = daemon
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._address: str | None = None

    @property
    def address(self) -> str:
        """The D-Bus address to put in ``DBUS_SYSTEM_BUS_ADDRESS``."""
        if self._address is None:
            raise BusError("the private bus is not running: call start() first")
        return self._address

    @property
    def pid(self) -> int | None:
        """The daemon's process id while it runs, else ``None``."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> str:
        """Start the daemon and return its address."""
        if self._proc is not None:
            raise BusError("the private bus is already running")
        exe = (
            self._daemon
            or shutil.which("dbus-daemon")
            or shutil.which("dbus-daemon", path="/usr/bin")
        )
        if exe is None:
            raise BusError("dbus-daemon not found: install the Debian/Ubuntu package 'dbus-daemon'")
        self._dir = Path(tempfile.mkdtemp(prefix="stridecue-dbus-"))
        config = self._dir / "bus.conf"
        config.write_text(_CONFIG.format(socket=self._dir / "system_bus_socket"))
        # stderr goes to a file: an unread pipe could fill up and stall the daemon.
        with (self._dir / "daemon.log").open("wb") as log:
            self._proc = subprocess.Popen(
                [exe, "--nofork", "--nopidfile", "--print-address=1", f"--config-file={config}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                # Out of the terminal's process group: Ctrl-C reaches its owner, which stops the
                # bus after its clients, not the daemon under them mid-session.
                start_new_session=True,
            )
        try:
            self._address = self._read_address()
        except BaseException:
            self.stop()
            raise
        return self._address

    def _read_address(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self._start_timeout_s
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    raise BusError(
                        f"dbus-daemon printed no address within {self._start_timeout_s} s"
                    )
                chunk = os.read(self._proc.stdout.fileno(), 4096)
                if not chunk:
                    assert self._dir is not None
                    err = (self._dir / "daemon.log").read_text(errors="replace").strip()
                    raise BusError(f"dbus-daemon exited before it was ready: {err}")
                line += chunk
        return line.decode().strip()

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL after 5 s) and remove its folder."""
        proc, self._proc, self._address = self._proc, None, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> PrivateBus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
