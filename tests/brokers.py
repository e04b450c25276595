"""Brokers for every test: Mosquitto processes of our own, the system one, the embedded one.

A plugin of the root ``conftest.py``, so its fixtures reach every test folder.

``mosquitto_process(extra)`` starts a Mosquitto on a free 127.0.0.1 port with ``extra`` config
lines (persistence files in the test's tmp folder) and hands back a handle that can stop, kill
and restart it on the same port. Tests needing it skip when the ``mosquitto`` binary is absent.
``embedded_broker`` runs our amqtt broker in a thread of its own, so that a test can drive its
clients with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bus.broker import EmbeddedBroker, free_port
from bus.settings import BrokerConfig

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
    None,
)
START_TIMEOUT_S = 5.0


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


class Mosquitto:
    """One Mosquitto process of a test, on a fixed port across restarts."""

    def __init__(self, directory: Path, extra: str) -> None:
        assert MOSQUITTO is not None
        self.binary = MOSQUITTO
        self.port = free_port()
        self.directory = directory
        self.config_path = directory / "mosquitto.conf"
        # Started as root, Mosquitto would switch to the "mosquitto" user, who cannot read the
        # test's tmp folder; naming ourselves keeps the current user (ignored when not root).
        user = pwd.getpwuid(os.getuid()).pw_name
        anonymous = "" if "allow_anonymous" in extra else "allow_anonymous true\n"
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\n{anonymous}user {user}\n"
            f"persistence_location {directory}/\nlog_dest stderr\n{extra}\n"
        )
        self.log_path = directory / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def broker(self) -> BrokerConfig:
        return BrokerConfig("127.0.0.1", self.port)

    def start(self) -> None:
        assert self.process is None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                self.process = None
                pytest.fail(f"mosquitto did not start:\n{self.log_path.read_text()}")
            time.sleep(0.01)  # polling for the port, with a deadline

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM: a clean shutdown (Mosquitto saves its persistence file); SIGKILL: a crash."""
        if self.process is None:
            return
        self.process.send_signal(sig)
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def mosquitto_process(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """A factory: ``mosquitto_process(extra="", start=True)`` gives a :class:`Mosquitto`."""
    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is not installed")
    started: list[Mosquitto] = []

    def make(extra: str = "", *, start: bool = True) -> Mosquitto:
        directory = tmp_path / f"mosquitto{len(started)}"
        directory.mkdir()
        broker = Mosquitto(directory, extra)
        started.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def system_mosquitto() -> BrokerConfig:
    """The machine's Mosquitto on 127.0.0.1:1883 (skipped when none listens)."""
    if not listening(1883):
        pytest.skip("no MQTT broker on 127.0.0.1:1883")
    return BrokerConfig("127.0.0.1", 1883)


@pytest.fixture
def embedded_broker() -> Iterator[EmbeddedBroker]:
    """Our amqtt broker, running on its own event loop in a thread for the test's duration."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="embedded-broker", daemon=True)
    thread.start()
    broker = EmbeddedBroker()
    asyncio.run_coroutine_threadsafe(broker.__aenter__(), loop).result(timeout=10)
    try:
        yield broker
    finally:
        asyncio.run_coroutine_threadsafe(broker.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        # amqtt never closes its side of a connection whose client vanished (the crash the will
        # tests make on purpose): collect those sockets now, knowingly, rather than let the
        # garbage collector report them in whatever test happens to run next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
