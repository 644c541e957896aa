"""Helpers for the anyio transport tests: echo handlers, raw peers, fd counting."""

from __future__ import annotations

import os
import socket
from typing import Any, List

import anyio
import anyio.abc

from framekit.addresses import parse_address

#: Bound on any single wait inside a test.
WAIT = 5.0


async def echo(conn: Any) -> None:
    """Stream handler: send every frame back until the client closes."""
    async for frame in conn:
        await conn.send(frame)


async def echo_datagrams(endpoint: Any) -> None:
    """Datagram handler: send every frame back to its sender."""
    while True:
        frame, address = await endpoint.recvfrom()
        await endpoint.sendto(frame, address)


async def raw_connect(address: str) -> anyio.abc.SocketStream:
    """A plain anyio byte stream to a framekit server: a peer that writes raw bytes."""
    addr = parse_address(address)
    if addr.is_unix:
        return await anyio.connect_unix(addr.sockaddr)
    assert addr.host is not None and addr.port is not None
    return await anyio.connect_tcp(addr.host, addr.port)


async def recv_all(conn: Any, n: int) -> List[Any]:
    """``n`` frames from ``conn``, each wait bounded."""
    out = []
    for _ in range(n):
        with anyio.fail_after(WAIT):
            out.append(await conn.recv())
    return out


async def wait_until(predicate: Any, what: str, *, tries: int = 500) -> None:
    """Poll ``predicate()`` every 10 ms, at most ``tries`` times."""
    for _ in range(tries):
        if predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def open_fds() -> int:
    """File descriptors open in this process now."""
    return len(os.listdir("/proc/self/fd"))


def reset(stream: anyio.abc.SocketStream) -> None:
    """Make the next close send an RST instead of a FIN (SO_LINGER 0)."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


__all__ = [
    "WAIT",
    "echo",
    "echo_datagrams",
    "open_fds",
    "raw_connect",
    "recv_all",
    "reset",
    "wait_until",
]
