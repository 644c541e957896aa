"""DatagramSocket: whole messages in UDP and Unix datagrams, with blocking calls.

Design notes
------------
A :class:`DatagramSocket` moves datagrams between a socket and a
:class:`~framekit.core.DatagramCore`, which does all the framing: each
datagram parses whole into frames with a fresh decoder, a malformed or
truncated one is refused as a whole (``CorruptedFrame`` with ``.address``),
sends are checked against ``max_datagram_size`` and ``send_many`` packs
frames into as few datagrams as it allows (see its notes).  What is left here
is the blocking I/O: it receives into a buffer one byte larger than
``max_datagram_size``, so a datagram that fills it was truncated by the
kernel and is refused as too large.

Frames decoded from one datagram are queued in the core, with their sender,
so a datagram packed by ``send_many`` feeds several ``recv()`` calls;
``buffered`` tells a caller (the datagram server) whether a message is
ready without reading.  An empty datagram carries no frame: ``recv()`` skips
it.  The datagram server reads one datagram per wake-up
(:meth:`DatagramSocket.read_datagram`, which may queue nothing), so a flood
of empty datagrams cannot keep it in ``recv()`` where ``shutdown()`` could
not reach it.
"""

from __future__ import annotations

import socket
from typing import Any, Iterable, Iterator, Optional, Tuple

from .._util import Closing
from ..codecs.interface import Buffer, Codec
from ..core.api import DatagramAPI
from ..core.datagram import DatagramCore, sockaddr_of
from ..core.options import (
    check_max_datagram_size,
    check_serializer,
    default_datagram_size,
    make_codec,
)
from ..serializers import Serializer

__all__ = ["DatagramSocket"]


class DatagramSocket(DatagramAPI, Closing):
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

    __slots__ = ("_buf", "_core", "socket")

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
        size = check_max_datagram_size(max_datagram_size)
        if size is None:
            size = default_datagram_size(sock.family)
        self.socket = sock
        unix = sock.family == getattr(socket, "AF_UNIX", None)
        self._core = DatagramCore(
            make_codec(codec),
            check_serializer(serializer),
            size,
            scheme="unixgram" if unix else "udp",
        )
        # One spare byte: a datagram that fills it was too large (truncated).
        self._buf = bytearray(size + 1)

    # -- receiving ----------------------------------------------------------

    def recvfrom(self) -> Tuple[Any, Any]:
        """Return the next message and its sender's address (as the socket module gives it).

        Raises:
            CorruptedFrame: the next datagram did not parse into whole frames
                (``.address`` is its sender); it was dropped and the next
                call reads the next datagram.
            SerializationError: the frame did not deserialize.
            socket.timeout: the socket's timeout expired.
            OSError: the socket failed.
        """
        core = self._core
        while not core.ready:
            self.read_datagram()
        return core.next_message()

    def recv(self) -> Any:
        """Return the next message; raise like :meth:`recvfrom`."""
        return self.recvfrom()[0]

    def __iter__(self) -> Iterator[Any]:
        """Yield messages as they arrive (datagrams have no end of stream)."""
        while True:
            yield self.recv()

    @property
    def buffered(self) -> int:
        """Messages (or errors) already received, that ``recv()`` returns without reading."""
        return len(self._core._queue)

    def read_datagram(self) -> int:
        """Read one datagram and queue its messages; return how many (0 for an
        empty or malformed one, whose error is queued).

        The datagram server reads one datagram per wake-up with it, so a
        stream of empty datagrams cannot keep it in a read.

        Raises:
            socket.timeout, BlockingIOError, OSError: from the socket.
        """
        n, address = self.socket.recvfrom_into(self._buf)
        return self._core.receive_datagram(memoryview(self._buf)[:n], address)

    # -- sending ------------------------------------------------------------

    def send(self, payload: Any, *, prefix: Optional[Buffer] = None) -> None:
        """Send one frame in one datagram to the connected peer.

        ``prefix``: the bytes before the length field, for a codec with
        ``length_offset`` (``None`` calls the codec without it).

        Raises:
            FrameTooLarge: the frame is larger than ``max_datagram_size``.
            SerializationError, ValueError: the payload cannot be framed.
            OSError: the socket failed (not connected, for one).
        """
        self.socket.send(self._core.encode(payload, prefix))

    def sendto(self, payload: Any, address: Any, *, prefix: Optional[Buffer] = None) -> None:
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
        self.socket.sendto(self._core.encode(payload, prefix), sockaddr_of(address))

    def send_many(
        self, payloads: Iterable[Any], address: Any = None, *, prefix: Optional[Buffer] = None
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
        datagrams = self._core.encode_many(payloads, prefix)
        target = None if address is None else sockaddr_of(address)
        for data in datagrams:
            if target is None:
                self.socket.send(data)
            else:
                self.socket.sendto(data, target)
        return len(datagrams)

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Close the socket.  Safe to call more than once."""
        self.socket.close()

    def __repr__(self) -> str:
        return f"<DatagramSocket {self.socket!r} codec={self.codec!r}>"
