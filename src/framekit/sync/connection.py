"""FramedSocket: whole frames over any connected stream socket.

Design notes
------------
**Receiving.**  Bytes go from the kernel straight into the decoder's buffer:
``sock.recv_into(decoder.get_buffer())`` then ``decoder.buffer_updated(n)``,
which returns every frame completed by those bytes.  One ``recv_into`` of 64
KiB carries about a thousand 64-byte frames, so the cost that matters is what
each ``recv()`` does when a frame is already decoded.  The decoded batch is
kept as a *list iterator* (``self._it``): ``recv()`` takes the next frame with
a bare ``for`` over it, and iteration (``for frame in fs``) chains those
iterators with ``itertools.chain``, which hands out frames without running any
Python code at all until a batch runs out.  Because both share the one
iterator object, mixing ``recv()`` and iteration, or breaking out of a ``for``
loop, never skips or loses a frame.

**Errors keep their place in the stream.**  A ``FramingError`` carries the
frames decoded before the bad bytes (``.frames``).  Those are queued as an
ordinary batch and the error is kept aside; it is raised by the ``recv()``
after the last of them, with ``.frames`` emptied (they were delivered).  After
any error but a corrupted length the decoder is still usable, and frames that
were already buffered behind the bad one are decoded by ``feed(b"")`` before
the next ``recv_into`` (the peer may be waiting for a reply and send nothing
more).  A corrupted decoder refuses all input, so every later ``recv()`` raises
``CorruptedFrame`` again.

**EOF.**  ``recv_into`` returning 0 means the peer closed its side.  The
decoder's ``eof()`` raises ``IncompleteFrame`` if a frame was cut off;
otherwise ``recv()`` raises ``ConnectionClosed`` (iteration just stops), and
keeps doing so.  Over TLS a TCP close without ``close_notify`` (a "ragged
EOF", with the ``ssl`` module's default ``suppress_ragged_eofs=True``) is such
an EOF too: Python's own ``SSLSocket.close()`` sends no ``close_notify``, so
refusing it would make every ordinary close look like an attack.  Only a cut
inside a frame is detected (``IncompleteFrame``); a cut between frames reads
as a clean close.  A timeout (``socket.timeout``) propagates without losing
anything: the partial frame stays in the decoder and the next ``recv()``
continues it.

**Sending.**  ``sendmsg([header, payload])`` sends a large frame in one syscall
without copying the payload; a partial send (a full socket buffer under a
timeout) is finished by a loop over memoryviews.  Below 8 KiB, copying the
payload is cheaper than ``sendmsg``'s iovec setup (measured: encode + sendall
is up to twice as fast for 1 KiB), so small frames go out as
``sendall(codec.encode(payload))``, as do all frames on SSL sockets, which
have no ``sendmsg``.  ``send_many``
encodes all frames into one buffer for one ``sendall``.  A lock makes
``send``/``send_many`` safe to call from several threads (a chat server
broadcasting to a client while that client's thread replies to it); a frame is
never interleaved with another.  ``recv()`` is for one thread at a time.
"""

from __future__ import annotations

import socket
import ssl
import threading
from functools import partial
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence

from .._util import Closing
from ..codecs.interface import Buffer, Codec
from ..core.options import check_serializer, make_codec
from ..errors import ConnectionClosed, FramingError
from ..serializers import Serializer, dumps, loads

__all__ = ["DEFAULT_READ_SIZE", "FramedSocket", "send_vectored"]

#: Default ``read_size``: what each ``recv_into`` asks for.
DEFAULT_READ_SIZE = 256 * 1024
#: Payloads from this size on are sent with ``sendmsg`` (not copied); smaller
#: ones are copied into one buffer, which is faster for them.
VECTORED_MIN_SIZE = 8 * 1024


class FramedSocket(Closing):
    """Send and receive whole frames over a connected stream socket.

    Works over TCP, Unix stream and TLS sockets, blocking or with a timeout.
    Over TLS, a peer's TCP close without ``close_notify`` ends the stream like
    a clean close (``ConnectionClosed``; ``SSLSocket.close()`` sends no
    ``close_notify``); a cut inside a frame still raises ``IncompleteFrame``.

    Args:
        sock: a connected ``SOCK_STREAM`` socket (``ssl.SSLSocket`` too).
            The FramedSocket owns it from now on: ``close()`` closes it.
        codec: any :class:`framekit.codecs.interface.Codec`; ``None`` means
            ``LengthPrefixed()`` (4-byte big-endian length).
        serializer: an object with ``dumps(obj) -> bytes`` and
            ``loads(bytes) -> obj``; with it ``send``/``recv`` move objects.
        read_size: bytes asked of each ``recv_into`` (at least; more when a
            large frame needs it).  256 KiB batches many small frames per
            syscall and keeps the decoder from compacting its buffer for every
            large frame.

    Attributes:
        socket: the wrapped socket (for ``settimeout``, ``shutdown``...).
        codec: the codec in use.
        serializer: the serializer in use, or ``None``.

    Raises:
        ValueError: ``sock`` is not a stream socket.
    """

    __slots__ = (
        "_decoder",
        "_drain",
        "_eof",
        "_error",
        "_it",
        "_read_size",
        "_send_lock",
        "_vectored",
        "codec",
        "serializer",
        "socket",
    )

    def __init__(
        self,
        sock: socket.socket,
        codec: Optional[Codec] = None,
        *,
        serializer: Optional[Serializer] = None,
        read_size: int = DEFAULT_READ_SIZE,
    ) -> None:
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(
                "FramedSocket needs a stream socket (SOCK_STREAM); "
                "use framekit.DatagramSocket for UDP and unixgram"
            )
        self.socket = sock
        self.codec: Codec = make_codec(codec)
        self.serializer = check_serializer(serializer)
        self._decoder = self.codec.decoder()
        self._it: Iterator[bytes] = iter(())
        self._error: Optional[FramingError] = None
        self._drain = False
        self._eof = False
        self._read_size = read_size
        self._send_lock = threading.Lock()
        self._vectored = hasattr(sock, "sendmsg") and not isinstance(sock, ssl.SSLSocket)

    # -- receiving ----------------------------------------------------------

    def recv(self) -> Any:
        """Return the next frame (an object if a serializer is set).

        Returns at once when a frame is already decoded; otherwise reads.

        Raises:
            ConnectionClosed: the peer closed the connection between frames.
            IncompleteFrame: the peer closed it in the middle of a frame.
            FrameTooLarge: the next frame is above the codec's maximum; it was
                skipped, and the next ``recv()`` goes on after it.
            CorruptedFrame: the stream is corrupt; it cannot go on.
            SerializationError: the frame did not deserialize; the next
                ``recv()`` reads the next frame.
            socket.timeout: the socket's timeout expired; nothing is lost.
            OSError: the socket failed (reset, closed...).
        """
        for frame in self._it:  # noqa: B007 - the fastest "next or nothing"
            break
        else:
            if not self._fill():
                raise ConnectionClosed("connection closed by the peer")
            frame = next(self._it)
        if self.serializer is None:
            return frame
        return loads(self.serializer, frame)

    def __iter__(self) -> Iterator[Any]:
        """Yield frames until the peer closes cleanly; raise like :meth:`recv`.

        Breaking out of the loop loses nothing: the next ``recv()`` or loop
        continues with the next frame.
        """
        frames = chain.from_iterable(self._batches())
        if self.serializer is None:
            return frames
        return map(partial(loads, self.serializer), frames)

    def _batches(self) -> Iterator[Iterator[bytes]]:
        while True:
            current = self._it
            yield current
            # ``current`` is exhausted, unless recv() replaced it meanwhile.
            if self._it is current and not self._fill():
                return

    def _fill(self) -> bool:
        """Read until at least one frame is decoded (``self._it``).

        Returns False at a clean EOF.  Raises a pending error once its frames
        were delivered.
        """
        decoder = self._decoder
        while True:
            error = self._error
            if error is not None:
                self._error = None
                raise error
            if self._eof:
                return False
            if self._drain:
                self._drain = False
                batch = self._decode(decoder.feed, b"")
            else:
                n = self.socket.recv_into(decoder.get_buffer(self._read_size))
                if not n:
                    self._eof = True
                    decoder.eof()
                    return False
                batch = self._decode(decoder.buffer_updated, n)
            if batch:
                self._it = iter(batch)
                return True

    def _decode(self, call: Callable[[Any], List[bytes]], arg: Any) -> List[bytes]:
        try:
            return call(arg)
        except FramingError as exc:
            frames, exc.frames = exc.frames, []
            self._error = exc
            self._drain = True  # frames buffered behind the bad one
            return frames

    # -- sending ------------------------------------------------------------

    def send(self, payload: Any, *, prefix: Optional[bytes] = None) -> None:
        """Send one frame carrying ``payload`` (an object if a serializer is set).

        Args:
            payload: bytes-like, or an object if a serializer is set.
            prefix: the bytes before the length field, for a codec with
                ``length_offset`` (the type byte of the Postgres, MQTT and gRPC
                presets); passed on as ``codec.encode(..., prefix=prefix)``.
                ``None`` calls the codec without it.

        Raises:
            ValueError: the codec cannot frame it (too large for the length
                field, for one).
            SerializationError: the serializer failed.
            OSError: the socket failed.  After a timeout or error in the middle
                of a frame the stream is unusable: close it.
        """
        if self.serializer is not None:
            payload = dumps(self.serializer, payload)
        if (
            self._vectored
            and (len(payload) if type(payload) is bytes else memoryview(payload).nbytes)
            >= VECTORED_MIN_SIZE
        ):
            if prefix is None:
                parts = self.codec.encode_parts(payload)
            else:
                parts = self.codec.encode_parts(payload, prefix=prefix)  # type: ignore[call-arg]
            with self._send_lock:
                send_vectored(self.socket, parts)
        else:
            if prefix is None:
                data = self.codec.encode(payload)
            else:
                data = self.codec.encode(payload, prefix=prefix)  # type: ignore[call-arg]
            with self._send_lock:
                self.socket.sendall(data)

    def send_many(self, payloads: Iterable[Any], *, prefix: Optional[bytes] = None) -> None:
        """Send several frames with one ``sendall``.

        ``prefix``, as for :meth:`send`, goes before the length of every frame.

        Raises:
            like :meth:`send`; nothing is sent if encoding any frame fails.
        """
        if self.serializer is not None:
            payloads = [dumps(self.serializer, p) for p in payloads]
        if prefix is None:
            data = self.codec.encode_many(payloads)
        else:
            data = self.codec.encode_many(payloads, prefix=prefix)  # type: ignore[call-arg]
        with self._send_lock:
            self.socket.sendall(data)

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Close the socket.  Safe to call more than once."""
        self.socket.close()

    def __repr__(self) -> str:
        return f"<FramedSocket {self.socket!r} codec={self.codec!r}>"


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
