"""Framed datagram endpoints (UDP and Unix datagram sockets), on anyio.

Design notes
------------
A :class:`DatagramEndpoint` moves datagrams between a non-blocking socket and
a :class:`~framekit.core.DatagramCore`, which does all the framing (see its
notes): each datagram parses whole with a fresh decoder, a malformed or
oversized one is refused as a whole (``recv()`` raises ``CorruptedFrame``
with ``.address`` set to the sender; the endpoint stays usable), sends are
checked against ``max_datagram_size``, and ``send_many`` packs frames into as
few datagrams as it allows.

It drives the socket itself, with anyio's ``wait_readable``/``wait_writable``,
rather than through anyio's UDP socket classes: those receive into a fixed
64 KiB, so a longer Unix datagram would be cut without a sign.  Here each
read asks for ``max_datagram_size + 1`` bytes, and a datagram longer than
``max_datagram_size`` is refused (``CorruptedFrame``), never silently cut.
The sockets are made and bound by the shared socket rules
(:mod:`framekit._sockets`: Unix socket files, their mode, stale files,
autobound client names).

Reading happens only when ``recv()`` has nothing queued, so datagrams wait in
the kernel's buffer (which drops them when full, as a datagram socket does)
and memory stays bounded by one datagram's frames.  A read that finds a
datagram at once still passes a checkpoint, so a flood cannot starve the
other tasks; a datagram read is in the core before that checkpoint, so
cancelling ``recv()`` loses nothing.  A datagram is sent whole or not at all
by the kernel, so cancelling ``send()`` can cut no frame.

As on asyncio, an error the socket reports (``ConnectionRefusedError`` after
sending to a closed port) is queued and raised by ``recvfrom()`` in its
place; a datagram server logs such a peer's error and calls its handler again
(see :mod:`.server`), telling it from the handler's own failures by
:attr:`DatagramEndpoint.last_receive_error`.
"""

from __future__ import annotations

import socket
from typing import Any, Iterable, Optional, Tuple

import anyio
import anyio.lowlevel

from .._sockets import DEFAULT_UNIX_MODE, UnixFile, bind_socket, connect_socket
from ..addresses import Address, AddressLike
from ..codecs.interface import Codec
from ..core.api import AsyncDatagramAPI
from ..core.datagram import DatagramCore
from ..core.options import (
    check_max_datagram_size,
    check_serializer,
    datagram_addresses,
    default_datagram_size,
    make_codec,
)
from ..errors import ConnectionClosed
from ..serializers import Serializer

__all__ = ["DatagramEndpoint", "open_datagram"]


class DatagramEndpoint(AsyncDatagramAPI):
    """A framed datagram socket: ``send``/``sendto``, ``recv``/``recvfrom``.

    Made by :func:`open_datagram`, by :func:`framekit.anyio.connect` for
    ``udp://``/``unixgram://``, and by datagram servers.

    Args:
        sock: a datagram socket, bound or connected; the endpoint owns it.
        codec: the framing of every datagram; None means ``LengthPrefixed()``.
        serializer: send and receive objects through it instead of bytes.
        max_datagram_size: the largest datagram sent or accepted (None: the
            family's default).
        unix_file: the socket file to remove at close.

    Attributes:
        socket: the socket.
        last_receive_error: the error the last :meth:`recvfrom` raised for a
            peer's datagram or a socket error, or None.
    """

    def __init__(
        self,
        sock: socket.socket,
        codec: Optional[Codec] = None,
        *,
        serializer: Optional[Serializer] = None,
        max_datagram_size: Optional[int] = None,
        unix_file: Optional[UnixFile] = None,
    ) -> None:
        size = check_max_datagram_size(max_datagram_size)
        self._core = DatagramCore(
            make_codec(codec),
            check_serializer(serializer),
            default_datagram_size(sock.family) if size is None else size,
            scheme="unixgram" if sock.family == getattr(socket, "AF_UNIX", None) else "udp",
        )
        sock.setblocking(False)
        self.socket = sock
        self._unix_file = unix_file
        self._closed = False
        self.last_receive_error: Optional[BaseException] = None
        try:
            self._remote: Any = sock.getpeername()
        except OSError:
            self._remote = None

    # -- sending and receiving (AsyncDatagramAPI) ------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed("the datagram endpoint was closed")

    async def _send_datagrams(self, datagrams: Iterable[bytes], sockaddr: Any) -> None:
        sock = self.socket
        sent = False
        for datagram in datagrams:
            while True:
                try:
                    if sockaddr is None:
                        sock.send(datagram)
                    else:
                        sock.sendto(datagram, sockaddr)
                except (BlockingIOError, InterruptedError):
                    sent = True
                    try:
                        await anyio.wait_writable(sock)
                    except anyio.ClosedResourceError:
                        pass
                    self._check_open()
                    continue
                except OSError as exc:
                    # As asyncio's datagram transports do: an error the socket
                    # reports (a refused port) is the next receive's error.
                    self._core.receive_error(exc)
                break
        if not sent:
            await anyio.lowlevel.checkpoint()

    async def _wait_datagram(self) -> None:
        self._check_open()
        await self._read()

    async def _read(self) -> None:
        """Receive one datagram (or the socket's error) into the core."""
        sock = self.socket
        try:
            data, address = sock.recvfrom(self._core.max_datagram_size + 1)
        except (BlockingIOError, InterruptedError):
            try:
                await anyio.wait_readable(sock)
            except anyio.ClosedResourceError:
                pass  # closed by another task: recvfrom() says so
            return
        except OSError as exc:
            if self._closed:
                return
            self._core.receive_error(exc)
        else:
            self._core.receive_datagram(data, address)
        await anyio.lowlevel.checkpoint()

    # -- addresses ------------------------------------------------------------

    @property
    def local_address(self) -> Any:
        """The bound socket address (``getsockname()``)."""
        return None if self._closed else self.socket.getsockname()

    @property
    def remote_address(self) -> Any:
        """The connected peer's address, or None."""
        return self._remote

    # -- closing --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the endpoint is closed."""
        return self._closed

    def abort(self) -> None:
        """Close at once (datagrams are never held back: the same as :meth:`aclose`)."""
        if self._closed:
            return
        self._closed = True
        self._core.clear()
        try:
            anyio.notify_closing(self.socket)  # wake a task waiting on the socket
        except RuntimeError:
            pass  # no event loop here
        self.socket.close()
        if self._unix_file is not None:
            self._unix_file.remove()
            self._unix_file = None

    async def aclose(self) -> None:
        """Close the endpoint; a Unix socket file it bound is removed.  Safe to call
        more than once."""
        self.abort()
        await anyio.lowlevel.checkpoint_if_cancelled()

    close = aclose

    async def __aenter__(self) -> DatagramEndpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<framekit.anyio.DatagramEndpoint {state} remote={self._remote!r}>"


def _open_socket(
    loc: Optional[Address], rem: Optional[Address], unix_mode: Optional[int]
) -> Tuple[socket.socket, Optional[UnixFile]]:
    """Bind and/or connect a datagram socket (blocking: name lookups; run in a thread)."""
    if loc is None:
        assert rem is not None
        return connect_socket(rem, None), None
    sock, unix_file = bind_socket(loc, unix_mode=unix_mode)
    if rem is not None:
        try:
            sock.connect(rem.sockaddr)
        except BaseException:
            sock.close()
            if unix_file is not None:
                unix_file.remove()
            raise
    return sock, unix_file


async def open_datagram(
    local: Optional[AddressLike] = None,
    remote: Optional[AddressLike] = None,
    codec: Optional[Codec] = None,
    *,
    serializer: Optional[Serializer] = None,
    max_datagram_size: Optional[int] = None,
    unix_mode: Optional[int] = DEFAULT_UNIX_MODE,
) -> DatagramEndpoint:
    """Open a framed datagram endpoint bound to ``local``, connected to ``remote``, or both.

    Args:
        local: ``udp://host:port`` (port 0: any free port),
            ``unixgram:///path`` or ``unixgram:@name`` to bind to.
        remote: the peer to connect to, for :meth:`DatagramEndpoint.send`.
            A Unix endpoint with no ``local`` is bound to an automatic
            abstract name (Linux), so the peer can reply.
        codec: the framing; None means ``framekit.LengthPrefixed()``.
        serializer: send and receive objects through it instead of bytes.
        max_datagram_size: the largest datagram sent or accepted; default
            65507 for UDP, 65536 for Unix datagrams.
        unix_mode: permissions of a bound socket file (None: leave the umask's).

    Raises:
        ValueError: neither address given, a non-datagram address, or two
            addresses of different kinds.
        OSError: binding or connecting failed (``EADDRINUSE`` for a Unix path
            a live endpoint owns).
    """
    loc, rem = datagram_addresses(local, remote)
    codec = make_codec(codec)
    check_serializer(serializer)
    check_max_datagram_size(max_datagram_size)
    sock, unix_file = await anyio.to_thread.run_sync(_open_socket, loc, rem, unix_mode)
    return DatagramEndpoint(
        sock,
        codec,
        serializer=serializer,
        max_datagram_size=max_datagram_size,
        unix_file=unix_file,
    )
