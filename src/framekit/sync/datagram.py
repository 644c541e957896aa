"""DatagramSocket: whole frames in UDP and Unix datagrams.

Design notes
------------
A datagram is delivered whole or not at all, so it needs no reassembly across
reads, but it must *parse* whole: each datagram carries complete frames in
the codec's format (one or more; an empty datagram, none: see below), and
nothing else.  Every datagram gets a fresh
``codec.decoder()``: ``feed(datagram)`` then ``eof()``.  Any ``FramingError``
(a bad length, a frame cut short, trailing bytes, an oversized frame) becomes a
``CorruptedFrame`` whose ``.address`` is the sender; the whole datagram is
dropped (its ``.frames`` is empty: a datagram that lies about one length is not
trusted for the others) and the socket goes on with the next datagram.  A
fresh decoder per datagram means one bad datagram can never poison the next.

**Truncation is detected, never silently cut.**  The kernel truncates a
datagram larger than the receive buffer.  We receive into a buffer one byte
larger than ``max_datagram_size``: a datagram that fills it is too large, and
is reported as truncated instead of being decoded.  The default limit is 65507
bytes for UDP (the largest IPv4 UDP payload) and 64 KiB for Unix datagrams.

**Sending** checks the size first: a frame larger than ``max_datagram_size``
raises ``FrameTooLarge`` before anything is sent.  ``send_many`` packs frames
greedily into as few datagrams as the limit allows (each frame stays whole in
one datagram), which a receiver reads back one frame per ``recv()``.  These
sending rules are shared with the asyncio endpoints (:mod:`framekit.core.datagram`).

Frames decoded from one datagram are queued, with their sender, so a datagram
packed by ``send_many`` feeds several ``recv()`` calls; ``buffered`` tells a
caller (the datagram server) whether a frame is ready without reading.

**An empty datagram carries no frame** (framekit never sends one: every frame
has bytes, and ``send_many`` of nothing sends nothing).  It is not an error:
``recv()`` skips it and waits for the next datagram, as the asyncio endpoint
does.  The datagram server reads one datagram per wake-up
(``_read_datagram()``, which may queue no frame), so a flood of empty datagrams
cannot keep it in ``recv()`` where ``shutdown()`` could not reach it.
"""

from __future__ import annotations

import socket
from collections import deque
from itertools import repeat
from typing import Any, Deque, Iterable, Iterator, List, Optional, Tuple

from .._util import Closing
from ..codecs.interface import Codec
from ..core.datagram import encode_datagram, pack_datagrams, sockaddr_of
from ..core.options import check_serializer, make_codec
from ..errors import CorruptedFrame, FramingError
from ..serializers import Serializer, loads

__all__ = ["MAX_UDP_DATAGRAM", "MAX_UNIX_DATAGRAM", "DatagramSocket"]

#: Largest UDP payload over IPv4 (65535 - 8-byte UDP header - 20-byte IP header).
MAX_UDP_DATAGRAM = 65507
#: Default limit for Unix datagrams (the kernel allows more, up to the socket buffer).
MAX_UNIX_DATAGRAM = 64 * 1024


class DatagramSocket(Closing):
    """Send and receive frames in datagrams (``udp://``, ``unixgram://``).

    Args:
        sock: a ``SOCK_DGRAM`` socket, connected (for :meth:`send` and
            :meth:`recv` from one peer) or bound (for :meth:`recvfrom` and
            :meth:`sendto`).  The DatagramSocket owns it from now on.
        codec: any :class:`framekit.codecs.interface.Codec`; ``None`` means
            ``LengthPrefixed()``.
        serializer: an object with ``dumps``/``loads``; with it frames are objects.
        max_datagram_size: the largest datagram sent or accepted; default
            65507 for UDP, 65536 for Unix sockets.

    Raises:
        ValueError: ``sock`` is not a datagram socket, or a bad size.
    """

    __slots__ = ("_buf", "_queue", "codec", "max_datagram_size", "serializer", "socket")

    def __init__(
        self,
        sock: socket.socket,
        codec: Optional[Codec] = None,
        *,
        serializer: Optional[Serializer] = None,
        max_datagram_size: Optional[int] = None,
    ) -> None:
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError(
                "DatagramSocket needs a datagram socket (SOCK_DGRAM); "
                "use framekit.FramedSocket for stream sockets"
            )
        if max_datagram_size is None:
            is_unix = sock.family == getattr(socket, "AF_UNIX", None)
            max_datagram_size = MAX_UNIX_DATAGRAM if is_unix else MAX_UDP_DATAGRAM
        elif isinstance(max_datagram_size, bool) or not isinstance(max_datagram_size, int):
            raise TypeError("max_datagram_size must be an int")
        elif max_datagram_size < 1:
            raise ValueError(f"max_datagram_size must be positive, got {max_datagram_size}")
        self.socket = sock
        self.codec: Codec = make_codec(codec)
        self.serializer = check_serializer(serializer)
        self.max_datagram_size = max_datagram_size
        # One spare byte: a datagram that fills it was too large (truncated).
        self._buf = bytearray(max_datagram_size + 1)
        self._queue: Deque[Tuple[bytes, Any]] = deque()

    # -- receiving ----------------------------------------------------------

    def recvfrom(self) -> Tuple[Any, Any]:
        """Return the next frame and its sender's address (as the socket module gives it).

        Raises:
            CorruptedFrame: the next datagram did not parse into whole frames
                (``.address`` is its sender); it was dropped and the next
                call reads the next datagram.
            SerializationError: the frame did not deserialize.
            socket.timeout: the socket's timeout expired.
            OSError: the socket failed.
        """
        queue = self._queue
        while not queue:
            self._read_datagram()
        frame, address = queue.popleft()
        if self.serializer is not None:
            frame = loads(self.serializer, frame)
        return frame, address

    def recv(self) -> Any:
        """Return the next frame; raise like :meth:`recvfrom`."""
        return self.recvfrom()[0]

    def __iter__(self) -> Iterator[Any]:
        """Yield frames as they arrive (datagrams have no end of stream)."""
        while True:
            yield self.recv()

    @property
    def buffered(self) -> int:
        """Frames already received and decoded, that ``recv()`` returns without reading."""
        return len(self._queue)

    def _read_datagram(self) -> int:
        """Read one datagram and queue its frames; return how many (0 for an empty one).

        The datagram server reads one datagram per wake-up with it, so a
        stream of empty datagrams cannot keep it in a read.  Raises like
        :meth:`recvfrom`.
        """
        n, address = self.socket.recvfrom_into(self._buf)
        frames = self._decode(n, address)
        self._queue.extend(zip(frames, repeat(address)))
        return len(frames)

    def _decode(self, n: int, address: Any) -> List[bytes]:
        if n > self.max_datagram_size:
            raise CorruptedFrame(
                f"datagram from {address!r} truncated: larger than max_datagram_size "
                f"({self.max_datagram_size} bytes)",
                address=address,
            )
        decoder = self.codec.decoder()
        try:
            frames = decoder.feed(memoryview(self._buf)[:n])
            decoder.eof()
        except FramingError as exc:
            raise CorruptedFrame(
                f"malformed {n}-byte datagram from {address!r}: {exc}", address=address
            ) from exc
        return frames

    # -- sending ------------------------------------------------------------

    def send(self, payload: Any, *, prefix: Optional[bytes] = None) -> None:
        """Send one frame in one datagram to the connected peer.

        ``prefix``: the bytes before the length field, for a codec with
        ``length_offset`` (passed on as ``codec.encode(..., prefix=prefix)``;
        ``None`` calls the codec without it).

        Raises:
            FrameTooLarge: the frame is larger than ``max_datagram_size``.
            SerializationError, ValueError: the payload cannot be framed.
            OSError: the socket failed (not connected, for one).
        """
        self.socket.send(self._frame(payload, prefix))

    def sendto(self, payload: Any, address: Any, *, prefix: Optional[bytes] = None) -> None:
        """Send one frame in one datagram to ``address``.

        Args:
            payload: bytes, or an object if a serializer is set.
            address: an address as :meth:`recvfrom` returns it, an
                :class:`~framekit.addresses.Address`, or a ``udp://`` or
                ``unixgram://`` URL.
            prefix: as for :meth:`send`.

        Raises:
            like :meth:`send`.
        """
        self.socket.sendto(self._frame(payload, prefix), sockaddr_of(address))

    def send_many(
        self, payloads: Iterable[Any], address: Any = None, *, prefix: Optional[bytes] = None
    ) -> int:
        """Send frames packed into as few datagrams as ``max_datagram_size`` allows.

        Args:
            payloads: the frames' payloads (objects if a serializer is set).
            address: where to send (as for :meth:`sendto`); ``None`` for the
                connected peer.
            prefix: as for :meth:`send`, before every frame's length.

        Returns:
            The number of datagrams sent.

        Raises:
            FrameTooLarge: one frame does not fit a datagram; nothing was sent.
        """
        frames = [self._frame(p, prefix) for p in payloads]
        datagrams = pack_datagrams(frames, self.max_datagram_size)
        target = None if address is None else sockaddr_of(address)
        for data in datagrams:
            if target is None:
                self.socket.send(data)
            else:
                self.socket.sendto(data, target)
        return len(datagrams)

    def _frame(self, payload: Any, prefix: Optional[bytes]) -> bytes:
        return encode_datagram(self.codec, self.serializer, payload, prefix, self.max_datagram_size)

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Close the socket.  Safe to call more than once."""
        self.socket.close()

    def __repr__(self) -> str:
        return f"<DatagramSocket {self.socket!r} codec={self.codec!r}>"
