"""The embedded broker: loopback only, retained messages and last wills work through it.

Where it listens is checked two ways: the listening socket's own address (psutil, this process),
and a connection attempt to each of the machine's non-loopback IPv4 addresses, which must fail.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import aiomqtt
import psutil

from bus.broker import EmbeddedBroker
from tests.brokers import listening


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_with_will(port: int, will_topic: str, will_payload: bytes) -> socket.socket:
    """A raw MQTT 3.1.1 CONNECT with a retained QoS 1 will: closing the socket is a crash."""
    flags = 0x02 | 0x04 | 0x08 | 0x20  # clean session, will, will QoS 1, will retain
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
    body += _string("dying-client") + _string(will_topic) + struct.pack("!H", len(will_payload))
    body += will_payload
    assert len(body) < 128  # one-byte remaining length
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(bytes([0x10, len(body)]) + body)
    assert sock.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
    return sock


def test_listens_on_loopback_only(embedded_broker: EmbeddedBroker) -> None:
    port = embedded_broker.port
    assert embedded_broker.url == f"mqtt://127.0.0.1:{port}"

    async def reachable() -> None:  # an MQTT round trip (amqtt leaks bare TCP probes' sockets)
        async with aiomqtt.Client("127.0.0.1", port, identifier="probe") as client:
            await client.publish("t/probe", b"1", qos=1)

    asyncio.run(reachable())
    ours = [
        c
        for c in psutil.Process().net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    assert ours, "no listening socket found on the broker's port"
    assert {c.laddr.ip for c in ours} == {"127.0.0.1"}
    others = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]
    for address in others:
        assert not listening(port, address), f"reachable on {address}"


def test_retained_message_and_last_will(embedded_broker: EmbeddedBroker) -> None:
    port = embedded_broker.port

    async def scenario() -> dict[str, tuple[bytes, bool]]:
        async with aiomqtt.Client("127.0.0.1", port, identifier="writer") as writer:
            await writer.publish("t/retained", b"kept", qos=1, retain=True)
        dying = connect_with_will(port, "t/status", b"offline")
        dying.close()  # no DISCONNECT: the broker must send the will
        seen: dict[str, tuple[bytes, bool]] = {}
        async with aiomqtt.Client("127.0.0.1", port, identifier="late") as late:
            await late.subscribe("t/#", qos=1)
            async with asyncio.timeout(5):
                async for m in late.messages:
                    assert isinstance(m.payload, bytes)
                    seen[str(m.topic)] = (m.payload, m.retain)
                    if len(seen) == 2:
                        break
        return seen

    seen = asyncio.run(scenario())
    assert seen == {"t/retained": (b"kept", True), "t/status": (b"offline", True)}
