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
import os
from typing import Any, AsyncIterable, AsyncIterator, Iterable, Optional, Union

from ..codecs.interface import Buffer
from ..core.api import StreamAPI
from ..core.options import CLOSE_TIMEOUT, check_serializer
from ..errors import ConnectionClosed, FrameTooLarge
from ..serializers import Serializer
from .protocol import FramedProtocol
from .stream import DEFAULT_CHUNK_SIZE, AsyncFrameStream

__all__ = ["Connection"]


def _does_not_fit(length: int, room: int) -> FrameTooLarge:
    return FrameTooLarge(
        f"a {length}-byte frame does not fit the {room}-byte buffer; it stays unread",
        frame_length=length,
        max_frame_size=room,
    )


def _wrong_length(length: int, got: str) -> ValueError:
    return ValueError(
        f"send_stream: the chunks hold {got} bytes, not the {length} announced; "
        "the connection is aborted (its peer sees an incomplete frame)"
    )


class Connection(StreamAPI):
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
        if self._core.stream_kept >= 0:
            return await self._recv_kept()
        await self._next_batch()
        for message in self._core.messages:
            return message
        raise AssertionError("unreachable: a batch was made current")  # pragma: no cover

    async def _recv_kept(self) -> Any:
        """``recv()`` of a frame that ``recv_into`` left open: read it whole."""
        length = self._core.take_kept_stream()
        parts = []
        while length:
            data = await self._stream_read(length)
            parts.append(data)
            length -= len(data)
        return self._core.message(b"".join(parts))

    async def _next_batch(self) -> None:
        """Wait until the core has a batch; raise its errors and the end."""
        core = self._core
        protocol = self._protocol
        while not core.next_batch():
            await self._wait_input()
        if protocol.paused and core.under_half:
            protocol.resume_reading()

    async def _wait_input(self) -> None:
        """Flush what is held back, read again if paused, wait (at most until the
        core's deadline, then raise its ``TimeoutError``)."""
        core = self._core
        protocol = self._protocol
        self.flush()
        if protocol.paused:
            protocol.resume_reading()
        wait = core.wait_time()
        if wait is not None and wait <= 0:
            error = core.timed_out()
            if error is not None:
                raise error
        await protocol.waiter.wait(wait)

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

    # -- frames as streams --------------------------------------------------------

    async def recv_stream(self, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncFrameStream:
        """Return the next frame as a stream: its ``length``, then its payload
        in chunks of at most ``chunk_size`` bytes (``async for``; see
        :class:`~.stream.AsyncFrameStream`).

        Use it with ``async with``: leaving the block early skips the rest of
        the frame, and the connection goes on.  Messages and streams mix frame
        by frame.  No serializer applies to a stream.

        Raises:
            TypeError: the codec cannot stream (only ``LengthPrefixed`` can).
            FrameTooLarge: the frame is above ``max_stream_size`` (or
                ``max_frame_size`` when no ``max_stream_size`` was given); it
                is skipped before a byte of its payload is read.
            As :meth:`recv` otherwise.
        """
        first = await self._open_stream()
        if isinstance(first, bytes):
            return AsyncFrameStream(len(first), whole=first, chunk_size=chunk_size)
        return AsyncFrameStream(
            first,
            read=self._stream_read,
            discard=self._core.stream_discard,
            chunk_size=chunk_size,
        )

    async def recv_into(self, buffer: Buffer) -> int:
        """Read the next frame's payload into ``buffer`` (any writable bytes-like
        object); return its size.  No serializer applies.

        Raises:
            FrameTooLarge: the frame does not fit ``buffer``; it stays unread
                (``recv()``, ``recv_stream()`` or a larger ``recv_into()`` takes it).
            As :meth:`recv_stream` otherwise.
        """
        view = memoryview(buffer).cast("B")
        first = await self._open_stream()
        if isinstance(first, bytes):
            if len(first) > len(view):
                self._core.put_back(first)
                raise _does_not_fit(len(first), len(view))
            view[: len(first)] = first
            return len(first)
        if first > len(view):
            self._core.keep_stream()
            raise _does_not_fit(first, len(view))
        got = 0
        while got < first:
            data = await self._stream_read(first - got)
            view[got : got + len(data)] = data
            got += len(data)
        return first

    async def _open_stream(self) -> Union[bytes, int]:
        core = self._core
        while True:
            first = core.open_stream()
            if first is not None:
                return first
            await self._wait_input()

    async def _stream_read(self, size: int) -> bytes:
        core = self._core
        protocol = self._protocol
        while True:
            data = core.stream_read(size)
            if data:
                if protocol.paused and core.under_half:
                    protocol.resume_reading()
                return data
            if core.input_ended:
                core.stream_cut()
            await self._wait_input()

    async def send_stream(
        self,
        length: int,
        chunks: Union[Iterable[Buffer], AsyncIterable[Buffer]],
        *,
        prefix: Optional[Buffer] = None,
    ) -> None:
        """Send one frame whose ``length``-byte payload comes in pieces: an
        iterable or an async iterable of bytes-like chunks, sent as they come
        (waiting whenever the transport pauses writing), so memory stays
        bounded whatever the frame's size.

        Raises:
            TypeError: the codec cannot announce a length first (only
                ``LengthPrefixed`` can).
            FrameTooLarge: ``length`` is above ``max_stream_size`` (and the
                codec's ``max_frame_size``); nothing was sent.
            ValueError: the chunks hold more or fewer bytes than ``length``:
                the frame could not be sent whole, so the connection is
                aborted (the peer sees ``IncompleteFrame``, never a misaligned
                frame); raised before the excess is sent.  Cancelling it
                midway aborts the connection too.
            ConnectionError: the connection was lost.
        """
        flow = self._protocol.flow
        flow.check()
        header = self._core.stream_header(length, prefix)
        self.flush()
        self.transport.write(header)
        sent = 0
        try:
            if hasattr(chunks, "__aiter__"):
                async for chunk in chunks:
                    sent = await self._send_chunk(chunk, sent, length)
            else:
                for chunk in chunks:
                    sent = await self._send_chunk(chunk, sent, length)
            if sent < length:
                raise _wrong_length(length, f"only {sent}")
        except BaseException:
            self.abort()
            raise
        self._core.bytes_out += length

    async def _send_chunk(self, chunk: Buffer, sent: int, length: int) -> int:
        size = len(chunk) if type(chunk) is bytes else memoryview(chunk).nbytes
        if sent + size > length:
            raise _wrong_length(length, "more")
        # A transport may keep what it could not write at once: only bytes by reference.
        self.transport.write(chunk if type(chunk) is bytes else bytes(chunk))
        flow = self._protocol.flow
        if flow.paused:
            await flow.wait()
        return sent + size

    async def send_file(
        self, file: Any, length: Optional[int] = None, *, prefix: Optional[Buffer] = None
    ) -> int:
        """Send a file's contents, from its current position, as one frame.

        Uses ``loop.sendfile`` (the kernel copies the file to the socket) where
        the loop and transport allow it (asyncio's loop, plain TCP and Unix);
        reads and sends otherwise.

        Args:
            file: a file object opened in binary mode.
            length: bytes to send; None: the rest of the file.

        Returns:
            The payload's size.

        Raises:
            As :meth:`send_stream`.
        """
        if length is None:
            length = os.fstat(file.fileno()).st_size - file.tell()
        flow = self._protocol.flow
        flow.check()
        header = self._core.stream_header(length, prefix)
        self.flush()
        self.transport.write(header)
        try:
            sent = 0
            if length:
                try:
                    sent = await asyncio.get_running_loop().sendfile(
                        self.transport, file, file.tell(), length, fallback=False
                    )
                except (NotImplementedError, RuntimeError, AttributeError):
                    while sent < length:
                        chunk = file.read(min(DEFAULT_CHUNK_SIZE, length - sent))
                        if not chunk:
                            break
                        sent = await self._send_chunk(chunk, sent, length)
            if sent < length:
                raise _wrong_length(length, f"only {sent}")
        except BaseException:
            self.abort()
            raise
        self._core.bytes_out += length
        return length

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
