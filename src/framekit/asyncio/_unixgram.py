"""A minimal datagram transport over a non-blocking socket, for AF_UNIX on other loops.

Design notes
------------
asyncio's own loop gets Unix datagram sockets right, and framekit uses
``loop.create_datagram_endpoint(sock=...)`` there.  uvloop (seen with 0.23)
does not: it converts ``AF_UNIX`` addresses with the full
``sizeof(sockaddr_un)`` length, so a sender's abstract address comes back padded
with NUL bytes and ``sendto()`` an abstract address fails with
``ECONNREFUSED``.  A server could then never reply to a client bound to an
abstract (or auto-bound) name.  Rather than a uvloop-only skip, loops other than
asyncio's own get this small transport, built on ``add_reader``/``add_writer``,
which every loop provides and which passes addresses to the kernel untouched.

It follows asyncio's datagram transport: one ``recvfrom`` per readiness
callback, ``sendto`` straight to the socket while nothing is buffered, a buffer
(and ``add_writer``) when the kernel says EAGAIN, ``pause_writing()`` /
``resume_writing()`` on the protocol around high/low water marks, errors of a
single datagram to ``error_received()``, and ``connection_lost()`` once, after
the buffer is flushed.  It receives into ``recv_size`` bytes (one more than the
largest accepted datagram), so an oversized datagram shows up as too long
rather than silently cut.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any, Callable, Deque, Optional, Tuple, TypeVar

__all__ = ["SocketDatagramTransport", "create_socket_datagram_endpoint"]

_P = TypeVar("_P", bound=asyncio.DatagramProtocol)

_HIGH_WATER = 64 * 1024


class SocketDatagramTransport(asyncio.DatagramTransport):
    """Datagram transport over ``sock`` using the loop's reader/writer callbacks."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
        recv_size: int,
    ) -> None:
        try:
            peer: Any = sock.getpeername()
        except OSError:
            peer = None
        super().__init__({"socket": sock, "sockname": sock.getsockname(), "peername": peer})
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._recv_size = recv_size
        self._buffer: Deque[Tuple[bytes, Any]] = deque()
        self._buffer_size = 0
        self._high = _HIGH_WATER
        self._low = _HIGH_WATER // 4
        self._protocol_paused = False
        self._closing = False
        self._lost = False

    def _start(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._protocol.connection_made(self)
            self._loop.add_reader(self._fd, self._read_ready)
        except BaseException as exc:
            waiter.set_exception(exc)
            self.abort()
        else:
            waiter.set_result(None)

    # -- reading --------------------------------------------------------------

    def _read_ready(self) -> None:
        if self._closing:
            return
        try:
            data, addr = self._sock.recvfrom(self._recv_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
        else:
            self._protocol.datagram_received(data, addr)

    # -- writing --------------------------------------------------------------

    def _send(self, data: Any, addr: Any) -> None:
        if addr is None:
            self._sock.send(data)
        else:
            self._sock.sendto(data, addr)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        if not self._buffer:
            try:
                self._send(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._fd, self._write_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data)
        if not self._protocol_paused and self._buffer_size > self._high:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def _write_ready(self) -> None:
        buffer = self._buffer
        while buffer:
            data, addr = buffer[0]
            try:
                self._send(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)  # that datagram is dropped
            buffer.popleft()
            self._buffer_size -= len(data)
        self._loop.remove_writer(self._fd)
        if self._protocol_paused and self._buffer_size <= self._low:
            self._protocol_paused = False
            self._protocol.resume_writing()
        if self._closing:
            self._connection_lost()

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(
        self, high: Optional[int] = None, low: Optional[int] = None
    ) -> None:
        self._high = _HIGH_WATER if high is None else high
        self._low = self._high // 4 if low is None else low
        if not 0 <= self._low <= self._high:
            raise ValueError(f"high ({self._high!r}) must be >= low ({self._low!r}) >= 0")

    # -- closing --------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self._buffer.clear()
        self._buffer_size = 0
        self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._loop.call_soon(self._connection_lost)

    def _connection_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        try:
            self._protocol.connection_lost(None)
        finally:
            self._sock.close()


async def create_socket_datagram_endpoint(
    protocol_factory: Callable[[], _P], sock: socket.socket, recv_size: int
) -> Tuple[SocketDatagramTransport, _P]:
    """Like ``loop.create_datagram_endpoint(factory, sock=sock)``, with this transport.

    Args:
        protocol_factory: makes the protocol.
        sock: a bound and/or connected, non-blocking datagram socket; the
            transport owns it from now on.
        recv_size: bytes to receive each datagram into.

    Returns:
        ``(transport, protocol)`` once ``connection_made`` has run.
    """
    loop = asyncio.get_running_loop()
    protocol = protocol_factory()
    transport = SocketDatagramTransport(loop, sock, protocol, recv_size)
    waiter: asyncio.Future[None] = loop.create_future()
    loop.call_soon(transport._start, waiter)
    await waiter
    return transport, protocol
