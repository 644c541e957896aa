"""The stream protocol: bytes from the kernel straight into the connection core.

Design notes
------------
:class:`FramedProtocol` is an ``asyncio.BufferedProtocol`` that drives a
:class:`~framekit.core.StreamCore`: its ``get_buffer(sizehint)`` is the
core's (the decoder's own buffer, so the transport's ``recv_into`` writes
where the frames are cut, with no intermediate ``bytes`` object), its
``buffer_updated``, ``eof_received`` and ``connection_lost`` tell the core
what happened and wake the one coroutine waiting in ``recv()``.  All framing
rules (the order of frames and errors, draining after an error, a decoder
that refuses input, end of stream) are the core's.

``eof_received`` returns True for plain streams so the write side stays open
(half-close: a peer may ``write_eof()`` and still read the reply); TLS cannot
half-close, so it returns False there.

Backpressure.  When more messages or bytes wait unread than the bounds allow
(:attr:`StreamCore.over_limit`), ``transport.pause_reading()`` stops reading;
the kernel buffers fill and TCP flow control slows the sender.  The
connection resumes reading once at most half of each bound is in use, and
always before it waits for input.  Memory is bounded by the limits plus one
read.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional, cast

from ..codecs.interface import Codec
from ..core.options import (
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_FRAMES,
    check_max_stream_size,
    check_queue_bounds,
    check_serializer,
    check_timeout,
    make_codec,
)
from ..core.stream import StreamCore
from ..serializers import Serializer
from .flow import ReadWaiter, WriteFlow

__all__ = ["FramedProtocol", "TransportEnd"]


class TransportEnd:
    """What a connection or endpoint says about its transport: its addresses,
    and whether it is closed (a mixin: ``self.transport``, ``self._protocol``
    with a ``lost`` future)."""

    transport: Any
    _protocol: Any

    @property
    def local_address(self) -> Any:
        """The local socket address, as ``socket.getsockname()`` gives it."""
        return self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer's socket address, as ``socket.getpeername()`` gives it (None
        for a datagram endpoint that is not connected)."""
        return self.transport.get_extra_info("peername")

    @property
    def closed(self) -> bool:
        """Whether it is closed or closing (locally or by loss)."""
        return bool(self.transport.is_closing() or self._protocol.lost.done())


class FramedProtocol(asyncio.BufferedProtocol):
    """Feeds a stream's bytes to its connection core; used by :class:`~framekit.asyncio.Connection`.

    Args:
        codec: the framing (any :class:`framekit.Codec`).
        max_queued_frames: pause reading above this many unread messages.
        max_queued_bytes: pause reading above this many unread bytes.
        on_connection_made: called with the protocol once the transport is
            ready (after the TLS handshake); servers start handlers from it.
        serializer: messages go through it (see :class:`~framekit.core.StreamCore`).
        idle_timeout: seconds without input before ``recv()`` times out.
        frame_timeout: seconds a begun frame may take to complete.
        max_stream_size: frames up to this size can be read as streams.
        peer: who is at the other end (an address URL), for error messages.

    Attributes:
        core: the :class:`~framekit.core.StreamCore`.
        transport: the transport, once connected.
        waiter: wakes the coroutine waiting for input.
        flow: the write side's pause state.
        lost: completed by ``connection_lost``.
        paused: reading is paused for backpressure.

    Raises:
        TypeError, ValueError: a bound is not a positive int.
    """

    def __init__(
        self,
        codec: Codec,
        *,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        on_connection_made: Optional[Callable[[FramedProtocol], None]] = None,
        serializer: Optional[Serializer] = None,
        idle_timeout: Optional[float] = None,
        frame_timeout: Optional[float] = None,
        max_stream_size: Optional[int] = None,
        peer: str = "",
    ) -> None:
        check_queue_bounds(max_queued_frames, max_queued_bytes)
        loop = asyncio.get_running_loop()
        self.core = StreamCore(
            make_codec(codec),
            check_serializer(serializer),
            max_queued_frames=max_queued_frames,
            max_queued_bytes=max_queued_bytes,
            idle_timeout=check_timeout("idle_timeout", idle_timeout),
            frame_timeout=check_timeout("frame_timeout", frame_timeout),
            clock=loop.time,
        )
        self.core.set_stream_limit(check_max_stream_size(max_stream_size))
        self.core.peer = peer
        # The event loop calls get_buffer once per read: hand it the core's own
        # (one Python call less per read than the method below).
        self.get_buffer = self.core.get_buffer  # type: ignore[method-assign]
        #: The event loop it runs on.
        self.loop = loop
        self.waiter = ReadWaiter(loop)
        self.flow = WriteFlow(loop)
        self.transport: Optional[asyncio.Transport] = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.paused = False
        self._on_connection_made = on_connection_made
        self._tls = False
        self._closing = False  # closed locally

    @property
    def codec(self) -> Codec:
        """The codec in use."""
        return self.core.codec

    # -- asyncio callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._tls = transport.get_extra_info("sslcontext") is not None
        if self._on_connection_made is not None:
            self._on_connection_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.core.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        core = self.core
        core.buffer_updated(nbytes)
        if core.filling:
            return  # into a recv_into() buffer, not full yet: let it fill
        if not self.paused and (core.over_limit or core.refused):
            self.pause_reading()
        self.waiter.wake()

    def eof_received(self) -> bool:
        self.core.receive_eof()
        self.waiter.wake()
        return not self._tls

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if not self._closing:
            self.core.connection_lost(exc)
        self.waiter.wake()
        self.flow.fail(exc)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.flow.pause()

    def resume_writing(self) -> None:
        self.flow.resume()

    # -- reading flow ---------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading (too much waits unread)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.paused = True
            transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again (unless the memory budget refused this connection)."""
        transport = self.transport
        if self.core.refused:
            return
        self.paused = False
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # -- local close ----------------------------------------------------------

    def close(self, *, abort: bool = False) -> None:
        """Close the transport (``abort``: at once, dropping unsent data).

        Unread messages are dropped; pending and later ``recv()`` calls raise
        ``ConnectionClosed``, and so do later sends.
        """
        self._closing = True
        self.core.discard_received()
        self.waiter.wake()
        self.flow.fail(None, "the connection was closed")
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    @property
    def closing(self) -> bool:
        """Whether it was closed locally."""
        return self._closing
