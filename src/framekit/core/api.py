"""The part of every connection's public API that is the same on every transport.

Design notes
------------
A blocking ``FramedSocket``, an asyncio ``Connection`` and an anyio
``Connection`` differ in how they wait, never in what they are: their codec,
serializer, queue state, codec switching.  Those attributes read and write
the connection's core, and are written once, here, as mixins each transport's
class inherits (:class:`StreamAPI`, :class:`DatagramAPI`).  They declare no
slots of their own, so a class with ``__slots__`` keeps them; the class sets
``self._core``.
"""

from __future__ import annotations

import os
from typing import Any, AsyncIterable, AsyncIterator, Iterable, List, Optional, Tuple, Union

from ..codecs.interface import Buffer, Codec
from ..errors import ConnectionClosed, FramingError, SerializationError
from ..serializers import Serializer
from .datagram import DatagramCore, destination
from .frames import AsyncFrameStream, OutgoingFrame, check_room, place_whole
from .options import DEFAULT_CHUNK_SIZE, check_serializer, make_codec
from .stream import StreamCore

__all__ = ["AsyncDatagramAPI", "AsyncStreamAPI", "DatagramAPI", "StreamAPI"]


class StreamAPI:
    """What a stream connection is, on every transport (a mixin: ``self._core``)."""

    __slots__ = ()
    _core: StreamCore

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

    @property
    def queued_frames(self) -> int:
        """Decoded messages waiting for ``recv()``."""
        return self._core.queued_frames

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting for ``recv()``: decoded, held back, or partial frames."""
        return self._core.queued_bytes

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


class DatagramAPI:
    """What a datagram socket is, on every transport (a mixin: ``self._core``)."""

    __slots__ = ()
    _core: DatagramCore

    @property
    def codec(self) -> Codec:
        """The codec of every datagram."""
        return self._core.codec

    @property
    def serializer(self) -> Optional[Serializer]:
        """The serializer in use, or None; may be replaced at any time."""
        return self._core.serializer

    @serializer.setter
    def serializer(self, serializer: Optional[Serializer]) -> None:
        self._core.serializer = check_serializer(serializer)

    @property
    def max_datagram_size(self) -> int:
        """The largest datagram sent or accepted."""
        return self._core.max_datagram_size

    @property
    def core(self) -> DatagramCore:
        """The sans-IO datagram core (documented internal: counters, queue state)."""
        return self._core

    @property
    def dropped(self) -> int:
        """Datagrams dropped because too many frames waited unread."""
        return self._core.dropped

    @property
    def queued_frames(self) -> int:
        """Decoded frames waiting for ``recv()``."""
        return self._core.queued_frames


class AsyncStreamAPI(StreamAPI):
    """What an asyncio or anyio stream connection does, over what its transport gives.

    The transport's class provides:

    * ``async _wait_input()``: flush the writes held back, then wait for input
      into the core (at most until the core's deadline, then raise its
      ``TimeoutError``);
    * ``_input_taken()``: the core handed input out (resume reading if paused);
    * ``_check_writable()``: raise if the connection cannot send;
    * ``async _write_parts(parts)``: write buffers in order, whole, and wait
      while the peer is slow;
    * ``_hold_writes()``/``_release_writes()``: keep other tasks' writes out
      of a frame being sent in pieces (after ``_check_writable``);
    * ``abort()``;
    * ``_reads_into``: True where reads go into ``core.get_buffer()``.
    """

    __slots__ = ()

    #: Whether the transport reads into the buffer ``core.get_buffer()`` gives
    #: (then ``recv_into`` offers the caller's buffer: no copy).
    _reads_into = False
    #: Whether replies sent after ``recv_batch()`` may be held back: only where the
    #: transport flushes on its own soon after (see ``StreamCore.take_messages``).
    _hold_batch_replies = False

    async def _wait_input(self) -> None:
        raise NotImplementedError

    def _input_taken(self) -> None:
        pass

    def _check_writable(self) -> None:
        raise NotImplementedError

    async def _write_parts(self, parts: List[Buffer]) -> None:
        raise NotImplementedError

    async def _hold_writes(self) -> None:
        pass

    def _release_writes(self) -> None:
        pass

    def abort(self) -> None:
        raise NotImplementedError

    # -- receiving ------------------------------------------------------------------

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
        while not core.next_batch():
            await self._wait_input()
        self._input_taken()

    async def recv_batch(self) -> List[Any]:
        """Return every message that has arrived and is not handed out yet, as a
        list: at least one, waiting for it like :meth:`recv` when there is none.

        A pipelining peer's requests come a read's worth at a time, so a
        server can answer them all with one ``send_many(replies)``: one
        encoding call and one write for the batch.  Replies sent one by one
        (``send``) go out together at the end of the event loop's iteration
        on asyncio, and each at once on anyio (which has no such moment to
        wait for): use ``send_many``.  Messages, batches and streams mix call
        by call; a batch's messages are all decoded with the codec of their
        read, so a protocol that switches codecs reads with ``recv()`` up to
        the switch.

        Raises:
            As :meth:`recv`: an error comes after every message received
            before it (in an earlier list), never with them; a message that
            does not deserialize ends its list, and the next call raises its
            ``SerializationError``.
        """
        core = self._core
        hold = self._hold_batch_replies
        batch = core.take_messages(hold)
        if batch:
            return batch
        if core.stream_kept >= 0:
            return [await self._recv_kept()]
        await self._next_batch()
        batch = core.take_messages(hold)
        self._input_taken()  # the batch is the caller's now: read again if paused
        return batch

    def batches(self) -> AsyncIterator[List[Any]]:
        """Iterate over batches of messages (as :meth:`recv_batch` returns them)
        until a clean end: ``async for batch in conn.batches(): await
        conn.send_many([handle(m) for m in batch])``.

        Breaking out of the loop loses nothing.
        """
        return self._batches()

    async def _batches(self) -> AsyncIterator[List[Any]]:
        while True:
            try:
                batch = await self.recv_batch()
            except ConnectionClosed:
                return
            yield batch

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

    # -- frames as streams ------------------------------------------------------------

    async def recv_stream(self, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncFrameStream:
        """Return the next frame as a stream: its ``length``, then its payload
        in chunks of at most ``chunk_size`` bytes (``async for``; see
        :class:`~framekit.core.frames.AsyncFrameStream`).

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
            readinto=self._stream_readinto,
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
            return place_whole(self._core, first, view)
        check_room(self._core, first, view)
        got = 0
        while got < first:
            got += await self._stream_readinto(view[got:first])
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
        while True:
            data = core.stream_read(size)
            if data:
                self._input_taken()
                return data
            if core.input_ended:
                core.stream_cut()
            await self._wait_input()

    async def _stream_readinto(self, view: memoryview) -> int:
        """Some of the open stream's payload into ``view`` (no longer than what is
        left of it): what is buffered, else straight from the transport's reads
        where it reads into a buffer it is given (``_reads_into``)."""
        core = self._core
        while True:
            data = core.stream_read(len(view))
            if data:
                view[: len(data)] = data
                self._input_taken()
                return len(data)
            if core.input_ended:
                core.stream_cut()
            if not self._reads_into:
                await self._wait_input()
                continue
            core.offer_sink(view)
            try:
                await self._wait_input()
            finally:
                got = core.take_sink()
            if got:
                return got

    # -- sending a frame in pieces ----------------------------------------------------

    async def send_stream(
        self,
        length: int,
        chunks: Union[Iterable[Buffer], AsyncIterable[Buffer]],
        *,
        prefix: Optional[Buffer] = None,
    ) -> None:
        """Send one frame whose ``length``-byte payload comes in pieces: an
        iterable or an async iterable of bytes-like chunks, sent as they come
        (waiting while the peer is slow), so memory stays bounded whatever the
        frame's size.  Frames other tasks send meanwhile go out after it.

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
        if hasattr(chunks, "__aiter__"):
            source: Any = chunks
        else:
            source = _as_async(chunks)
        await self._send_pieces(length, prefix, source, None)

    async def send_file(
        self, file: Any, length: Optional[int] = None, *, prefix: Optional[Buffer] = None
    ) -> int:
        """Send a file's contents, from its current position, as one frame.

        Where the transport can (asyncio's own loop, plain TCP and Unix), the
        kernel copies the file to the socket (``sendfile``); elsewhere the file
        is read and sent in chunks.

        Args:
            file: a file object opened in binary mode.
            length: bytes to send; None: the rest of the file.

        Returns:
            The payload's size.

        Raises:
            As :meth:`send_stream` (a file shorter than ``length`` is "fewer
            bytes than announced").
        """
        if length is None:
            length = os.fstat(file.fileno()).st_size - file.tell()
        await self._send_pieces(length, prefix, None, file)
        return length

    async def _send_pieces(
        self,
        length: int,
        prefix: Optional[Buffer],
        chunks: Optional[AsyncIterable[Buffer]],
        file: Any,
    ) -> None:
        self._check_writable()
        await self._hold_writes()
        core = self._core
        frame = OutgoingFrame(length)
        try:
            first = core.start_stream_out(length, prefix)  # raises: nothing was sent
            try:
                await self._write_parts(first)
                if chunks is not None:
                    async for chunk in chunks:
                        await self._send_chunk(frame, chunk)
                elif length:
                    await self._send_file_body(frame, file)
                frame.finish()
            except BaseException:
                core.end_stream_out(frame.sent)
                self.abort()
                raise
            core.end_stream_out(frame.sent)
            await self._write_parts(core.take_outgoing())  # frames sent meanwhile
        finally:
            self._release_writes()

    async def _send_chunk(self, frame: OutgoingFrame, chunk: Buffer) -> None:
        frame.take(chunk)
        # A transport may keep what it could not write at once: only bytes by reference.
        await self._write_parts([chunk if type(chunk) is bytes else bytes(chunk)])

    async def _send_file_body(self, frame: OutgoingFrame, file: Any) -> None:
        """The file's payload, read and sent in chunks (a transport may do better)."""
        while frame.sent < frame.length:
            chunk = file.read(min(DEFAULT_CHUNK_SIZE, frame.length - frame.sent))
            if not chunk:
                break
            await self._send_chunk(frame, chunk)


async def _as_async(chunks: Iterable[Buffer]) -> AsyncIterator[Buffer]:
    for chunk in chunks:
        yield chunk


class AsyncDatagramAPI(DatagramAPI):
    """What an asyncio or anyio datagram endpoint does, over what its transport gives.

    The transport's class provides ``_check_open()`` (raise ``ConnectionClosed``
    when closed), ``async _send_datagrams(datagrams, sockaddr)`` (``sockaddr``
    None: the connected peer), ``async _wait_datagram()`` (wait until the core
    may have something, raise ``ConnectionClosed`` when closed) and
    ``remote_address``; it sets ``last_receive_error``.
    """

    last_receive_error: Optional[BaseException]

    def _check_open(self) -> None:
        raise NotImplementedError

    async def _send_datagrams(self, datagrams: Iterable[bytes], sockaddr: Any) -> None:
        raise NotImplementedError

    async def _wait_datagram(self) -> None:
        raise NotImplementedError

    @property
    def remote_address(self) -> Any:
        """The connected peer's address, or None."""
        raise NotImplementedError

    async def _sendto(self, datagrams: Iterable[bytes], address: Any) -> None:
        self._check_open()
        await self._send_datagrams(datagrams, destination(address, self.remote_address))

    async def send(self, payload: Any, *, prefix: Optional[Buffer] = None) -> None:
        """Send one frame, as one datagram, to the connected peer.

        ``prefix``: the bytes before the length field, for a codec with
        ``length_offset`` (``None`` calls the codec without it).

        Raises:
            FrameTooLarge: the frame does not fit one datagram.
            OSError: ``EDESTADDRREQ`` if the endpoint is not connected.
            ConnectionClosed: the endpoint was closed.
            SerializationError: the serializer failed.
        """
        await self._sendto((self._core.encode(payload, prefix),), None)

    async def sendto(self, payload: Any, address: Any, *, prefix: Optional[Buffer] = None) -> None:
        """Send one frame, as one datagram, to ``address``.

        Args:
            payload: bytes-like, or an object with a serializer.
            address: a socket address (as :meth:`recvfrom` returns), an
                address URL, or an :class:`~framekit.addresses.Address`.
            prefix: as for :meth:`send`.

        Raises:
            As :meth:`send`.
        """
        await self._sendto((self._core.encode(payload, prefix),), address)

    async def send_many(
        self, payloads: Iterable[Any], address: Any = None, *, prefix: Optional[Buffer] = None
    ) -> None:
        """Send frames packed into as few datagrams as ``max_datagram_size`` allows.

        Args:
            payloads: the frames' payloads, in order.
            address: the destination; None for the connected peer.
            prefix: as for :meth:`send`, before every frame's length.

        Raises:
            As :meth:`send`; nothing is sent if any frame does not fit a datagram.
        """
        await self._sendto(self._core.encode_many(payloads, prefix), address)

    async def recvfrom(self) -> Tuple[Any, Any]:
        """Return the next message and its sender's address.

        Raises:
            CorruptedFrame: a malformed datagram (``.address`` is its sender);
                the endpoint stays usable.
            ConnectionClosed: the endpoint was closed.
            OSError: an error the socket reported (e.g. ``ConnectionRefusedError``
                after sending to a closed port).
            SerializationError: the frame did not deserialize.
            RuntimeError: another task is already waiting.
        """
        core = self._core
        while not core.ready:
            await self._wait_datagram()
        try:
            return core.next_message()
        except (FramingError, SerializationError, OSError) as exc:
            self.last_receive_error = exc
            raise

    async def recv(self) -> Any:
        """Return the next message, from whichever sender.

        Raises:
            As :meth:`recvfrom`.
        """
        message, _ = await self.recvfrom()
        return message

    def __aiter__(self) -> AsyncDatagramAPI:
        return self

    async def __anext__(self) -> Any:
        """The next message (as :meth:`recv`), until the endpoint is closed."""
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None
