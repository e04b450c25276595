"""An in-process MQTT broker (amqtt) for a laptop session without Mosquitto.

It listens on 127.0.0.1 only and lets anyone in: it is for this machine, never for a network
(use Mosquitto with ``deploy/`` for that). The ``$SYS`` statistics plugin and the packet and
event loggers are off, and amqtt's chatty loggers are held at WARNING.
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType

from amqtt.broker import Broker
from amqtt.errors import BrokerError

from bus.settings import BrokerConfig, BusError

HOST = "127.0.0.1"
_QUIET = ("amqtt", "transitions")
_PORT_ATTEMPTS = 3  # a free port can be taken between our probe and amqtt's bind


class EmbeddedBrokerError(BusError):
    """The embedded broker could not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedBroker:
    """``async with EmbeddedBroker() as broker``: an amqtt broker on ``broker.url``.

    ``port`` ``None`` picks a free one.
    """

    def __init__(self, port: int | None = None) -> None:
        self._requested_port = port
        self.port = port or 0
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    @property
    def config(self) -> BrokerConfig:
        """Where publishers and subscribers connect."""
        return BrokerConfig(HOST, self.port)

    def _amqtt_config(self) -> dict[str, object]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{self.port}"}},
            # Listing the plugins replaces amqtt's defaults: no $SYS tree, no packet logger.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

    async def __aenter__(self) -> EmbeddedBroker:
        for name in _QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        for attempt in range(attempts):
            self.port = self._requested_port or free_port()
            broker = Broker(self._amqtt_config())
            try:
                await broker.start()
            except BrokerError as exc:
                if attempt + 1 == attempts:
                    raise EmbeddedBrokerError(
                        f"the embedded MQTT broker cannot listen on {HOST}:{self.port}: {exc} "
                        "(is the port taken? choose another)"
                    ) from exc
                continue
            self._broker = broker
            break
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
