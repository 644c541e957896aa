"""Every transport default and argument check, in one place.

Design notes
------------
The blocking, asyncio and anyio transports take the same arguments
(``codec=``, ``serializer=``, ``max_connections=``, ``max_datagram_size=``,
timeouts, bounds...).  Their defaults and their checks live here once: every
public constructor and function takes its default from a constant below and
validates with a function below, so the same bad argument raises the same
exception type with the same message whichever transport was given it
(``tests/test_options.py`` runs one table of bad arguments through all of
them).  Bad arguments fail when a transport is made (``connect()``,
``serve()``, ``FramedSocket(...)``), not later inside a protocol callback
where an event loop would only log them.

Why each default is what it is, is said next to it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ssl import SSLContext
from typing import Any, Optional, Tuple

from .._sockets import tls_context
from ..addresses import Address, AddressLike, parse_address
from ..codecs.backend import LengthPrefixed
from ..codecs.interface import Codec
from ..serializers import Serializer

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_BACKLOG",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_QUEUED_FRAMES",
    "DEFAULT_READ_SIZE",
    "FRAME_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "MAX_UDP_DATAGRAM",
    "MAX_UNIX_DATAGRAM",
    "VECTORED_MIN_SIZE",
    "ClientSettings",
    "ServerSettings",
    "check_count",
    "check_handler",
    "check_max_buffered_bytes",
    "check_max_connections",
    "check_max_datagram_size",
    "check_max_stream_size",
    "check_queue_bounds",
    "check_serializer",
    "check_timeout",
    "client_settings",
    "datagram_addresses",
    "default_datagram_size",
    "make_codec",
    "server_settings",
]

# -- sizes and counts ------------------------------------------------------------

#: Bytes asked of each read (``recv_into``, or the event loop's ``get_buffer``).
#: One read carries thousands of small frames, and each read costs a system
#: call (and an event-loop iteration): measured, 64 KiB frames went from ~0.4x
#: to ~0.95x of raw ``recv_into`` throughput on asyncio with 256 KiB reads.
DEFAULT_READ_SIZE = 256 * 1024
#: ``bytes`` payloads from this size on are sent as ``[header, payload]``
#: without a copy (``sendmsg``/``writelines``); smaller ones are copied into one
#: buffer with their header, which is cheaper than an iovec for them (measured:
#: encode + one write is up to twice as fast for 1 KiB).  Only ``bytes``: a
#: coalesced or buffered write keeps the reference until it is written, and a
#: ``bytearray`` the caller refills meanwhile would change the frame.
VECTORED_MIN_SIZE = 16 * 1024
#: The largest chunk a frame read as a stream hands out (``recv_stream``), and
#: the size of each read when a file is sent without ``sendfile``.
DEFAULT_CHUNK_SIZE = 256 * 1024
#: The listen backlog.  128 was Linux's ``SOMAXCONN`` for years; the kernel
#: caps it at ``net.core.somaxconn`` anyway.
DEFAULT_BACKLOG = 128
#: Largest UDP payload over IPv4 (65535 - 8-byte UDP header - 20-byte IP header).
MAX_UDP_DATAGRAM = 65507
#: Default largest Unix datagram (the kernel allows more, up to the socket buffer).
MAX_UNIX_DATAGRAM = 64 * 1024
#: Default bound on decoded frames waiting unread, per connection, before an
#: event-loop transport stops reading.  One 64 KiB read of small frames
#: decodes thousands (8192 frames of 4 bytes), and uvloop reads several times
#: before the consumer runs; a bound below a few reads' worth would pause
#: reading all the time.  16384 empty frames hold about 700 KiB.
DEFAULT_MAX_QUEUED_FRAMES = 16384
#: Default bound on the bytes of decoded frames (and of bytes taken but not yet
#: decoded) waiting unread, per connection, before reading stops.
DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024
#: Servers: default bound on the bytes all connections hold at once (frames
#: waiting for their handler, unfinished frames; see :mod:`framekit.core.budget`).
#: 256 MiB holds sixteen frames of the default 16 MiB maximum at once, and
#: thousands of connections' worth of ordinary traffic.
DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024

# -- times, in seconds -------------------------------------------------------------

#: Bound on the graceful part of closing a connection; then it is aborted, so a
#: peer that stopped reading cannot hold a close forever.
CLOSE_TIMEOUT = 10.0
#: Time a TLS client has to finish its handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Servers: time a frame begun may take to arrive whole.  An honest peer sends
#: a frame as fast as the network allows (16 MiB, the default maximum, takes a
#: quarter of a minute even at 1 MB/s), while a peer that trickles one
#: byte at a time to hold a connection (and its memory) forever is cut off.
#: Raise it with ``max_frame_size`` for large frames over slow links.  Clients
#: have none by default.
FRAME_TIMEOUT = 60.0


def default_datagram_size(family: int) -> int:
    """The default ``max_datagram_size`` for a socket family."""
    return MAX_UNIX_DATAGRAM if family == getattr(socket, "AF_UNIX", None) else MAX_UDP_DATAGRAM


# -- checks ------------------------------------------------------------------------


def make_codec(codec: Optional[Codec]) -> Codec:
    """Return ``codec``, or the default ``LengthPrefixed()`` for None.

    Raises:
        TypeError: ``codec`` does not implement :class:`framekit.Codec`.
    """
    if codec is None:
        return LengthPrefixed()
    if not isinstance(codec, Codec):
        raise TypeError(
            f"codec must implement framekit.Codec "
            f"(decoder, encode, encode_many, encode_parts), not {type(codec).__name__}"
        )
    return codec


def check_serializer(serializer: Optional[Serializer]) -> Optional[Serializer]:
    """Return ``serializer`` if it is None or has ``dumps`` and ``loads``.

    Raises:
        TypeError: it has not.
    """
    if serializer is not None and not isinstance(serializer, Serializer):
        raise TypeError(
            f"serializer must have dumps(obj) -> bytes and loads(bytes) -> obj, "
            f"not {type(serializer).__name__}"
        )
    return serializer


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int of at least ``minimum``.

    Raises:
        TypeError: it is not an int (``bool`` is refused).
        ValueError: it is smaller than ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_max_connections(value: Any) -> Optional[int]:
    """``max_connections``: None (no bound) or a positive int.

    Raises:
        TypeError, ValueError: as :func:`check_count`.
    """
    return None if value is None else check_count("max_connections", value)


def check_max_buffered_bytes(value: Any) -> Optional[int]:
    """``max_buffered_bytes``: None (no budget) or a positive int.

    Raises:
        TypeError, ValueError: as :func:`check_count`.
    """
    return None if value is None else check_count("max_buffered_bytes", value)


def check_max_stream_size(value: Any) -> Optional[int]:
    """``max_stream_size``: None (frames stream up to ``max_frame_size``) or a positive int.

    Raises:
        TypeError, ValueError: as :func:`check_count`.
    """
    return None if value is None else check_count("max_stream_size", value)


def check_max_datagram_size(value: Any) -> Optional[int]:
    """``max_datagram_size``: None (the family's default) or a positive int.

    Raises:
        TypeError, ValueError: as :func:`check_count`.
    """
    return None if value is None else check_count("max_datagram_size", value)


def check_handler(handler: Any, expected: str) -> None:
    """A server's ``handler``: anything callable (``expected`` says what the
    transport calls, for the message).

    Raises:
        TypeError: it is not callable.
    """
    if not callable(handler):
        raise TypeError(f"handler must be {expected}, not {handler!r}")


def check_queue_bounds(max_queued_frames: Any, max_queued_bytes: Any) -> None:
    """``max_queued_frames`` and ``max_queued_bytes``: positive ints.

    Raises:
        TypeError, ValueError: as :func:`check_count`.
    """
    check_count("max_queued_frames", max_queued_frames)
    check_count("max_queued_bytes", max_queued_bytes)


def check_timeout(name: str, value: Any) -> Optional[float]:
    """A timeout in seconds: None (none) or a positive number.

    Raises:
        TypeError: not a number (``bool`` is refused).
        ValueError: zero, negative or not finite.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


# -- every check of one entry point, at once ------------------------------------------


@dataclass(frozen=True)
class ClientSettings:
    """A client's arguments, checked (see :func:`client_settings`)."""

    address: Address
    codec: Codec
    serializer: Optional[Serializer]
    ssl: Optional[SSLContext]
    max_datagram_size: Optional[int]
    idle_timeout: Optional[float]
    frame_timeout: Optional[float]
    max_stream_size: Optional[int]


def datagram_addresses(
    local: Optional[AddressLike], remote: Optional[AddressLike]
) -> Tuple[Optional[Address], Optional[Address]]:
    """``open_datagram``'s two addresses, parsed and checked against each other.

    Raises:
        ValueError: neither given, one not a datagram address, or two of different kinds.
    """
    loc, rem = (None if address is None else parse_address(address) for address in (local, remote))
    for role, addr in (("local", loc), ("remote", rem)):
        if addr is not None and not addr.is_datagram:
            raise ValueError(f"{role} must be a udp:// or unixgram:// address, not {addr.url()}")
    if loc is None and rem is None:
        raise ValueError("open_datagram needs a local address, a remote address, or both")
    if loc is not None and rem is not None and loc.scheme != rem.scheme:
        raise ValueError(f"local and remote differ in kind: {loc.url()} and {rem.url()}")
    return loc, rem


def client_settings(
    address: AddressLike,
    codec: Optional[Codec],
    *,
    ssl: Optional[SSLContext],
    serializer: Optional[Serializer],
    max_datagram_size: Optional[int],
    idle_timeout: Optional[float],
    frame_timeout: Optional[float],
    max_stream_size: Optional[int],
) -> ClientSettings:
    """Check the arguments every transport's ``connect()`` takes.

    Raises:
        ValueError: a malformed address, or an option that does not fit it.
        TypeError: a codec, serializer or TLS context lacking what it needs,
            or an argument of the wrong type.
    """
    addr = parse_address(address)
    settings = ClientSettings(
        addr,
        make_codec(codec),
        check_serializer(serializer),
        tls_context(addr, ssl, server_side=False),
        check_max_datagram_size(max_datagram_size),
        check_timeout("idle_timeout", idle_timeout),
        check_timeout("frame_timeout", frame_timeout),
        check_max_stream_size(max_stream_size),
    )
    _check_kind(addr, settings.max_datagram_size, settings.idle_timeout, settings.frame_timeout)
    return settings


@dataclass(frozen=True)
class ServerSettings:
    """A server's arguments, checked (see :func:`server_settings`)."""

    address: Address
    codec: Codec
    serializer: Optional[Serializer]
    ssl: Optional[SSLContext]
    max_connections: Optional[int]
    max_datagram_size: Optional[int]
    handshake_timeout: Optional[float]
    idle_timeout: Optional[float]
    frame_timeout: Optional[float]
    max_buffered_bytes: Optional[int]
    max_stream_size: Optional[int]


def server_settings(
    address: AddressLike,
    codec: Optional[Codec],
    *,
    ssl: Optional[SSLContext],
    serializer: Optional[Serializer],
    max_connections: Optional[int],
    max_datagram_size: Optional[int],
    handshake_timeout: Optional[float],
    idle_timeout: Optional[float],
    frame_timeout: Optional[float],
    max_buffered_bytes: Optional[int],
    max_stream_size: Optional[int],
) -> ServerSettings:
    """Check the arguments every transport's ``serve()`` takes.

    Raises:
        ValueError: a malformed address, ``tls://`` without ``ssl=``, or an
            option that does not fit the address.
        TypeError: as :func:`client_settings`.
    """
    addr = parse_address(address)
    settings = ServerSettings(
        addr,
        make_codec(codec),
        check_serializer(serializer),
        tls_context(addr, ssl, server_side=True),
        check_max_connections(max_connections),
        check_max_datagram_size(max_datagram_size),
        check_timeout("handshake_timeout", handshake_timeout),
        check_timeout("idle_timeout", idle_timeout),
        check_timeout("frame_timeout", frame_timeout),
        check_max_buffered_bytes(max_buffered_bytes),
        check_max_stream_size(max_stream_size),
    )
    if settings.max_connections is not None and addr.is_datagram:
        raise ValueError(f"max_connections is for stream servers, not {addr.url()}")
    _check_kind(addr, settings.max_datagram_size, None, None)
    return settings


def _check_kind(
    addr: Address,
    max_datagram_size: Optional[int],
    idle_timeout: Optional[float],
    frame_timeout: Optional[float],
) -> None:
    if addr.is_datagram:
        if idle_timeout is not None or frame_timeout is not None:
            raise ValueError(f"idle_timeout and frame_timeout are for streams, not {addr.url()}")
    elif max_datagram_size is not None:
        raise ValueError(f"max_datagram_size is for udp:// and unixgram://, not {addr.url()}")
