"""Helpers for the asyncio transport tests: raw peers, a second codec, echo handlers."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, List, Optional, Tuple

import framekit
from framekit.addresses import parse_address
from framekit.codecs.interface import Buffer, CodecBase, Decoder, DecoderBase

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


async def raw_connect(
    address: str, client_ssl: Optional[ssl.SSLContext] = None
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a plain asyncio stream to a framekit server: a peer that writes raw bytes."""
    addr = parse_address(address)
    if addr.is_unix:  # through a socket: uvloop cannot take an abstract path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, addr.path)
        return await asyncio.open_unix_connection(sock=sock)
    context = client_ssl if addr.is_tls else None
    return await asyncio.open_connection(addr.host, addr.port, ssl=context)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), WAIT)
    except (ConnectionError, ssl.SSLError):
        pass


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def recv_all(conn: Any, n: int) -> List[Any]:
    """``n`` frames from ``conn``, each wait bounded."""
    return [await asyncio.wait_for(conn.recv(), WAIT) for _ in range(n)]


async def wait_until(predicate: Any, what: str, *, tries: int = 500) -> None:
    """Poll ``predicate()`` every 10 ms, at most ``tries`` times."""
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


class Lines(CodecBase):
    """Newline-terminated frames: a codec written only against framekit.codecs.interface."""

    def decoder(self) -> Decoder:
        return LinesDecoder()

    def encode(self, payload: Buffer) -> bytes:
        data = bytes(payload)
        if b"\n" in data:
            raise ValueError("a line cannot contain a newline")
        return data + b"\n"


class LinesDecoder(DecoderBase):
    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: Buffer) -> List[bytes]:
        self._buf += data
        *lines, rest = self._buf.split(b"\n")
        self._buf = bytearray(rest)
        return [bytes(line) for line in lines]

    def eof(self) -> None:
        if self._buf:
            raise framekit.IncompleteFrame(
                f"{len(self._buf)} bytes after the last newline", pending=len(self._buf)
            )


__all__ = [
    "WAIT",
    "Lines",
    "close_writer",
    "echo",
    "echo_datagrams",
    "raw_connect",
    "recv_all",
    "reset",
    "wait_until",
]
