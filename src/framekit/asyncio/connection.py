"""Framed stream connections: :class:`Connection` and :func:`connect`.

Design notes
------------
A :class:`Connection` is the application's side of a
:class:`~.protocol.FramedProtocol`: it sends through the transport and takes
frames out of the protocol's :class:`~.inbox.Inbox`.

Receiving.  ``recv()`` and ``async for`` pop the next decoded frame directly
from the inbox deque while ``inbox.fast`` holds (no error queued, reading not
paused): no future, no suspension, no helper coroutine.  Otherwise, while
frames are queued, :meth:`Inbox.pop` does the bookkeeping (queued errors, byte
counts, resuming reading) without a coroutine; only an empty queue awaits
:meth:`Inbox.get`.  ``async for`` runs an async generator rather
than a ``__anext__`` coroutine: resuming one generator frame per frame costs
about a quarter less than creating a coroutine per frame, and it keeps the
deque in a local.  The generator pops a frame only when asked for the next
one, so breaking out of the loop loses nothing.

Sending.  Small payloads are framed with ``codec.encode`` and written with one
``transport.write``.  Large ``bytes`` payloads go out with
``transport.writelines(codec.encode_parts(payload))``, which never copies the
payload on loops that write buffers as they are (uvloop, Python >= 3.12);
Python 3.11's selector loop joins them, as it would anyway.  Those loops keep a
reference to what they could not write at once, so only an immutable
``bytes`` payload goes out that way: a ``bytearray`` or ``memoryview`` the
caller refills after ``send()`` returns would change the frame on the wire.
Other buffers are copied by ``codec.encode`` (one copy, with the header).
(The blocking ``FramedSocket`` may send any buffer with ``sendmsg``: it returns
only once the kernel has copied every byte.)  ``send()`` then awaits only if
the transport paused writing (see :mod:`.flow`), so a fast sender to a slow
peer waits, and a sender that is not blocked never suspends.

Closing.  ``close()`` closes the transport (flushing what is buffered) and
waits for it to be gone, at most ``timeout`` seconds, after which it aborts: a
peer that stopped reading cannot hold ``close()`` forever.  A cancelled
``close()`` aborts at once, so cancelling it (as ``Server.close()`` cancels the
handlers' tasks) never leaves the transport open behind it.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Optional, Union

from .. import serializers
from .._sockets import connect_unix, host_port, tls_context
from ..addresses import AddressLike, parse_address
from ..codecs.interface import Codec
from ..core.options import check_serializer, make_codec
from ..errors import ConnectionClosed
from ..serializers import Serializer
from .inbox import DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_FRAMES, check_limits
from .protocol import FramedProtocol

if TYPE_CHECKING:
    from .datagram import DatagramEndpoint

__all__ = ["CLOSE_TIMEOUT", "Connection", "connect"]

#: ``bytes`` payloads at least this large are sent as ``[header, payload]`` without a copy.
VECTORED_SEND_MIN = 16 * 1024
#: Default bound, in seconds, on the graceful part of ``close()``.
CLOSE_TIMEOUT = 10.0


class Connection:
    """A framed connection over a stream transport (TCP, TLS, Unix).

    Made by :func:`connect` and by servers (see :func:`framekit.asyncio.serve`).

    Attributes:
        codec: the framing in use.
        transport: the asyncio transport.
        serializer: objects are sent and received through it, or None for bytes.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: FramedProtocol,
        *,
        serializer: Optional[Serializer] = None,
    ) -> None:
        self.transport = transport
        self.codec: Codec = protocol.codec
        self.serializer = check_serializer(serializer)
        self._protocol = protocol
        self._inbox = protocol.inbox
        self._flow = protocol.flow

    # -- sending --------------------------------------------------------------

    async def send(self, payload: Any, *, prefix: Optional[bytes] = None) -> None:
        """Send one frame; wait only if the peer is slow (flow control).

        The payload may be reused as soon as ``send()`` returns: only an
        immutable ``bytes`` payload of 16 KiB or more goes to the transport as
        it is (``writelines([header, payload])``, no copy; the transport may
        keep a reference until it is written); any other buffer (``bytearray``,
        ``memoryview``...) is copied by ``codec.encode`` first.

        Args:
            payload: bytes-like, or any object when the connection has a serializer.
            prefix: the bytes before the length field, for a codec with
                ``length_offset`` (the type byte of the Postgres, MQTT and gRPC
                presets); passed on as ``codec.encode(..., prefix=prefix)``.
                ``None`` calls the codec without it.

        Raises:
            ConnectionClosed: the connection was closed.
            ConnectionError: the connection was lost (reset, broken pipe).
            SerializationError: the serializer failed.
            ValueError: the codec cannot frame the payload (e.g. too large for
                its length field).
        """
        if self.serializer is not None:
            payload = serializers.dumps(self.serializer, payload)
        flow = self._flow
        flow.check()
        codec = self.codec
        if type(payload) is not bytes or len(payload) < VECTORED_SEND_MIN:
            if prefix is None:
                self.transport.write(codec.encode(payload))
            else:
                self.transport.write(codec.encode(payload, prefix=prefix))  # type: ignore[call-arg]
        elif prefix is None:
            self.transport.writelines(codec.encode_parts(payload))
        else:
            self.transport.writelines(codec.encode_parts(payload, prefix=prefix))  # type: ignore[call-arg]
        if flow.paused:
            await flow.wait()

    async def send_many(self, payloads: Iterable[Any], *, prefix: Optional[bytes] = None) -> None:
        """Send several frames with one write (``codec.encode_many``).

        ``prefix``, as for :meth:`send`, goes before the length of every frame.

        Raises:
            As :meth:`send`; nothing is sent if any payload cannot be framed.
        """
        if self.serializer is not None:
            serializer = self.serializer
            payloads = [serializers.dumps(serializer, p) for p in payloads]
        flow = self._flow
        flow.check()
        if prefix is None:
            data = self.codec.encode_many(payloads)
        else:
            data = self.codec.encode_many(payloads, prefix=prefix)  # type: ignore[call-arg]
        self.transport.write(data)
        if flow.paused:
            await flow.wait()

    def write_eof(self) -> None:
        """Half-close: tell the peer nothing more will be sent; keep receiving.

        Raises:
            NotImplementedError: the transport cannot half-close (TLS).
        """
        self.transport.write_eof()

    # -- receiving ------------------------------------------------------------

    async def recv(self) -> Any:
        """Return the next frame (an object with a serializer).

        Returns at once, without suspending, when a frame is already decoded.
        Cancelling a waiting ``recv()`` loses nothing: the next frame stays queued.

        Raises:
            ConnectionClosed: the peer closed the connection cleanly (or it
                was closed locally); raised again by every later call.
            IncompleteFrame: the stream ended inside a frame.
            FrameTooLarge: a frame above the codec's ``max_frame_size`` was
                skipped; the connection goes on.
            CorruptedFrame: the stream is corrupt; every later call raises it.
            ConnectionError: the connection was reset.
            SerializationError: the frame did not deserialize; the
                connection goes on with the next frame.
            RuntimeError: another coroutine is already waiting in ``recv()``.
        """
        inbox = self._inbox
        items = inbox.items
        if items and inbox.fast:
            frame = items.popleft()
        elif items:
            frame = inbox.pop()
        else:
            frame = await inbox.get()
        if self.serializer is None:
            return frame
        return serializers.loads(self.serializer, frame)

    def __aiter__(self) -> AsyncIterator[Any]:
        """Iterate over frames (as :meth:`recv` returns them) until a clean end.

        Breaking out of the loop loses nothing: the next ``recv()`` or loop
        continues with the next frame.
        """
        return self._frames()

    async def _frames(self) -> AsyncIterator[Any]:
        inbox = self._inbox
        items = inbox.items
        while True:
            if items and inbox.fast:
                frame = items.popleft()
            elif items:
                frame = inbox.pop()
            else:
                try:
                    frame = await inbox.get()
                except ConnectionClosed:
                    return
            if self.serializer is None:
                yield frame
            else:
                yield serializers.loads(self.serializer, frame)

    @property
    def queued_frames(self) -> int:
        """Decoded frames waiting for ``recv()`` (errors not counted)."""
        return len(self._inbox.items) - self._inbox.errors

    @property
    def queued_bytes(self) -> int:
        """Total size of the decoded frames waiting for ``recv()``."""
        return self._inbox.queued_bytes()

    # -- addresses ------------------------------------------------------------

    @property
    def local_address(self) -> Any:
        """The local socket address, as ``socket.getsockname()`` gives it."""
        return self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer's socket address, as ``socket.getpeername()`` gives it."""
        return self.transport.get_extra_info("peername")

    # -- closing --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection is closed or closing (locally or by loss)."""
        return self.transport.is_closing() or self._protocol.lost.done()

    async def close(self, timeout: Optional[float] = CLOSE_TIMEOUT) -> None:
        """Close the connection: flush buffered data, then wait until it is gone.

        Unread frames are dropped.  Safe to call more than once.  Cancelling
        it aborts the connection (drops unsent data) before the
        ``CancelledError`` propagates.

        Args:
            timeout: abort (drop unsent data) if the graceful close takes longer.
        """
        protocol = self._protocol
        protocol.close()
        if protocol.lost.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(protocol.lost), timeout)
        except asyncio.TimeoutError:
            protocol.close(abort=True)
            await protocol.lost
        except BaseException:
            # Cancelled (a server closing, a caller's timeout): the abort the
            # timeout would have done must still happen, or the transport stays
            # open as long as the peer does not read.
            protocol.close(abort=True)
            raise

    def abort(self) -> None:
        """Close at once, dropping unsent data."""
        self._protocol.close(abort=True)

    async def wait_closed(self) -> None:
        """Wait until the connection is gone (closed locally or by the peer)."""
        await asyncio.shield(self._protocol.lost)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<framekit.asyncio.Connection {state} peer={self.remote_address!r}>"


async def connect(
    address: AddressLike,
    codec: Optional[Codec] = None,
    *,
    ssl: Optional[_ssl.SSLContext] = None,
    serializer: Optional[Serializer] = None,
    server_hostname: Optional[str] = None,
    max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    max_datagram_size: Optional[int] = None,
) -> Union[Connection, DatagramEndpoint]:
    """Connect to a framed server.

    Args:
        address: ``tcp://host:port``, ``tls://host:port``, ``unix:///path``,
            ``unix:@name``, ``udp://host:port``, ``unixgram:///path``,
            ``unixgram:@name``, or a ``(host, port)`` tuple (TCP).
        codec: the framing; None means ``framekit.LengthPrefixed()``.
        ssl: the client ``ssl.SSLContext`` for ``tls://`` (default: a
            verifying ``ssl.create_default_context()``); given for ``tcp://``
            or ``unix://``, it turns TLS on.
        serializer: send and receive objects through it (e.g.
            ``framekit.serializers.JSON``) instead of bytes.
        server_hostname: the name to verify the certificate against; default:
            the address's host (required for TLS over a Unix socket).
        max_queued_frames: pause reading above this many unread frames.
        max_queued_bytes: pause reading above this many unread bytes.
        max_datagram_size: datagram addresses only (see
            :func:`framekit.asyncio.open_datagram`).

    Returns:
        A :class:`Connection` for stream addresses; a connected
        :class:`~framekit.asyncio.DatagramEndpoint` for ``udp``/``unixgram``.

    Raises:
        ValueError: a malformed address, or an option that does not fit it.
        TypeError: ``codec`` or ``serializer`` lacks the needed methods, or
            ``ssl`` is not an ``ssl.SSLContext``.
        OSError: the connection failed (refused, no such file, TLS failure...).
    """
    addr = parse_address(address)
    codec = make_codec(codec)
    check_serializer(serializer)
    check_limits(max_queued_frames, max_queued_bytes)
    context = tls_context(addr, ssl, server_side=False)
    if addr.is_datagram:
        from .datagram import open_datagram

        return await open_datagram(
            remote=addr,
            codec=codec,
            serializer=serializer,
            max_queued_frames=max_queued_frames,
            max_queued_bytes=max_queued_bytes,
            max_datagram_size=max_datagram_size,
        )
    if max_datagram_size is not None:
        raise ValueError(f"max_datagram_size is only for datagram addresses, not {addr.url()}")
    if context is not None and server_hostname is None:
        server_hostname = addr.host
    loop = asyncio.get_running_loop()

    def factory() -> FramedProtocol:
        return FramedProtocol(
            codec, max_queued_frames=max_queued_frames, max_queued_bytes=max_queued_bytes
        )

    if addr.is_unix:
        sock = await connect_unix(addr, loop)
        try:
            transport, protocol = await loop.create_unix_connection(
                factory, sock=sock, ssl=context, server_hostname=server_hostname
            )
        except BaseException:
            sock.close()
            raise
    else:
        transport, protocol = await loop.create_connection(
            factory, *host_port(addr), ssl=context, server_hostname=server_hostname
        )
    return Connection(transport, protocol, serializer=serializer)
