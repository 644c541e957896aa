"""Framed datagram endpoints (UDP and Unix datagram sockets), on asyncio.

Design notes
------------
A :class:`DatagramEndpoint` moves datagrams between an asyncio datagram
transport and a :class:`~framekit.core.DatagramCore`, which does all the
framing (see its notes): each datagram parses whole with a fresh decoder, a
malformed or oversized one is refused as a whole (``recv()`` raises
``CorruptedFrame`` with ``.address`` set to the sender; the endpoint stays
usable), sends are checked against ``max_datagram_size``, and ``send_many``
packs frames into as few datagrams as it allows.  What is left here is
waiting and writing.

A datagram server does not let such an error (nor a ``SerializationError``
or a socket error that ``recvfrom()`` raised) escaping its handler close it:
it logs it and calls the handler again (see :mod:`.server`), telling it from
the handler's own failures by :attr:`DatagramEndpoint.last_receive_error`.

Truncation.  asyncio hands the protocol a datagram without ``recvmsg`` flags,
so ``MSG_TRUNC`` is invisible.  asyncio's loop receives into 256 KiB (more
than any UDP datagram); a longer Unix datagram arrives cut short, which the
decoder sees as a cut-off frame: a malformed datagram, as above.  framekit's
own transport (used for Unix datagrams on other loops, see :mod:`._unixgram`)
receives into ``max_datagram_size + 1`` bytes.  Either way a datagram longer
than ``max_datagram_size`` is refused with ``CorruptedFrame``.

Backpressure.  A datagram socket has no flow control to push back with; when
more frames or bytes wait unread than the bounds allow, the core drops new
datagrams (counted in :attr:`DatagramEndpoint.dropped`, logged once), as the
kernel drops them when its own buffer is full.

Closing.  ``close()`` flushes buffered datagrams and waits for the transport to
be gone, at most ``timeout`` seconds (``CLOSE_TIMEOUT``), then aborts: a Unix
datagram peer that does not read blocks the sender, and would hold ``close()``
forever.  A cancelled ``close()`` aborts at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable, Optional

from .._sockets import (
    DEFAULT_UNIX_MODE,
    UnixFile,
    bind_unix,
    connect_unix,
    host_port,
)
from ..addresses import AddressLike
from ..codecs.interface import Codec
from ..core.api import AsyncDatagramAPI
from ..core.datagram import DatagramCore
from ..core.options import (
    CLOSE_TIMEOUT,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_FRAMES,
    MAX_UDP_DATAGRAM,
    MAX_UNIX_DATAGRAM,
    check_max_datagram_size,
    check_queue_bounds,
    check_serializer,
    datagram_addresses,
    make_codec,
)
from ..errors import ConnectionClosed
from ..serializers import Serializer
from ._unixgram import create_socket_datagram_endpoint
from .flow import ReadWaiter, WriteFlow, wait_closed
from .protocol import TransportEnd

__all__ = [
    "DEFAULT_MAX_DATAGRAM_SIZE",
    "DEFAULT_MAX_UNIX_DATAGRAM_SIZE",
    "DatagramEndpoint",
    "DatagramProtocol",
    "open_datagram",
]

logger = logging.getLogger("framekit")

#: The default ``max_datagram_size`` for UDP (see :mod:`framekit.core.options`).
DEFAULT_MAX_DATAGRAM_SIZE = MAX_UDP_DATAGRAM
#: The default ``max_datagram_size`` for Unix datagrams.
DEFAULT_MAX_UNIX_DATAGRAM_SIZE = MAX_UNIX_DATAGRAM


class DatagramProtocol(asyncio.DatagramProtocol):
    """Feeds each datagram to the endpoint's core; used by :class:`DatagramEndpoint`.

    Args:
        codec: the framing.
        max_datagram_size: longer datagrams are refused.
        max_queued_frames: drop datagrams above this many unread frames.
        max_queued_bytes: drop datagrams above this many unread bytes.
        serializer: messages go through it.
        scheme: ``"udp"`` or ``"unixgram"``, to name senders in errors.

    Attributes:
        core: the :class:`~framekit.core.DatagramCore`.
        transport, waiter, flow, lost: as for :class:`~.protocol.FramedProtocol`.
    """

    def __init__(
        self,
        codec: Codec,
        max_datagram_size: int,
        *,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        serializer: Optional[Serializer] = None,
        scheme: str = "udp",
    ) -> None:
        self.core = DatagramCore(
            codec,
            serializer,
            max_datagram_size,
            scheme=scheme,
            max_queued_frames=max_queued_frames,
            max_queued_bytes=max_queued_bytes,
        )
        loop = asyncio.get_running_loop()
        self.waiter = ReadWaiter(loop)
        self.flow = WriteFlow(loop)
        self.transport: Optional[asyncio.DatagramTransport] = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.ended = False

    @property
    def codec(self) -> Codec:
        """The codec of every datagram."""
        return self.core.codec

    @property
    def max_datagram_size(self) -> int:
        """The largest datagram sent or accepted."""
        return self.core.max_datagram_size

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.ended:
            return
        core = self.core
        dropped = core.dropped
        core.receive_datagram(data, addr)
        if core.dropped and not dropped:
            logger.warning(
                "datagram endpoint: %d frames unread, dropping datagrams", core.queued_frames
            )
        self.waiter.wake()

    def error_received(self, exc: Exception) -> None:
        self.core.receive_error(exc)
        self.waiter.wake()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.ended = True
        self.waiter.wake()
        self.flow.fail(exc, "the datagram endpoint was closed")
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.flow.pause()

    def resume_writing(self) -> None:
        self.flow.resume()


class DatagramEndpoint(TransportEnd, AsyncDatagramAPI):
    """A framed datagram socket: ``send``/``sendto``, ``recv``/``recvfrom``.

    Made by :func:`open_datagram`, by :func:`framekit.asyncio.connect` for
    ``udp://``/``unixgram://``, and by datagram servers.

    Attributes:
        transport: the asyncio datagram transport.
        last_receive_error: the error the last :meth:`recvfrom` raised for a
            peer's datagram or a socket error (its ``.address`` says the
            sender when known), or None; a datagram server restarts its
            handler on it.
    """

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        protocol: DatagramProtocol,
        *,
        serializer: Optional[Serializer] = None,
        unix_file: Optional[UnixFile] = None,
    ) -> None:
        self.transport = transport
        self._protocol = protocol
        self._core = protocol.core
        self._core.serializer = check_serializer(serializer)
        self._unix_file = unix_file
        self.last_receive_error: Optional[BaseException] = None

    # -- sending and receiving (AsyncDatagramAPI) ------------------------------

    def _check_open(self) -> None:
        self._protocol.flow.check()

    async def _send_datagrams(self, datagrams: Iterable[bytes], sockaddr: Any) -> None:
        for datagram in datagrams:
            self.transport.sendto(datagram, sockaddr)
        flow = self._protocol.flow
        if flow.paused:
            await flow.wait()

    async def _wait_datagram(self) -> None:
        protocol = self._protocol
        if protocol.ended:
            raise ConnectionClosed("the datagram endpoint was closed")
        await protocol.waiter.wait()

    # -- closing --------------------------------------------------------------

    def abort(self) -> None:
        """Close at once, dropping unsent datagrams."""
        self._close(abort=True)

    def _close(self, *, abort: bool) -> None:
        protocol = self._protocol
        protocol.ended = True
        self._core.clear()
        protocol.waiter.wake()
        protocol.flow.fail(None, "the datagram endpoint was closed")
        if abort:
            self.transport.abort()
        else:
            self.transport.close()
        if self._unix_file is not None:
            self._unix_file.remove()
            self._unix_file = None

    async def close(self, timeout: Optional[float] = CLOSE_TIMEOUT) -> None:
        """Close the endpoint (after sending what is buffered) and wait until it is.

        A Unix socket file it bound is removed.  Safe to call more than once.
        Cancelling it aborts the endpoint (drops unsent datagrams).

        Args:
            timeout: abort (drop unsent datagrams) if sending what is buffered
                takes longer: a Unix datagram peer that does not read blocks
                the sender.
        """
        self._close(abort=False)
        await wait_closed(self._protocol.lost, timeout, self.transport.abort)

    async def wait_closed(self) -> None:
        """Wait until the endpoint is gone."""
        await asyncio.shield(self._protocol.lost)

    async def __aenter__(self) -> DatagramEndpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<framekit.asyncio.DatagramEndpoint {state} local={self.local_address!r}>"


async def open_datagram(
    local: Optional[AddressLike] = None,
    remote: Optional[AddressLike] = None,
    codec: Optional[Codec] = None,
    *,
    serializer: Optional[Serializer] = None,
    max_datagram_size: Optional[int] = None,
    max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    unix_mode: Optional[int] = DEFAULT_UNIX_MODE,
    reuse_port: bool = False,
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
        max_queued_frames: drop datagrams above this many unread frames.
        max_queued_bytes: drop datagrams above this many unread bytes.
        unix_mode: permissions of a bound socket file (None: leave the umask's).
        reuse_port: set ``SO_REUSEPORT`` on a bound UDP socket, so several
            processes can share the port.

    Raises:
        ValueError: neither address given, a non-datagram address, or two
            addresses of different kinds.
        OSError: binding or connecting failed (``EADDRINUSE`` for a Unix path
            a live endpoint owns).
    """
    loc, rem = datagram_addresses(local, remote)
    if reuse_port and (loc is None or loc.is_unix):
        raise ValueError("reuse_port is for a bound UDP endpoint")
    codec = make_codec(codec)
    check_serializer(serializer)
    check_queue_bounds(max_queued_frames, max_queued_bytes)
    first = loc if loc is not None else rem
    assert first is not None
    size = check_max_datagram_size(max_datagram_size)
    if size is None:
        size = DEFAULT_MAX_UNIX_DATAGRAM_SIZE if first.is_unix else DEFAULT_MAX_DATAGRAM_SIZE
    loop = asyncio.get_running_loop()
    scheme = first.scheme

    def factory() -> DatagramProtocol:
        return DatagramProtocol(
            codec,
            size,
            max_queued_frames=max_queued_frames,
            max_queued_bytes=max_queued_bytes,
            scheme=scheme,
        )

    unix_file: Optional[UnixFile] = None
    transport: asyncio.DatagramTransport
    if first.is_unix:
        if loc is not None:
            sock, unix_file = bind_unix(loc, unix_mode)
        else:
            assert rem is not None
            sock = await connect_unix(rem, loop)
        try:
            if loc is not None and rem is not None:
                sock.connect(rem.sockaddr)  # a datagram connect never blocks
            if isinstance(loop, asyncio.BaseEventLoop):
                transport, protocol = await loop.create_datagram_endpoint(factory, sock=sock)
            else:
                transport, protocol = await create_socket_datagram_endpoint(factory, sock, size + 1)
        except BaseException:
            sock.close()
            if unix_file is not None:
                unix_file.remove()
            raise
    else:
        transport, protocol = await loop.create_datagram_endpoint(
            factory,
            local_addr=None if loc is None else host_port(loc),
            reuse_port=reuse_port or None,
            remote_addr=None if rem is None else host_port(rem),
        )
    return DatagramEndpoint(transport, protocol, serializer=serializer, unix_file=unix_file)
