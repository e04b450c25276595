"""The live fan-out: every new message to every WebSocket client that follows its athlete.

Each message is serialised once, then offered to each client's bounded queue without waiting.
A client whose queue is full (a phone on a bad network, a stalled tab) is dropped and counted:
it reconnects and catches up from the API, while the others never wait for it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from bus.messages import Message
from bus.topics import Kind

_CLOSE = None  # the sentinel a dropped client's queue ends with


@dataclass(eq=False, slots=True)
class LiveClient:
    """One follower: an athlete's messages, or the whole team's (``athlete_id=None``)."""

    athlete_id: str | None
    queue: asyncio.Queue[str | None]
    dropped: bool = False

    async def next(self) -> str | None:
        """The next message as JSON text; ``None`` once the hub dropped this client."""
        return await self.queue.get()


class LiveHub:
    """Fans messages out to :class:`LiveClient` queues of ``queue_size`` messages each."""

    def __init__(self, queue_size: int = 256) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.queue_size = queue_size
        self.published = 0
        self.dropped_clients = 0
        self._clients: set[LiveClient] = set()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def connect(self, athlete_id: str | None = None) -> LiveClient:
        # One slot more than the limit, so that a full client still has room for the sentinel.
        client = LiveClient(athlete_id, asyncio.Queue(self.queue_size + 1))
        self._clients.add(client)
        return client

    def disconnect(self, client: LiveClient) -> None:
        self._clients.discard(client)

    def publish(self, athlete_id: str, kind: Kind, message: Message) -> None:
        """Offer one message to its followers; never blocks. Call from the event loop."""
        text = json.dumps(
            {
                "athlete_id": athlete_id,
                "kind": kind.value,
                "message": message.model_dump(mode="json"),
            },
            separators=(",", ":"),
        )
        self.published += 1
        for client in list(self._clients):
            if client.athlete_id is not None and client.athlete_id != athlete_id:
                continue
            if client.queue.qsize() >= self.queue_size:
                self._drop(client)
            else:
                client.queue.put_nowait(text)

    def _drop(self, client: LiveClient) -> None:
        self._clients.discard(client)
        client.dropped = True
        self.dropped_clients += 1
        client.queue.put_nowait(_CLOSE)
