"""The stream protocol: bytes from the kernel straight into the decoder's buffer.

Design notes
------------
:class:`FramedProtocol` is an ``asyncio.BufferedProtocol``.  Its
``get_buffer(sizehint)`` returns the decoder's ``get_buffer(sizehint)``, so the
transport's ``recv_into`` writes into the decoder's own buffer, and its
``buffer_updated(nbytes)`` is the decoder's: no intermediate ``bytes`` object,
no second copy.  Decoded frames go to an :class:`~.inbox.Inbox`, which
``Connection.recv()`` pops without suspending while it is not empty.

Errors.  A ``FramingError`` carries the frames decoded before the bad bytes:
they are queued first, then the error, and the error's own ``.frames`` is
emptied (the transport delivers them; a caller handling the error must not
deliver them twice).  Then, if the decoder still holds bytes, ``feed(b"")``
decodes the frames buffered behind the bad one.  A decoder may refuse all input
after ``CorruptedFrame`` (a corrupted length field leaves no trustworthy frame
boundary); we detect that generically: a decode call that raises without
consuming anything means the decoder is stuck.  Then reading stops for good and
every later ``recv()`` raises the decoder's own ``CorruptedFrame``; the
transport stays open so the application can still send an error reply, and
closes it when done.

EOF.  ``eof_received`` asks the decoder: a clean end queues nothing and
``recv()`` raises ``ConnectionClosed`` once the queue is empty; a cut-off frame
queues ``IncompleteFrame`` first.  ``eof_received`` returns True for plain
streams so the write side stays open (half-close: a peer may ``write_eof()`` and
still read the reply); TLS cannot half-close, so it returns False there.  A
connection lost with an error (a reset) queues that error once.

Backpressure.  When more frames or bytes wait unread than the bounds allow,
``transport.pause_reading()`` stops reading; the kernel buffers fill and TCP
flow control slows the sender.  ``recv()`` calls ``resume_reading()`` when the
queue drains below half.  Memory is bounded by the limits plus one read (one
``get_buffer`` view, or one frame up to the codec's ``max_frame_size``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Optional, cast

from ..codecs.interface import Codec
from ..errors import ConnectionClosed, CorruptedFrame, FramingError
from .flow import WriteFlow
from .inbox import DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_FRAMES, Inbox, check_limits

__all__ = ["READ_SIZE", "FramedProtocol"]

#: The least room asked of the decoder for each read.
READ_SIZE = 256 * 1024


class FramedProtocol(asyncio.BufferedProtocol):
    """Decodes a stream into frames; used by :class:`~framekit.asyncio.Connection`.

    Args:
        codec: the framing (any :class:`framekit.codecs.interface.Codec`).
        max_queued_frames: pause reading above this many unread frames.
        max_queued_bytes: pause reading above this many bytes of unread frames.
        on_connection_made: called with the protocol once the transport is
            ready (after the TLS handshake); servers start handlers from it.

    Raises:
        ValueError: a bound is not a positive int.
    """

    def __init__(
        self,
        codec: Codec,
        *,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        on_connection_made: Optional[Callable[[FramedProtocol], None]] = None,
    ) -> None:
        check_limits(max_queued_frames, max_queued_bytes)
        self.codec = codec
        self.inbox = Inbox(max_queued_frames, max_queued_bytes)
        self.inbox.pause = self._pause_reading
        self.inbox.resume = self._resume_reading
        self.flow = WriteFlow()
        self.transport: Optional[asyncio.Transport] = None
        #: Completed by ``connection_lost``.
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._decoder = codec.decoder()
        self._on_connection_made = on_connection_made
        self._tls = False
        self._eof = False  # the peer finished sending
        self._stuck = False  # the decoder refuses input: reading stays paused
        self._closing = False  # closed locally

    # -- asyncio callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._tls = transport.get_extra_info("sslcontext") is not None
        if self._on_connection_made is not None:
            self._on_connection_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        # Each read costs a loop iteration, so ask for big reads (the selector
        # loop passes -1): measured, 64 KiB frames went from ~0.4x to ~0.95x
        # of raw recv_into throughput.
        return self._decoder.get_buffer(max(sizehint, READ_SIZE))

    def buffer_updated(self, nbytes: int) -> None:
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except FramingError as exc:
            self._decoding_failed(exc)
            return
        if frames:
            self.inbox.put(frames, sum(map(len, frames)))

    def eof_received(self) -> bool:
        self._eof = True
        if not self._stuck:
            try:
                self._decoder.eof()
            except FramingError as exc:
                self._queue_error(exc)
        self.inbox.end(ConnectionClosed, "the peer closed the connection")
        return not self._tls

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if not (self._eof or self._closing or self._stuck):
            if exc is None:
                self.eof_received()
            else:
                self.inbox.put_error(exc)
        self.inbox.end(ConnectionClosed, "the connection was lost")
        self.flow.fail(exc)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.flow.pause()

    def resume_writing(self) -> None:
        self.flow.resume()

    # -- local close ----------------------------------------------------------

    def close(self, *, abort: bool = False) -> None:
        """Close the transport (``abort``: at once, dropping unsent data).

        Unread frames are dropped; pending and later ``recv()`` calls raise
        ``ConnectionClosed``, and so do later sends.
        """
        self._closing = True
        self.inbox.clear()
        self.inbox.end(ConnectionClosed, "the connection was closed")
        self.flow.fail(None, "the connection was closed")
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    # -- decoding errors and backpressure --------------------------------------

    def _queue_error(self, exc: FramingError) -> None:
        frames: List[Any] = exc.frames
        if frames:
            exc.frames = []
            self.inbox.put(frames, sum(map(len, frames)))
        self.inbox.put_error(exc)

    def _decoding_failed(self, exc: FramingError) -> None:
        decoder = self._decoder
        while True:
            self._queue_error(exc)
            pending = decoder.pending
            if pending == 0 and not isinstance(exc, CorruptedFrame):
                return
            try:
                frames = decoder.feed(b"")
            except FramingError as again:
                if again.frames or decoder.pending < pending:
                    exc = again
                    continue
                # Raised without consuming anything: the decoder is stuck.
                self._stuck = True
                self.inbox.end(type(again), str(again))
                self._pause_reading()
                return
            if frames:
                self.inbox.put(frames, sum(map(len, frames)))
            return

    def _pause_reading(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def _resume_reading(self) -> None:
        transport = self.transport
        if transport is not None and not self._stuck and not transport.is_closing():
            transport.resume_reading()
