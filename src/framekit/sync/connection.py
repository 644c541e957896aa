"""FramedSocket: whole messages over any connected stream socket, with blocking calls.

Design notes
------------
A :class:`FramedSocket` moves bytes between a socket and a
:class:`~framekit.core.StreamCore`, which does all the framing (see its
notes): decoding in batches, the order of frames and errors, end of stream,
timeouts, encoding, coalescing, codec switching.  What is left here is the
blocking I/O.

**Receiving.**  Bytes go from the kernel straight into the decoder's buffer:
``sock.recv_into(core.get_buffer())`` then ``core.buffer_updated(n)``.  One
read of 256 KiB carries thousands of small frames, so what matters is what
each ``recv()`` costs when a message is already decoded: a ``for`` over the
core's current batch iterator, nothing else.  Iteration (``for m in fs``)
chains those iterators with ``itertools.chain``, which hands out messages
without running any Python code until a batch runs out.  Because both share
the core's one iterator, mixing ``recv()`` and iteration, or breaking out of
a loop, never skips or loses a message.

**Waiting** happens only in :meth:`_fill`, when the current batch is used up
and the core has nothing more: first the writes held back are flushed (the
peer may be waiting for them), then the socket is read.  With
``idle_timeout``/``frame_timeout`` the read first waits (``poll``) at most until
the core's deadline, and a passed deadline raises the core's
``TimeoutError``; nothing received is lost, and the next ``recv()`` goes on.
A timeout of the socket itself (``settimeout``) propagates the same way.

**Sending and coalescing.**  ``send()`` encodes through the core.  A message
sent by the reading thread while more decoded messages of the current batch
are waiting (a server answering a pipelined batch) is held back, and all of
the batch's replies go out in one ``sendmsg`` when the reader comes back for
input, or when a send finds the batch used up; any other send goes out at
once, after what was held back.  So a request/response peer never waits for a
reply, and a pipelined one costs one system call per read instead of one per
frame.  ``flush()`` and ``close()`` send what is held back too.  A lock makes
``send``/``send_many`` safe from several threads (a chat server
broadcasting to a client while that client's thread replies to it); a frame
is never interleaved with another.  ``recv()`` is for one thread at a time.
``sendmsg`` sends a large frame's header and payload without copying the
payload; a partial send (a full socket buffer under a timeout) is finished by
a loop over memoryviews.  SSL sockets have no ``sendmsg``: their buffers are
joined.

**TLS end of stream.**  Over TLS a TCP close without ``close_notify`` (a
"ragged EOF", with the ``ssl`` module's default ``suppress_ragged_eofs=True``)
is a clean end like any other: Python's own ``SSLSocket.close()`` sends no
``close_notify``, so refusing it would make every ordinary close look like an
attack.  Only a cut inside a frame is detected (``IncompleteFrame``).
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
from itertools import chain
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Union

from .._sockets import bound_sends
from .._util import Closing
from ..codecs.interface import Buffer, Codec
from ..core.api import StreamAPI
from ..core.frames import FrameStream, OutgoingFrame, check_room, place_whole
from ..core.options import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_READ_SIZE,
    check_max_stream_size,
    check_serializer,
    check_timeout,
    make_codec,
)
from ..core.stream import StreamCore
from ..errors import ConnectionClosed
from ..serializers import Serializer

__all__ = ["FramedSocket", "send_vectored"]

#: Most buffers one ``sendmsg`` takes (Linux's ``IOV_MAX``).
_IOV_MAX = 1024


class FramedSocket(StreamAPI, Closing):
    """Send and receive whole messages over a connected stream socket.

    Works over TCP, Unix stream and TLS sockets, blocking or with a timeout.

    Args:
        sock: a connected ``SOCK_STREAM`` socket (``ssl.SSLSocket`` too).
            The FramedSocket owns it from now on: ``close()`` closes it.
        codec: any :class:`framekit.Codec`; ``None`` means ``LengthPrefixed()``
            (4-byte big-endian length).
        serializer: an object with ``dumps(obj) -> bytes`` and
            ``loads(bytes) -> obj``; with it ``send``/``recv`` move objects.
        read_size: bytes asked of each ``recv_into`` (at least; more when a
            large frame needs it).
        idle_timeout: ``recv()`` raises ``TimeoutError`` when nothing arrives
            for that many seconds (None: never).
        frame_timeout: ``recv()`` raises ``TimeoutError`` when a frame whose
            first byte arrived that many seconds ago is still incomplete.
        max_stream_size: frames above the codec's ``max_frame_size`` and up
            to this size (the codec's frame length, header included) can be
            read with :meth:`recv_stream` and sent with :meth:`send_stream`;
            ``recv()`` refuses them with ``FrameTooLarge``.  None: streams are
            bounded by ``max_frame_size`` too.

    Attributes:
        socket: the wrapped socket (for ``settimeout``, ``shutdown``...).

    Raises:
        ValueError: ``sock`` is not a stream socket, or a bad timeout.
        TypeError: ``codec`` or ``serializer`` lacks the needed methods.
    """

    __slots__ = ("_bounded", "_core", "_poll", "_reader", "_send_lock", "_vectored", "socket")

    def __init__(
        self,
        sock: socket.socket,
        codec: Optional[Codec] = None,
        *,
        serializer: Optional[Serializer] = None,
        read_size: int = DEFAULT_READ_SIZE,
        idle_timeout: Optional[float] = None,
        frame_timeout: Optional[float] = None,
        max_stream_size: Optional[int] = None,
    ) -> None:
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(
                "FramedSocket needs a stream socket (SOCK_STREAM); "
                "use framekit.DatagramSocket for UDP and unixgram"
            )
        self.socket = sock
        self._core = StreamCore(
            make_codec(codec),
            check_serializer(serializer),
            read_size=read_size,
            idle_timeout=check_timeout("idle_timeout", idle_timeout),
            frame_timeout=check_timeout("frame_timeout", frame_timeout),
        )
        self._core.set_stream_limit(check_max_stream_size(max_stream_size))
        self._poll: Optional[Any] = None
        self._reader = 0  # the thread that last waited for input
        self._send_lock = threading.Lock()
        self._vectored = hasattr(sock, "sendmsg") and not isinstance(sock, ssl.SSLSocket)
        #: Sends wait at most core.send_timeout for a peer that takes nothing.
        self._bounded = bound_sends(sock, self._core.send_timeout)

    # -- what it is -------------------------------------------------------------

    # -- receiving ----------------------------------------------------------------

    def recv(self) -> Any:
        """Return the next message (an object if a serializer is set).

        Returns at once when a message is already decoded; otherwise reads.

        Raises:
            ConnectionClosed: the peer closed the connection between frames.
            IncompleteFrame: the peer closed it in the middle of a frame.
            FrameTooLarge: the next frame is above the codec's maximum; it was
                skipped, and the next ``recv()`` goes on after it.
            CorruptedFrame: the stream is corrupt; it cannot go on.
            SerializationError: the frame did not deserialize; the next
                ``recv()`` reads the next frame.
            TimeoutError: ``idle_timeout`` or ``frame_timeout`` expired (or
                the socket's own timeout, ``socket.timeout``); nothing is lost.
            OSError: the socket failed (reset, closed...).
        """
        for message in self._core.messages:
            return message
        if self._core.stream_kept >= 0:
            return self._recv_kept()
        self._fill()
        for message in self._core.messages:
            return message
        raise AssertionError("unreachable: a batch was made current")  # pragma: no cover

    def _recv_kept(self) -> Any:
        """``recv()`` of a frame that ``recv_into`` left open: read it whole."""
        length = self._core.take_kept_stream()
        frame = bytearray(length)
        view = memoryview(frame)
        got = 0
        while got < length:
            got += self._stream_readinto(view[got:])
        return self._core.message(bytes(frame))

    def recv_batch(self) -> List[Any]:
        """Return every message that has arrived and is not handed out yet, as a
        list: at least one, reading like :meth:`recv` when there is none.

        A pipelining peer's requests come a read's worth at a time, so a
        server can answer them all with one ``send_many(replies)``: one
        encoding call and one system call for the batch.  Replies sent one by
        one (``send``) go out each at once: the handler may do anything before
        it asks for more, so nothing waits for that.  Messages, batches and
        streams mix call by call; a batch's messages are all decoded with the
        codec of their read, so a protocol that switches codecs reads with
        ``recv()`` up to the switch.

        Raises:
            As :meth:`recv`: an error comes after every message received
            before it (in an earlier list), never with them; a message that
            does not deserialize ends its list, and the next call raises its
            ``SerializationError``.
        """
        core = self._core
        batch = core.take_messages()
        if batch:
            return batch
        if core.stream_kept >= 0:
            return [self._recv_kept()]
        self._fill()
        return core.take_messages()

    def batches(self) -> Iterator[List[Any]]:
        """Yield batches of messages (as :meth:`recv_batch` returns them) until
        the peer closes cleanly: ``for batch in conn.batches():
        conn.send_many([handle(m) for m in batch])``.

        Breaking out of the loop loses nothing.
        """
        while True:
            try:
                batch = self.recv_batch()
            except ConnectionClosed:
                return
            yield batch

    def __iter__(self) -> Iterator[Any]:
        """Yield messages until the peer closes cleanly; raise like :meth:`recv`.

        Breaking out of the loop loses nothing: the next ``recv()`` or loop
        continues with the next message.
        """
        return chain.from_iterable(self._current_batches())

    def _current_batches(self) -> Iterator[Iterator[Any]]:
        core = self._core
        while True:
            current = core.messages
            yield current
            # ``current`` is used up, unless recv() made another batch current meanwhile.
            if core.messages is current:
                try:
                    self._fill()
                except ConnectionClosed:
                    return

    def _fill(self) -> None:
        """Wait until the core has messages: flush held-back writes, then read."""
        core = self._core
        self._reader = threading.get_ident()
        while not core.next_batch():
            if core.outgoing:
                self.flush()
            self._read()

    def _read(self) -> None:
        core = self._core
        sock = self.socket
        wait = core.wait_time()
        if wait is not None and not self._wait_readable(wait):
            error = core.timed_out()
            if error is not None:
                raise error
            return  # the deadline moved (input arrived meanwhile): wait again
        try:
            n = sock.recv_into(core.get_buffer())
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise core.lost_error(exc) from None
        if n:
            core.buffer_updated(n)
        else:
            core.receive_eof()

    def _wait_readable(self, seconds: float) -> bool:
        sock = self.socket
        if seconds <= 0:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True  # decrypted bytes already wait in the TLS layer
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
        return bool(self._poll.poll(seconds * 1000.0))

    # -- frames as streams -----------------------------------------------------------

    def recv_stream(self, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> FrameStream:
        """Return the next frame as a stream: its ``length``, then its payload
        in chunks of at most ``chunk_size`` bytes (see :class:`FrameStream`).

        Use it with ``with``: leaving the block early skips the rest of the
        frame, and the connection goes on.  Messages and streams mix frame by
        frame: ``recv()`` after a stream reads the next frame.  No serializer
        applies to a stream.

        Raises:
            TypeError: the codec cannot stream (only ``LengthPrefixed`` can).
            FrameTooLarge: the frame is above ``max_stream_size`` (or
                ``max_frame_size`` when no ``max_stream_size`` was given); it
                is skipped before a byte of its payload is read.
            ConnectionClosed, IncompleteFrame, FramingError, TimeoutError,
            OSError: as :meth:`recv`.
        """
        first = self._open_stream()
        if isinstance(first, bytes):
            return FrameStream(len(first), whole=first, chunk_size=chunk_size)
        return FrameStream(
            first,
            read=self._stream_read,
            readinto=self._stream_readinto,
            discard=self._core.stream_discard,
            chunk_size=chunk_size,
        )

    def recv_into(self, buffer: Buffer) -> int:
        """Read the next frame's payload into ``buffer`` (any writable bytes-like
        object: a ``bytearray``, a ``memoryview``, an ``mmap``, a numpy array);
        return its size.

        The payload goes from the socket straight into ``buffer`` when it was
        not received yet.  No serializer applies.

        Raises:
            FrameTooLarge: the frame does not fit ``buffer``; it stays unread
                (``recv()``, ``recv_stream()`` or a larger ``recv_into()`` takes it).
            As :meth:`recv_stream` otherwise.
        """
        view = memoryview(buffer).cast("B")
        first = self._open_stream()
        if isinstance(first, bytes):
            return place_whole(self._core, first, view)
        check_room(self._core, first, view)
        got = 0
        while got < first:
            got += self._stream_readinto(view[got:first])
        return first

    def _open_stream(self) -> Union[bytes, int]:
        core = self._core
        self._reader = threading.get_ident()
        while True:
            first = core.open_stream()
            if first is not None:
                return first
            if core.outgoing:
                self.flush()
            self._read()

    def _wait_for_stream(self) -> None:
        """Before reading a stream's payload from the socket: honour the deadline."""
        wait = self._core.wait_time()
        while wait is not None and not self._wait_readable(wait):
            error = self._core.timed_out()
            if error is not None:
                raise error
            wait = self._core.wait_time()

    def _stream_read(self, size: int) -> bytes:
        core = self._core
        data = core.stream_read(size)
        if data:
            return data
        self._wait_for_stream()
        data = self.socket.recv(min(size, core.stream_remaining))
        if not data:
            self._stream_cut()
        core.stream_advance(len(data))
        return data

    def _stream_readinto(self, view: memoryview) -> int:
        core = self._core
        data = core.stream_read(len(view))
        if data:
            view[: len(data)] = data
            return len(data)
        self._wait_for_stream()
        n = self.socket.recv_into(view[: core.stream_remaining])
        if not n:
            self._stream_cut()
        core.stream_advance(n)
        return n

    def _stream_cut(self) -> None:
        """The peer closed the connection inside a stream: IncompleteFrame."""
        core = self._core
        core.receive_eof()
        core.stream_cut()

    def send_stream(
        self, length: int, chunks: Iterable[Buffer], *, prefix: Optional[Buffer] = None
    ) -> None:
        """Send one frame whose ``length``-byte payload comes in pieces.

        The header announces ``length``; ``chunks`` (an iterable of bytes-like
        objects) are sent as they come, so memory stays bounded whatever the
        frame's size.

        Raises:
            TypeError: the codec cannot announce a length first (only
                ``LengthPrefixed`` can).
            FrameTooLarge: ``length`` is above ``max_stream_size`` (and the
                codec's ``max_frame_size``); nothing was sent.
            ValueError: the chunks hold more or fewer bytes than ``length``:
                the frame could not be sent whole, so the connection is
                closed (the peer sees ``IncompleteFrame``, never a misaligned
                frame); raised before the excess is sent.
            OSError: the socket failed.
        """
        with self._send_lock:
            self._send_pieces(length, prefix, chunks, None)

    def send_file(
        self, file: Any, length: Optional[int] = None, *, prefix: Optional[Buffer] = None
    ) -> int:
        """Send a file's contents, from its current position, as one frame.

        Uses ``socket.sendfile`` (the kernel copies the file to the socket)
        on plain TCP and Unix sockets; reads and sends otherwise (TLS).

        Args:
            file: a file object opened in binary mode.
            length: bytes to send; None: the rest of the file.

        Returns:
            The payload's size.

        Raises:
            As :meth:`send_stream` (the file shorter than ``length`` is
            "fewer bytes than announced").
        """
        if length is None:
            length = os.fstat(file.fileno()).st_size - file.tell()
        with self._send_lock:
            self._send_pieces(length, prefix, None, file)
        return length

    def _send_pieces(
        self, length: int, prefix: Optional[Buffer], chunks: Optional[Iterable[Buffer]], file: Any
    ) -> None:
        """Send one frame in pieces: ``chunks``, or ``length`` bytes of ``file``
        (``socket.sendfile`` on plain TCP and Unix sockets).  Holds the send lock."""
        core = self._core
        first = core.start_stream_out(length, prefix)  # raises: nothing was sent
        frame = OutgoingFrame(length)
        try:
            self._write_parts(first)
            if chunks is not None:
                for chunk in chunks:
                    frame.take(chunk)
                    self.socket.sendall(chunk)
            elif self._vectored and length:
                frame.sent = self._sendfile(file, length)
            else:
                while frame.sent < length:
                    chunk = file.read(min(DEFAULT_CHUNK_SIZE, length - frame.sent))
                    if not chunk:
                        break
                    frame.take(chunk)
                    self.socket.sendall(chunk)
            frame.finish()
        except BaseException as exc:
            core.end_stream_out(frame.sent)
            self._abort()
            if self._bounded and isinstance(exc, _STALLED):
                raise core.send_timed_out() from None
            raise
        core.end_stream_out(frame.sent)

    def _sendfile(self, file: Any, length: int) -> int:
        """Up to ``length`` bytes of ``file`` from its position, copied by the
        kernel (``os.sendfile``); the file's position moves past them."""
        try:
            source = file.fileno()
        except (AttributeError, OSError, ValueError):  # not a real file (io.UnsupportedOperation)
            source = -1
        if source < 0 or not hasattr(os, "sendfile") or self.socket.gettimeout() is not None:
            return self.socket.sendfile(file, file.tell(), length)
        start = file.tell()
        sent = 0
        try:
            while sent < length:
                n = os.sendfile(self.socket.fileno(), source, start + sent, length - sent)
                if not n:
                    break  # the file ended
                sent += n
        finally:
            file.seek(start + sent)
        return sent

    def _abort(self) -> None:
        """A frame could not be sent whole: close, so the peer never reads it misaligned."""
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._core.take_outgoing()
        self.socket.close()

    # -- sending --------------------------------------------------------------------

    def send(self, payload: Any, *, prefix: Optional[Buffer] = None) -> None:
        """Send one frame carrying ``payload`` (an object if a serializer is set).

        Sent at once, unless the reading thread sends it while more decoded
        messages of the current batch wait: then it goes out with the
        batch's other replies, in one system call, before the reader waits
        for input (see the module notes).

        Args:
            payload: bytes-like, or an object if a serializer is set.
            prefix: the bytes before the length field, for a codec with
                ``length_offset`` (the type byte of the Postgres, MQTT and gRPC
                presets).  ``None`` calls the codec without it.

        Raises:
            FrameTooLarge: the frame is above the codec's maximum.
            ValueError: the codec cannot frame it.
            TypeError: ``payload`` is not bytes-like (a ``str``: encode it, or
                set a serializer).
            SerializationError: the serializer failed.
            OSError: the socket failed.  After a timeout or error in the middle
                of a frame the stream is unusable: close it.
            TimeoutError: the peer made no room for the frame within the
                shorter of ``idle_timeout`` and ``frame_timeout`` (it does not
                read); the connection was aborted.
        """
        core = self._core
        with self._send_lock:
            if core.write(payload, prefix) and threading.get_ident() == self._reader:
                return
            self._flush_locked()

    def send_many(self, payloads: Iterable[Any], *, prefix: Optional[Buffer] = None) -> None:
        """Send several frames with one system call.

        ``prefix``, as for :meth:`send`, goes before the length of every frame.

        Raises:
            like :meth:`send`; nothing is sent if encoding any frame fails.
        """
        core = self._core
        with self._send_lock:
            core.write_many(payloads, prefix)
            if core.coalescing and threading.get_ident() == self._reader:
                return
            self._flush_locked()

    def flush(self) -> None:
        """Send what is held back now (see :meth:`send`).

        Raises:
            OSError: the socket failed.
        """
        with self._send_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        try:
            self._write_parts(self._core.take_outgoing())
        except _STALLED:
            if not self._bounded:
                raise
            self._abort()  # part of a frame may be out: the peer must never read on
            raise self._core.send_timed_out() from None

    def _write_parts(self, parts: List[Buffer]) -> None:
        if not parts:
            return
        if len(parts) == 1:
            self.socket.sendall(parts[0])
        elif self._vectored:
            for i in range(0, len(parts), _IOV_MAX):
                send_vectored(self.socket, parts[i : i + _IOV_MAX])
        else:
            self.socket.sendall(b"".join(parts))

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Send what is held back, then close the socket.  Safe to call more than once."""
        if self._core.outgoing and self.socket.fileno() >= 0:
            try:
                self.flush()
            except OSError:
                pass  # the peer is gone: nothing more can reach it
        self._core.discard_received()
        self.socket.close()

    def __repr__(self) -> str:
        return f"<FramedSocket {self.socket!r} codec={self.codec!r}>"


#: What a send bounded by ``SO_SNDTIMEO`` raises when the peer took nothing.
_STALLED = (BlockingIOError, ssl.SSLWantWriteError)


def send_vectored(sock: socket.socket, parts: Sequence[Buffer]) -> None:
    """Send the concatenation of ``parts`` with ``sendmsg``, without copying them.

    Loops until every byte is sent (a socket with a timeout may send part).
    """
    total = 0
    for part in parts:
        total += len(part) if type(part) is bytes else memoryview(part).nbytes
    sent = sock.sendmsg(parts)
    if sent == total:
        return
    views = [memoryview(part).cast("B") for part in parts]
    while True:
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            del views[0]
        if not views:
            return
        views[0] = views[0][sent:]
        sent = sock.sendmsg(views)
