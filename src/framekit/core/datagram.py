"""The sans-IO core of framed datagrams: a datagram in, its messages out, and back.

Design notes
------------
``framekit.DatagramSocket``, ``framekit.asyncio.DatagramEndpoint`` and the
anyio endpoint each own one :class:`DatagramCore` and only move datagrams
between a socket and it, so the rules below are written once:

* **A datagram parses whole.**  Each datagram carries complete frames in the
  codec's format (one or more; an empty datagram carries none and is no
  error) and nothing else.  Every datagram gets a fresh ``codec.decoder()``:
  ``feed(datagram)`` then ``eof()``, so one bad datagram can never poison the
  next.  Any ``FramingError`` (a bad length, a frame cut short, trailing
  bytes, an oversized frame) becomes a ``CorruptedFrame`` whose ``.address``
  is the sender and whose cause is the decoder's error; the whole datagram is
  dropped (a datagram that lies about one length is not trusted for the
  others: ``.frames`` is empty), and the next datagram is read as usual.
* **Truncation is detected, never silently cut.**  The kernel truncates a
  datagram larger than the receive buffer: transports receive into
  ``max_datagram_size + 1`` bytes where they can (or get the datagram whole
  from their event loop), and a datagram longer than ``max_datagram_size`` is
  refused the same way.
* **Errors keep their place**: messages and errors wait in one queue, in the
  order they arrived, with each message's sender.  A socket error reported
  for one datagram (:meth:`receive_error`, e.g. ``ConnectionRefusedError``
  after sending to a closed UDP port) is queued in place too.
* **Bounds**: a transport that reads ahead (an event loop) gives bounds;
  datagrams that arrive while more frames or bytes wait unread than they
  allow are dropped and counted (:attr:`dropped`), as the kernel drops them
  when its own buffer is full: a datagram socket has no flow control to push
  back with.
* **Sending**: a frame is checked against ``max_datagram_size`` when it is
  encoded, so one that cannot fit a datagram raises ``FrameTooLarge`` before
  anything is sent (a datagram socket would fail with ``EMSGSIZE``, or the
  peer would see a truncated datagram).  :meth:`encode_many` packs
  consecutive frames, in order, into as few datagrams as the limit allows;
  each frame stays whole in one datagram, and the receiver hands them out one
  per ``recv()``.  Every datagram is a fresh ``bytes``, so a caller's buffer
  may be refilled as soon as a send returns.
* A destination may be a socket address, an :class:`~framekit.addresses.Address`
  or an address URL (:func:`sockaddr_of`).
"""

from __future__ import annotations

import errno
from collections import deque
from typing import Any, Deque, Iterable, List, Optional, Tuple

from .._sockets import peer_name
from ..addresses import SCHEMES, Address, parse_address
from ..codecs.interface import Buffer, Codec
from ..errors import CorruptedFrame, FrameTooLarge, FramingError, SerializationError
from ..serializers import Serializer, dumps, loads

__all__ = [
    "DatagramCore",
    "destination",
    "pack_datagrams",
    "peer_fault",
    "same_peer",
    "sockaddr_of",
]


class DatagramCore:
    """The framing state of one datagram socket, without I/O (see the module notes).

    Args:
        codec: the framing of every datagram.
        serializer: messages go through ``dumps``/``loads`` when set.
        max_datagram_size: the largest datagram sent or accepted.
        scheme: ``"udp"`` or ``"unixgram"``, to name senders in errors.
        max_queued_frames: drop datagrams above this many frames waiting
            (None: no bound).
        max_queued_bytes: drop datagrams above this many bytes waiting.

    Attributes:
        codec, serializer, max_datagram_size: as given (the serializer may be
            changed at any time).
        dropped: datagrams dropped because too much waited unread.
        datagrams_in, frames_in, datagrams_out, frames_out: counters.
    """

    def __init__(
        self,
        codec: Codec,
        serializer: Optional[Serializer],
        max_datagram_size: int,
        *,
        scheme: str = "udp",
        max_queued_frames: Optional[int] = None,
        max_queued_bytes: Optional[int] = None,
    ) -> None:
        self.codec = codec
        self.serializer = serializer
        self.max_datagram_size = max_datagram_size
        self._scheme = scheme
        self._queue: Deque[Any] = deque()  # (frame, address) pairs and errors
        self._errors = 0
        self._queued_bytes = 0
        self._max_frames = max_queued_frames
        self._max_bytes = max_queued_bytes
        self.dropped = 0
        self.datagrams_in = self.frames_in = self.datagrams_out = self.frames_out = 0

    # -- receiving --------------------------------------------------------------------

    @property
    def over_limit(self) -> bool:
        """More frames or bytes wait than the bounds allow."""
        if self._max_frames is not None and len(self._queue) - self._errors > self._max_frames:
            return True
        return self._max_bytes is not None and self._queued_bytes > self._max_bytes

    def receive_datagram(self, data: Buffer, address: Any) -> int:
        """Decode one datagram and queue its frames (or the error it is).

        Returns:
            How many frames were queued (0 for an empty, bad or dropped datagram).
        """
        if self.over_limit:
            self.dropped += 1
            return 0
        self.datagrams_in += 1
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        if size > self.max_datagram_size:
            self._put_error(
                CorruptedFrame(
                    f"datagram from {self._name(address)} is larger than max_datagram_size "
                    f"({self.max_datagram_size} bytes); dropped",
                    address=address,
                )
            )
            return 0
        decoder = self.codec.decoder()
        try:
            frames = decoder.feed(data)
            decoder.eof()
        except FramingError as exc:
            error = CorruptedFrame(
                f"malformed datagram of {size} bytes from {self._name(address)}: {exc}",
                address=address,
            )
            error.__cause__ = exc
            self._put_error(error)
            return 0
        queue = self._queue
        for frame in frames:
            queue.append((frame, address))
            self._queued_bytes += len(frame)
        self.frames_in += len(frames)
        return len(frames)

    def receive_error(self, exc: BaseException) -> None:
        """Queue a socket error reported for one datagram (dropped above the bounds)."""
        if not self.over_limit:
            self._put_error(exc)

    def _put_error(self, exc: BaseException) -> None:
        self._queue.append(exc)
        self._errors += 1

    def _name(self, address: Any) -> str:
        return peer_name(self._scheme, address)

    @property
    def ready(self) -> bool:
        """Whether :meth:`next_message` has something (a message or an error)."""
        return bool(self._queue)

    @property
    def queued_frames(self) -> int:
        """Frames waiting (errors not counted)."""
        return len(self._queue) - self._errors

    def next_message(self) -> Tuple[Any, Any]:
        """The next ``(message, sender)``; the queue must not be empty (:attr:`ready`).

        Raises:
            CorruptedFrame: the next datagram was malformed (``.address`` is
                its sender).
            OSError: a socket error reported for a datagram.
            SerializationError: the frame did not deserialize (``.frame`` is it).
        """
        item = self._queue.popleft()
        if isinstance(item, BaseException):
            self._errors -= 1
            try:
                raise item
            finally:
                item = None
        frame, address = item
        self._queued_bytes -= len(frame)
        if self.serializer is None:
            return frame, address
        try:
            return loads(self.serializer, frame), address
        except SerializationError as exc:
            exc.address = address
            raise

    def clear(self) -> None:
        """Drop everything waiting (the socket was closed)."""
        self._queue.clear()
        self._errors = self._queued_bytes = 0

    # -- sending ----------------------------------------------------------------------

    def encode(self, payload: Any, prefix: Optional[Buffer] = None) -> bytes:
        """One message as one frame that fits one datagram.

        Raises:
            FrameTooLarge: the frame is larger than ``max_datagram_size``.
            SerializationError, ValueError: the payload cannot be framed.
        """
        if self.serializer is not None:
            payload = dumps(self.serializer, payload)
        codec = self.codec
        frame = codec.encode(payload) if prefix is None else codec.encode(payload, prefix=prefix)
        if len(frame) > self.max_datagram_size:
            raise FrameTooLarge(
                f"a frame of {len(frame)} bytes does not fit one datagram "
                f"(max_datagram_size={self.max_datagram_size})",
                frame_length=len(frame),
                max_frame_size=self.max_datagram_size,
            )
        self.datagrams_out += 1
        self.frames_out += 1
        return frame

    def encode_many(self, payloads: Iterable[Any], prefix: Optional[Buffer] = None) -> List[bytes]:
        """Messages packed into as few datagrams as ``max_datagram_size`` allows.

        Raises:
            As :meth:`encode`; nothing is returned if any frame does not fit.
        """
        frames = [self.encode(p, prefix) for p in payloads]
        self.datagrams_out -= len(frames)
        datagrams = pack_datagrams(frames, self.max_datagram_size)
        self.datagrams_out += len(datagrams)
        return datagrams


def peer_fault(exc: BaseException, last_receive_error: Optional[BaseException], scheme: str) -> str:
    """Whether ``exc``, escaping a datagram server's handler, is a peer's fault
    (the error the endpoint's last receive raised for a datagram or a socket
    error) rather than the handler's: a server logs it and calls its handler
    again, instead of closing.

    Returns:
        The log line's text, or ``""`` if it is the handler's own failure.
    """
    if exc is not last_receive_error:
        return ""
    sender = getattr(exc, "address", None)
    who = (
        "socket error, peer unknown"
        if sender is None
        else f"datagram from {peer_name(scheme, sender)}"
    )
    return f"{who}: {type(exc).__name__}: {exc}; handler restarted"


def same_peer(sockaddr: Any, remote: Any) -> bool:
    """Whether ``sockaddr`` is the connected peer ``remote`` (a connected
    datagram socket takes no destination address)."""
    if isinstance(sockaddr, tuple) and isinstance(remote, tuple):
        return sockaddr[:2] == remote[:2]  # IPv6 adds flow info and scope id
    return bool(remote is not None and sockaddr == remote)


def pack_datagrams(frames: Iterable[bytes], max_datagram_size: int) -> List[bytes]:
    """Join consecutive frames into as few datagrams as ``max_datagram_size`` allows.

    Each frame must fit one datagram (:meth:`DatagramCore.encode` checked it).
    """
    datagrams: List[bytes] = []
    group: List[bytes] = []
    size = 0
    for frame in frames:
        if group and size + len(frame) > max_datagram_size:
            datagrams.append(b"".join(group))
            group, size = [], 0
        group.append(frame)
        size += len(frame)
    if group:
        datagrams.append(b"".join(group))
    return datagrams


def sockaddr_of(address: Any) -> Any:
    """A URL or :class:`Address` becomes a socket address; anything else is one."""
    if isinstance(address, Address):
        return address.sockaddr
    if isinstance(address, str) and address.partition(":")[0].lower() in SCHEMES:
        return parse_address(address).sockaddr
    return address


def destination(address: Any, remote: Any) -> Any:
    """Where to send: the socket address for ``address``, or None for the
    connected peer ``remote`` (``address`` None, or the same peer: a connected
    socket takes no destination).

    Raises:
        OSError: ``EDESTADDRREQ``: no address and the socket is not connected.
    """
    if address is None:
        if remote is None:
            raise OSError(
                errno.EDESTADDRREQ, "the endpoint is not connected: use sendto(payload, address)"
            )
        return None
    sockaddr = sockaddr_of(address)
    return None if same_peer(sockaddr, remote) else sockaddr
