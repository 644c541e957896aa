"""Framed stream connections: :class:`Connection`.

Design notes
------------
A :class:`Connection` is the application's side of a
:class:`~.protocol.FramedProtocol`: it takes messages out of the protocol's
:class:`~framekit.core.StreamCore` and sends through the transport.  The core
does all the framing; this module only waits and writes.

Receiving is written once for asyncio and anyio, in
:class:`framekit.core.api.AsyncStreamAPI`; this module gives it the waiting.
``recv()`` and ``async for`` take the next message straight from
the core's current batch (``for m in core.messages``): no future, no
suspension, no helper coroutine while messages are decoded.  Only when the
batch is used up does the connection ask the core for the next one
(:meth:`StreamCore.next_batch`: queued errors, bytes held back), and only when
the core has nothing does it flush held-back writes, resume reading if it was
paused, and wait (:class:`~.flow.ReadWaiter`), at most until the core's
timeout deadline.  ``async for`` runs an async generator rather than a
``__anext__`` coroutine: resuming one generator frame per message costs about
a quarter less than creating a coroutine per message.  Breaking out of the
loop loses nothing: the next ``recv()`` or loop continues with the next
message.

Sending and coalescing.  ``send()`` encodes through the core onto its
outgoing buffers.  While more decoded messages of the current batch wait (the
handler answers a pipelined batch), a send is held back, and the batch's
replies go out in one ``transport.writelines`` when the handler next waits for
input, or at the end of this event-loop iteration (a callback scheduled with
the first held-back send), whichever comes first: never later than the point
where the handler waits, so a request/response peer never waits for a reply.
Otherwise it is written at once.  Large ``bytes`` payloads go out as
``[header, payload]`` without a copy (uvloop and Python >= 3.12 write them as
they are); other buffers are copied by the codec, so the caller may refill
them as soon as ``send()`` returns.  ``send()`` then awaits only if the
transport paused writing (see :mod:`.flow`), after flushing.  A frame sent in
pieces (``send_stream``, ``send_file``: shared with anyio too) holds other
tasks' frames back until it is out, so none lands inside it.

Closing.  ``close()`` flushes and closes the transport and waits for it to be
gone, at most ``timeout`` seconds, after which it aborts: a peer that stopped
reading cannot hold ``close()`` forever.  A cancelled ``close()`` aborts at
once, so cancelling it (as ``Server.close()`` cancels the handlers' tasks)
never leaves the transport open behind it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, List, Optional

from ..codecs.interface import Buffer
from ..core.api import AsyncStreamAPI
from ..core.frames import OutgoingFrame
from ..core.options import CLOSE_TIMEOUT, check_serializer
from ..serializers import Serializer
from .flow import wait_closed
from .protocol import FramedProtocol, TransportEnd

__all__ = ["Connection"]


class Connection(TransportEnd, AsyncStreamAPI):
    """A framed connection over a stream transport (TCP, TLS, Unix).

    Made by :func:`framekit.asyncio.connect` and by servers (see
    :func:`framekit.asyncio.serve`).

    Attributes:
        transport: the asyncio transport.
    """

    _reads_into = True  # a BufferedProtocol: reads go where core.get_buffer() says
    _hold_batch_replies = True  # held replies are flushed at the end of the loop's iteration

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: FramedProtocol,
        *,
        serializer: Optional[Serializer] = None,
    ) -> None:
        self.transport = transport
        self._protocol = protocol
        self._core = protocol.core
        self._core.serializer = check_serializer(serializer)
        self._flow = protocol.flow
        self._flush_scheduled = False

    # -- sending --------------------------------------------------------------

    async def send(self, payload: Any, *, prefix: Optional[Buffer] = None) -> None:
        """Send one frame; wait only if the peer is slow (flow control).

        The payload may be reused as soon as ``send()`` returns: only an
        immutable ``bytes`` payload of 16 KiB or more goes out by reference;
        any other buffer is copied by the codec first.

        Args:
            payload: bytes-like, or any object when the connection has a serializer.
            prefix: the bytes before the length field, for a codec with
                ``length_offset`` (the type byte of the Postgres, MQTT and gRPC
                presets).  ``None`` calls the codec without it.

        Raises:
            ConnectionClosed: the connection was closed.
            ConnectionError: the connection was lost (reset, broken pipe).
            SerializationError: the serializer failed.
            FrameTooLarge: the frame is above the codec's maximum.
            ValueError: the codec cannot frame the payload.
            TypeError: ``payload`` is not bytes-like (a ``str``: encode it, or
                set a serializer).
            TimeoutError: the peer made no room for the frame within the
                shorter of ``idle_timeout`` and ``frame_timeout`` (it does not
                read); the connection was aborted.
        """
        flow = self._flow
        if flow.error is not None:
            flow.check()
        if self._core.write(payload, prefix):  # held back: a reply to a batch
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._protocol.loop.call_soon(self._scheduled_flush)
        else:
            self.flush()
        if flow.paused:
            self.flush()
            await self._drain()

    async def send_many(self, payloads: Iterable[Any], *, prefix: Optional[Buffer] = None) -> None:
        """Send several frames with one write.

        ``prefix``, as for :meth:`send`, goes before the length of every frame.

        Raises:
            As :meth:`send`; nothing is sent if any payload cannot be framed.
        """
        flow = self._flow
        if flow.error is not None:
            flow.check()
        self._core.write_many(payloads, prefix)
        self.flush()
        if flow.paused:
            await self._drain()

    def flush(self) -> None:
        """Hand what is held back to the transport now (see the module notes)."""
        parts = self._core.take_outgoing()
        if not parts or self._protocol.flow.error is not None:
            return
        if len(parts) == 1:
            self.transport.write(parts[0])
        else:
            self.transport.writelines(parts)

    async def _drain(self) -> None:
        """Wait while the transport pauses writing; abort the connection if the
        peer takes nothing for the core's ``send_timeout``."""
        if not await self._protocol.flow.wait(self._core.send_timeout):
            self.abort()
            raise self._core.send_timed_out()

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def write_eof(self) -> None:
        """Half-close: tell the peer nothing more will be sent; keep receiving.

        Raises:
            NotImplementedError: the transport cannot half-close (TLS).
        """
        self.flush()
        self.transport.write_eof()

    # -- receiving (AsyncStreamAPI: recv, async for, recv_stream, recv_into) --------

    async def _wait_input(self) -> None:
        """Flush what is held back, read again if paused, wait (at most until the
        core's deadline, then raise its ``TimeoutError``)."""
        core = self._core
        protocol = self._protocol
        if core.outgoing:
            self.flush()
        if protocol.paused:
            protocol.resume_reading()
        wait = core.wait_time()
        if wait is not None and wait <= 0:
            error = core.timed_out()
            if error is not None:
                raise error
        await protocol.waiter.wait(wait)

    def _input_taken(self) -> None:
        protocol = self._protocol
        if protocol.paused and self._core.under_half:
            protocol.resume_reading()

    # -- sending a frame in pieces (AsyncStreamAPI: send_stream, send_file) ----------

    def _check_writable(self) -> None:
        self._protocol.flow.check()

    async def _write_parts(self, parts: List[Buffer]) -> None:
        if parts and self._protocol.flow.error is None:
            if len(parts) == 1:
                self.transport.write(parts[0])
            else:
                self.transport.writelines(parts)
        if self._protocol.flow.paused:
            await self._drain()

    async def _send_file_body(self, frame: OutgoingFrame, file: Any) -> None:
        """``loop.sendfile`` (the kernel copies the file) where the loop and the
        transport allow it; reads and sends otherwise."""
        try:
            frame.sent = await asyncio.get_running_loop().sendfile(
                self.transport, file, file.tell(), frame.length, fallback=False
            )
        except (NotImplementedError, RuntimeError, AttributeError):
            await super()._send_file_body(frame, file)

    # -- closing --------------------------------------------------------------

    async def close(self, timeout: Optional[float] = CLOSE_TIMEOUT) -> None:
        """Close the connection: flush buffered data, then wait until it is gone.

        Unread messages are dropped.  Safe to call more than once.  Cancelling
        it aborts the connection (drops unsent data) before the
        ``CancelledError`` propagates.

        Args:
            timeout: abort (drop unsent data) if the graceful close takes longer.
        """
        self.flush()
        self._protocol.close()
        await wait_closed(self._protocol.lost, timeout, self.abort)

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
