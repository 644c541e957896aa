"""Framed stream connections on anyio: :class:`Connection`.

Design notes
------------
A :class:`Connection` moves bytes between an anyio byte stream (a
``SocketStream``, a ``TLSStream`` or any ``anyio.abc.ByteStream``) and a
:class:`~framekit.core.StreamCore`, which does all the framing.  This module
only waits, reads and writes.

**Receiving** is written once for asyncio and anyio, in
:class:`framekit.core.api.AsyncStreamAPI`; this module gives it the reads.
``recv()`` and ``async for`` take the next message straight
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
is lost, and the connection stays usable: reporting a timeout starts a new
period, so a caller that goes on waits a whole timeout more.

**Sending** encodes through the core onto its outgoing buffers.  While more
decoded messages of the current batch wait (a handler answering a pipelined
batch), a send is held back, and the batch's replies go out together when the
handler next waits for input, or once they reach ``DEFAULT_READ_SIZE`` bytes;
never later than the point where the handler waits, so a request/response
peer never waits for a reply.  Otherwise a send is written at once.  A frame
sent in pieces (``send_stream``, ``send_file``) is one long write: other
tasks' frames go after it.  Payloads
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
from typing import Any, Iterable, Iterator, List, Optional

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.abc import SocketAttribute

from .._util import fresh
from ..codecs.interface import Buffer, Codec
from ..core.api import AsyncStreamAPI
from ..core.options import (
    CLOSE_TIMEOUT,
    DEFAULT_READ_SIZE,
    VECTORED_MIN_SIZE,
    check_max_stream_size,
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


class Connection(AsyncStreamAPI):
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
        max_stream_size: frames above the codec's ``max_frame_size`` and up
            to this size can be read with ``recv_stream()``/``recv_into()``
            (and sent with ``send_stream()``); None: streams up to
            ``max_frame_size``.

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
        max_stream_size: Optional[int] = None,
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
        self._core.set_stream_limit(check_max_stream_size(max_stream_size))
        self.stream = stream
        self._reading = False  # a task waits in receive()
        self._sending = False  # a task is writing
        self._sent: Optional[anyio.Event] = None  # set when that write is done
        self._flushed_out = 0  # core.bytes_out when the last flush began
        self._closed = False
        self._write_error: Optional[BaseException] = None

    # -- sending --------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._closed:
            raise ConnectionClosed("the connection was closed")
        if self._write_error is not None:
            raise fresh(self._write_error)  # a copy: no traceback on the stored one

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
            TimeoutError: the peer made no room for the frame within the
                shorter of ``idle_timeout`` and ``frame_timeout`` (it does not
                read); the connection was aborted.
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
        core = self._core
        if self._sending:
            await self._hold_writes()  # another task writes: ours go after
        elif core.outgoing:
            self._sending = True
        else:
            return
        try:
            parts = core.take_outgoing()
            while parts:
                self._flushed_out = core.bytes_out
                for data in _writes(parts):
                    await self._write_whole(data, grace)
                parts = core.take_outgoing()
        finally:
            self._release_writes()

    # -- sending a frame in pieces (AsyncStreamAPI: send_stream, send_file) ----------

    async def _hold_writes(self) -> None:
        while self._sending:  # another task writes: wait for our turn
            sent = self._sent
            if sent is None:
                self._sent = sent = anyio.Event()
            await sent.wait()
            self._check_writable()
        self._sending = True

    def _release_writes(self) -> None:
        self._sending = False
        sent, self._sent = self._sent, None
        if sent is not None:
            sent.set()

    async def _write_parts(self, parts: List[Buffer]) -> None:
        for data in _writes(parts):
            await self._write_whole(data, CLOSE_TIMEOUT)

    async def _write_whole(self, data: Buffer, grace: float) -> None:
        """``stream.send(data)`` shielded from cancellation, for at most ``grace``
        seconds after the caller's deadline, and at most the core's
        ``send_timeout`` in all; then the connection is aborted."""
        deadline = anyio.current_effective_deadline()
        if deadline != math.inf:
            deadline = max(deadline, anyio.current_time()) + grace
        stall = self._core.send_timeout
        stalled_at = math.inf if stall is None else anyio.current_time() + stall
        with anyio.CancelScope(shield=True, deadline=min(deadline, stalled_at)) as scope:
            try:
                await self.stream.send(data)  # type: ignore[arg-type]
            except anyio.ClosedResourceError:
                self._core.outgoing.clear()
                raise ConnectionClosed("the connection was closed") from None
            except (anyio.BrokenResourceError, OSError) as exc:
                self._core.outgoing.clear()
                self._write_error = error = fresh(lost_error(exc))
                raise fresh(error) from None
        if scope.cancelled_caught:
            # The frame still is not out: the peer must never see part of it as a frame.
            self._core.outgoing.clear()
            self.abort()
            await anyio.aclose_forcefully(self.stream)
            if stalled_at < deadline:
                self._write_error = self._core.send_timed_out()
                raise self._core.send_timed_out()
            await anyio.lowlevel.checkpoint()  # the caller's cancellation goes on
            raise TimeoutError("send: the peer did not take the frame; connection aborted")

    async def send_eof(self) -> None:
        """Half-close: flush, then tell the peer nothing more will be sent; keep receiving.

        Raises:
            NotImplementedError: the stream cannot half-close (TLS).
        """
        await self.flush()
        await self.stream.send_eof()

    # -- receiving (AsyncStreamAPI: recv, async for, recv_stream, recv_into) --------

    async def _wait_input(self) -> None:
        """Flush what is held back (the peer may wait for our replies), then
        one ``receive()`` into the core, bounded by the core's deadline."""
        core = self._core
        if core.outgoing and not self._sending and self._write_error is None:
            await self._flush(CLOSE_TIMEOUT)
        if self._reading:
            raise RuntimeError("another task is already waiting for the next message")
        deadline = core.deadline()
        if deadline is not None and anyio.current_time() >= deadline:
            error = core.timed_out()  # reported: the next wait is a whole new period
            if error is not None:
                try:
                    raise error
                finally:
                    error = None
            deadline = core.deadline()  # input arrived meanwhile: the deadline moved
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
