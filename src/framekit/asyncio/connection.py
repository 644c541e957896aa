"""Framed stream connections: :class:`Connection`.

Design notes
------------
A :class:`Connection` is the application's side of a
:class:`~.protocol.FramedProtocol`: it takes messages out of the protocol's
:class:`~framekit.core.StreamCore` and sends through the transport.  The core
does all the framing; this module only waits and writes.

Receiving.  ``recv()`` and ``async for`` take the next message straight from
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
transport paused writing (see :mod:`.flow`), after flushing.

Closing.  ``close()`` flushes and closes the transport and waits for it to be
gone, at most ``timeout`` seconds, after which it aborts: a peer that stopped
reading cannot hold ``close()`` forever.  A cancelled ``close()`` aborts at
once, so cancelling it (as ``Server.close()`` cancels the handlers' tasks)
never leaves the transport open behind it.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterable, Optional

from ..codecs.interface import Buffer, Codec
from ..core.options import CLOSE_TIMEOUT, check_serializer, make_codec
from ..core.stream import StreamCore
from ..errors import ConnectionClosed
from ..serializers import Serializer
from .protocol import FramedProtocol

__all__ = ["Connection"]


class Connection:
    """A framed connection over a stream transport (TCP, TLS, Unix).

    Made by :func:`framekit.asyncio.connect` and by servers (see
    :func:`framekit.asyncio.serve`).

    Attributes:
        transport: the asyncio transport.
    """

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
        self._flush_scheduled = False

    # -- what it is ------------------------------------------------------------

    @property
    def codec(self) -> Codec:
        """The codec in use (see :meth:`switch_codec`)."""
        return self._core.codec

    @property
    def serializer(self) -> Optional[Serializer]:
        """The serializer in use, or None; may be replaced at any time."""
        return self._core.serializer

    @serializer.setter
    def serializer(self, serializer: Optional[Serializer]) -> None:
        self._core.serializer = check_serializer(serializer)

    @property
    def core(self) -> StreamCore:
        """The sans-IO connection core (documented internal: counters, queue state)."""
        return self._core

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
        """
        flow = self._protocol.flow
        flow.check()
        core = self._core
        core.write(payload, prefix)
        if core.coalescing:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._scheduled_flush)
        else:
            self.flush()
        if flow.paused:
            self.flush()
            await flow.wait()

    async def send_many(self, payloads: Iterable[Any], *, prefix: Optional[Buffer] = None) -> None:
        """Send several frames with one write.

        ``prefix``, as for :meth:`send`, goes before the length of every frame.

        Raises:
            As :meth:`send`; nothing is sent if any payload cannot be framed.
        """
        flow = self._protocol.flow
        flow.check()
        self._core.write_many(payloads, prefix)
        self.flush()
        if flow.paused:
            await flow.wait()

    def flush(self) -> None:
        """Hand what is held back to the transport now (see the module notes)."""
        parts = self._core.take_outgoing()
        if not parts or self._protocol.flow.error is not None:
            return
        if len(parts) == 1:
            self.transport.write(parts[0])
        else:
            self.transport.writelines(parts)

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

    # -- receiving ------------------------------------------------------------

    async def recv(self) -> Any:
        """Return the next message (an object with a serializer).

        Returns at once, without suspending, when a message is already decoded.
        Cancelling a waiting ``recv()`` loses nothing: the next message stays queued.

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
            TimeoutError: ``idle_timeout`` or ``frame_timeout`` expired;
                nothing received is lost.
            RuntimeError: another coroutine is already waiting in ``recv()``.
        """
        for message in self._core.messages:
            return message
        await self._next_batch()
        for message in self._core.messages:
            return message
        raise AssertionError("unreachable: a batch was made current")  # pragma: no cover

    async def _next_batch(self) -> None:
        """Wait until the core has a batch; raise its errors and the end."""
        core = self._core
        protocol = self._protocol
        while not core.next_batch():
            self.flush()
            if protocol.paused:
                protocol.resume_reading()
            wait = core.wait_time()
            if wait is not None and wait <= 0:
                error = core.timed_out()
                if error is not None:
                    raise error
            await protocol.waiter.wait(wait)
        if protocol.paused and core.under_half:
            protocol.resume_reading()

    def __aiter__(self) -> AsyncIterator[Any]:
        """Iterate over messages (as :meth:`recv` returns them) until a clean end.

        Breaking out of the loop loses nothing: the next ``recv()`` or loop
        continues with the next message.
        """
        return self._messages()

    async def _messages(self) -> AsyncIterator[Any]:
        core = self._core
        while True:
            current = core.messages
            for message in current:
                yield message
            if core.messages is current:  # used up (a recv() may have moved on meanwhile)
                try:
                    await self._next_batch()
                except ConnectionClosed:
                    return

    def switch_codec(self, codec: Codec) -> None:
        """Decode with ``codec`` from the frame after the last one returned.

        Messages already decoded but not returned yet, and bytes still
        buffered, are decoded again by the new codec: nothing is lost and
        nothing is decoded twice.  Encoding uses the new codec too.

        Raises:
            TypeError: ``codec`` is not a codec, or the current codec cannot
                hand back the bytes it holds (see :class:`framekit.Decoder`).
            ValueError: the current decoder cannot go back to that point.
        """
        self._core.switch_codec(make_codec(codec))

    @property
    def queued_frames(self) -> int:
        """Decoded messages waiting for ``recv()``."""
        return self._core.queued_frames

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting for ``recv()``: decoded, held back, or partial frames."""
        return self._core.queued_bytes

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

        Unread messages are dropped.  Safe to call more than once.  Cancelling
        it aborts the connection (drops unsent data) before the
        ``CancelledError`` propagates.

        Args:
            timeout: abort (drop unsent data) if the graceful close takes longer.
        """
        protocol = self._protocol
        self.flush()
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
