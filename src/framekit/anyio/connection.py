"""Framed stream connections on anyio: :class:`Connection`.

Design notes
------------
A :class:`Connection` moves bytes between an anyio byte stream (a
``SocketStream``, a ``TLSStream`` or any ``anyio.abc.ByteStream``) and a
:class:`~framekit.core.StreamCore`, which does all the framing.  This module
only waits, reads and writes.

**Receiving.**  ``recv()`` and ``async for`` take the next message straight
from the core's current batch (``for m in core.messages``): no await while
messages are decoded.  Only when the batch is used up does the connection ask
the core for the next one (:meth:`StreamCore.next_batch`: queued errors, the
end), and only when the core has nothing does it flush held-back writes and
read once, ``stream.receive(DEFAULT_READ_SIZE)``, into
:meth:`StreamCore.receive_data`.  anyio streams hand out ``bytes`` (there is
no ``receive_into``), so that is the one copy, into the decoder's buffer.

*Backpressure* follows: the stream is read only when ``recv()`` needs input,
so a handler that stops reading stops the reads, the kernel buffers fill and
TCP slows the sender (anyio's asyncio TCP streams pause their transport
outside ``receive()``, and :func:`hold_reads` pauses it from the start).
What the connection holds is one read's frames plus the decoder's partial
frame: bounded, with nothing to configure.

*Cancellation* of a waiting ``recv()`` (a cancel scope, ``move_on_after``, a
task group closing) loses nothing: anyio's ``receive()`` either returns bytes
or is cancelled before taking any, and everything taken is in the core, so the
next ``recv()`` returns the next frame.

*Timeouts* (``idle_timeout``, ``frame_timeout``) are the core's deadlines on
anyio's clock: a read waits in a ``CancelScope`` with the core's deadline, and
when it passes ``recv()`` raises the core's ``TimeoutError``; nothing received
is lost, and the connection stays usable: a caller that goes on waits one
period (the shorter timeout) more before the next ``TimeoutError``, unless
input arrives and moves the deadline.

**Sending** encodes through the core onto its outgoing buffers.  While more
decoded messages of the current batch wait (a handler answering a pipelined
batch), a send is held back, and the batch's replies go out together when the
handler next waits for input, or once they reach ``DEFAULT_READ_SIZE`` bytes;
never later than the point where the handler waits, so a request/response
peer never waits for a reply.  Otherwise a send is written at once.  Payloads
of ``VECTORED_MIN_SIZE`` or more are written on their own, without a copy;
smaller buffers are joined into one write.

*A frame goes out whole or not at all.*  A ``send()`` that would write, in a
cancelled scope, raises before encoding anything.  A byte stream cancelled in
the middle of a write may have written part of it (trio's ``send_all``, Unix
sockets), and a ``TLSStream`` cancelled there is broken for good.  So the write of what the
core handed over is shielded from cancellation: a ``send()`` cancelled by a
deadline finishes the frames it started, for at most ``CLOSE_TIMEOUT`` seconds
after that deadline, and if it cannot, the connection is aborted (the peer sees
a cut frame, ``IncompleteFrame``, never a short one) before the cancellation
goes on.  A ``send()`` whose scope is cancelled without a deadline finishes its
write while the peer reads it; :meth:`Connection.abort` (which servers call on
every connection when they close) ends such a write at once.  Concurrent
senders are served in turn: one task writes, and writes what the others
encoded meanwhile before it returns.

**Errors** are framekit's, as on the other transports: anyio's
``EndOfStream`` is the core's end of input (``ConnectionClosed``, or
``IncompleteFrame`` inside a frame), ``BrokenResourceError`` becomes the
``OSError`` under it (``ConnectionResetError``, ``BrokenPipeError``, an
``ssl.SSLError``), and a stream closed locally gives ``ConnectionClosed``.

**Closing** flushes what is held back (at most ``timeout`` seconds), then
closes the stream without waiting for the peer; cancelled, it aborts at once.
TLS streams are made with ``standard_compatible=False``: closing sends no TLS
``close_notify`` and a peer's missing one ends the stream like a clean close,
as the blocking and asyncio transports do (Python's ``SSLSocket.close()``
sends none); the framing still tells a frame cut short (``IncompleteFrame``).
"""

from __future__ import annotations

import errno
import math
import os
import socket
from typing import Any, AsyncIterator, Iterable, Iterator, List, Optional

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.abc import SocketAttribute

from ..codecs.interface import Buffer, Codec
from ..core.api import StreamAPI
from ..core.options import (
    CLOSE_TIMEOUT,
    DEFAULT_READ_SIZE,
    VECTORED_MIN_SIZE,
    check_serializer,
    check_timeout,
    make_codec,
)
from ..core.stream import StreamCore
from ..errors import ConnectionClosed
from ..serializers import Serializer

__all__ = ["Connection"]


def lost_error(exc: BaseException) -> OSError:
    """The ``OSError`` a broken anyio resource stands for (its cause, when it has one)."""
    cause = exc.__cause__
    if isinstance(cause, OSError):
        return cause
    if isinstance(exc, OSError) and not isinstance(exc, anyio.BrokenResourceError):
        return exc
    return ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))


def hold_reads(stream: anyio.abc.ByteStream) -> None:
    """Read nothing from ``stream`` until it is asked to (``receive()``).

    anyio's TCP streams on its asyncio backend sit on an asyncio transport that
    reads as soon as it is made and pauses only once ``receive()`` was called:
    a peer could fill memory before the first ``recv()``.  There is no public
    way to start it paused, so this pauses anyio's transport (a private
    attribute, looked up defensively); trio and Unix streams read only when
    asked already.
    """
    transport = getattr(stream, "_transport", None)
    pause = getattr(transport, "pause_reading", None)
    if pause is not None and not transport.is_closing():  # type: ignore[union-attr]
        pause()


def _writes(parts: List[Buffer]) -> Iterator[Buffer]:
    """The buffers to write for ``parts``: small ones joined, large ones as they are."""
    small: List[Buffer] = []
    for part in parts:
        if len(part) < VECTORED_MIN_SIZE:
            small.append(part)
            continue
        if small:
            yield small[0] if len(small) == 1 else b"".join(small)
            small = []
        yield part
    if small:
        yield small[0] if len(small) == 1 else b"".join(small)


class Connection(StreamAPI):
    """A framed connection over an anyio byte stream (TCP, TLS, Unix, or any ``ByteStream``).

    Made by :func:`framekit.anyio.connect` and by servers (see
    :func:`framekit.anyio.serve`); may also wrap a stream made elsewhere.

    Args:
        stream: the byte stream; the connection owns it and closes it.
        codec: the framing; None means ``framekit.LengthPrefixed()``.
        serializer: send and receive objects through it instead of bytes.
        idle_timeout: ``recv()`` raises ``TimeoutError`` when nothing arrives
            for that many seconds while it waits (None: never).
        frame_timeout: ``recv()`` raises ``TimeoutError`` when a frame begun
            that many seconds ago is still incomplete (None: never).

    Attributes:
        stream: the anyio byte stream.

    Raises:
        TypeError, ValueError: a bad codec, serializer or timeout.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        codec: Optional[Codec] = None,
        *,
        serializer: Optional[Serializer] = None,
        idle_timeout: Optional[float] = None,
        frame_timeout: Optional[float] = None,
    ) -> None:
        idle_timeout = check_timeout("idle_timeout", idle_timeout)
        frame_timeout = check_timeout("frame_timeout", frame_timeout)
        self._core = StreamCore(
            make_codec(codec),
            check_serializer(serializer),
            idle_timeout=idle_timeout,
            frame_timeout=frame_timeout,
            clock=anyio.current_time,
        )
        timeouts = [t for t in (idle_timeout, frame_timeout) if t is not None]
        #: After a timeout was reported, a caller that goes on waits this long more.
        self._period = min(timeouts) if timeouts else math.inf
        self._expired: Optional[float] = None  # the core's deadline last reported
        self._renewed = math.inf  # until when the caller waits past it
        self.stream = stream
        self._reading = False  # a task waits in receive()
        self._sending = False  # a task is writing
        self._sent: Optional[anyio.Event] = None  # set when that write is done
        self._flushed_out = 0  # core.bytes_out when the last flush began
        self._closed = False
        self._write_error: Optional[BaseException] = None

    # -- what it is ------------------------------------------------------------

    # -- sending --------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._closed:
            raise ConnectionClosed("the connection was closed")
        error = self._write_error
        if error is not None:
            try:
                raise error.with_traceback(None)  # the same instance, a fresh traceback
            finally:
                error = None

    async def send(self, payload: Any, *, prefix: Optional[Buffer] = None) -> None:
        """Send one frame, whole (see the module notes on cancellation).

        The payload may be reused as soon as ``send()`` returns.

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
        self._check_writable()
        core = self._core
        if core.coalescing:  # a reply to a batch: held back, no await (as recv() there)
            core.write(payload, prefix)
            if core.bytes_out - self._flushed_out < DEFAULT_READ_SIZE:
                return
        else:
            await anyio.lowlevel.checkpoint_if_cancelled()  # cancelled: nothing is sent
            core.write(payload, prefix)
        await self._flush(CLOSE_TIMEOUT)

    async def send_many(self, payloads: Iterable[Any], *, prefix: Optional[Buffer] = None) -> None:
        """Send several frames with one write.

        ``prefix``, as for :meth:`send`, goes before the length of every frame.

        Raises:
            As :meth:`send`; nothing is sent if any payload cannot be framed.
        """
        self._check_writable()
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._core.write_many(payloads, prefix)
        await self._flush(CLOSE_TIMEOUT)

    async def flush(self) -> None:
        """Write what is held back now (see the module notes)."""
        self._check_writable()
        await self._flush(CLOSE_TIMEOUT)

    async def _flush(self, grace: float) -> None:
        """Write everything the core holds, whole; one task at a time."""
        while self._sending:  # another task writes, and takes what we added
            sent = self._sent
            if sent is None:
                self._sent = sent = anyio.Event()
            await sent.wait()
            self._check_writable()
        core = self._core
        if not core.outgoing:
            return
        self._sending = True
        try:
            while core.outgoing:
                self._flushed_out = core.bytes_out
                for data in _writes(core.take_outgoing()):
                    await self._write_whole(data, grace)
        finally:
            self._sending = False
            sent, self._sent = self._sent, None
            if sent is not None:
                sent.set()

    async def _write_whole(self, data: Buffer, grace: float) -> None:
        """``stream.send(data)`` shielded from cancellation, for at most ``grace``
        seconds after the caller's deadline; then the connection is aborted."""
        deadline = anyio.current_effective_deadline()
        with anyio.CancelScope(shield=True) as scope:
            if deadline != math.inf:
                scope.deadline = max(deadline, anyio.current_time()) + grace
            try:
                await self.stream.send(data)  # type: ignore[arg-type]
            except anyio.ClosedResourceError:
                self._core.outgoing.clear()
                raise ConnectionClosed("the connection was closed") from None
            except (anyio.BrokenResourceError, OSError) as exc:
                self._core.outgoing.clear()
                self._write_error = error = lost_error(exc).with_traceback(None)
                raise error from None
        if scope.cancelled_caught:
            # The caller's deadline passed and the frame still is not out: the
            # peer must never see part of it as a frame.
            self._core.outgoing.clear()
            self.abort()
            await anyio.aclose_forcefully(self.stream)
            await anyio.lowlevel.checkpoint()  # the caller's cancellation goes on
            raise TimeoutError("send: the peer did not take the frame; connection aborted")

    async def send_eof(self) -> None:
        """Half-close: flush, then tell the peer nothing more will be sent; keep receiving.

        Raises:
            NotImplementedError: the stream cannot half-close (TLS).
        """
        await self.flush()
        await self.stream.send_eof()

    # -- receiving ------------------------------------------------------------

    async def recv(self) -> Any:
        """Return the next message (an object with a serializer).

        Returns at once, without awaiting anything, when a message is already
        decoded.  Cancelling a waiting ``recv()`` loses nothing: the next
        message stays queued.

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
            RuntimeError: another task is already waiting in ``recv()``.
        """
        for message in self._core.messages:
            return message
        await self._next_batch()
        for message in self._core.messages:
            return message
        raise AssertionError("unreachable: a batch was made current")  # pragma: no cover

    async def _next_batch(self) -> None:
        """Read until the core has a batch; raise its errors and the end."""
        core = self._core
        while not core.next_batch():
            if core.outgoing and not self._sending and self._write_error is None:
                await self._flush(CLOSE_TIMEOUT)  # the peer may wait for our replies
            await self._read()

    async def _read(self) -> None:
        """One ``receive()`` into the core, bounded by the core's deadline."""
        if self._reading:
            raise RuntimeError("another task is already waiting for the next message")
        core = self._core
        deadline = core.deadline()
        if deadline is not None:
            if deadline == self._expired:  # reported already: wait one period more
                deadline = self._renewed
            now = anyio.current_time()
            if now >= deadline:
                error = core.timed_out()
                if error is not None:
                    self._expired = core.deadline()
                    self._renewed = now + self._period
                    try:
                        raise error
                    finally:
                        error = None
        self._reading = True
        try:
            if deadline is None:
                core.receive_data(await self.stream.receive(DEFAULT_READ_SIZE))
            else:
                with anyio.CancelScope(deadline=deadline):
                    core.receive_data(await self.stream.receive(DEFAULT_READ_SIZE))
        except anyio.EndOfStream:
            core.receive_eof()
        except anyio.ClosedResourceError:
            core.discard_received()  # closed locally, maybe by another task
        except (anyio.BrokenResourceError, OSError) as exc:
            core.connection_lost(lost_error(exc))
        finally:
            self._reading = False

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

    # -- addresses ------------------------------------------------------------

    @property
    def local_address(self) -> Any:
        """The local socket address (as ``getsockname()`` gives it), or None."""
        return self.stream.extra(SocketAttribute.local_address, None)

    @property
    def remote_address(self) -> Any:
        """The peer's socket address (as ``getpeername()`` gives it), or None."""
        return self.stream.extra(SocketAttribute.remote_address, None)

    # -- closing --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection was closed locally (or aborted)."""
        return self._closed

    def abort(self) -> None:
        """End the connection now, from any task, without awaiting: a read or a
        write in progress (even a shielded one) fails at once; unsent data is
        dropped.  :meth:`aclose` still releases the stream."""
        self._closed = True
        self._core.discard_received()
        raw: Optional[socket.socket] = self.stream.extra(SocketAttribute.raw_socket, None)
        if raw is not None and raw.fileno() >= 0:
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more

    async def aclose(self, timeout: Optional[float] = CLOSE_TIMEOUT) -> None:
        """Close the connection: flush what is held back, then close the stream.

        Unread messages are dropped.  Safe to call more than once.  Called in
        a cancelled scope, it closes at once, dropping unsent data.

        Args:
            timeout: abort (drop unsent data) if flushing takes longer.
        """
        try:
            if (
                not self._closed
                and self._write_error is None
                and anyio.current_effective_deadline() != -math.inf
            ):
                with anyio.move_on_after(math.inf if timeout is None else timeout):
                    await self._flush(0.0)
        except (OSError, ConnectionClosed):
            pass  # the peer is gone: nothing more to send
        finally:
            self._closed = True
            self._core.discard_received()
            await anyio.aclose_forcefully(self.stream)

    close = aclose

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<framekit.anyio.Connection {state} peer={self.remote_address!r}>"
