"""connect(): one call from an address URL to a framed connection, on asyncio.

Design notes
------------
The address decides everything, as for the blocking :func:`framekit.connect`:
its scheme picks a stream :class:`~.connection.Connection` or a datagram
:class:`~.datagram.DatagramEndpoint`, its family picks IP or Unix, and
``tls://`` (or an ``ssl=`` context) adds TLS, verified by default.  The TLS
arguments and the Unix sockets come from the socket rules every transport
shares (:mod:`framekit._sockets`); the defaults and argument checks from
:mod:`framekit.core.options`.  A failed connection raises an ``OSError`` of
the same type as the loop's, whose message names the address, what failed
and the likely cause (:func:`framekit._sockets.connect_error`).
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from typing import Any, Optional, Union

from .._sockets import connect_error, connect_unix, host_port
from ..addresses import AddressLike
from ..codecs.interface import Codec
from ..core.options import (
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_FRAMES,
    check_queue_bounds,
    client_settings,
)
from ..serializers import Serializer
from .connection import Connection
from .datagram import DatagramEndpoint, open_datagram
from .protocol import FramedProtocol

__all__ = ["connect"]


async def connect(
    address: AddressLike,
    codec: Optional[Codec] = None,
    *,
    ssl: Optional[_ssl.SSLContext] = None,
    serializer: Optional[Serializer] = None,
    server_hostname: Optional[str] = None,
    max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    max_datagram_size: Optional[int] = None,
    idle_timeout: Optional[float] = None,
    frame_timeout: Optional[float] = None,
    max_stream_size: Optional[int] = None,
) -> Union[Connection, DatagramEndpoint]:
    """Connect to a framed server.

    Args:
        address: ``tcp://host:port``, ``tls://host:port``, ``unix:///path``,
            ``unix:@name``, ``udp://host:port``, ``unixgram:///path``,
            ``unixgram:@name``, or a ``(host, port)`` tuple (TCP).
        codec: the framing; None means ``framekit.LengthPrefixed()``.
        ssl: the client ``ssl.SSLContext`` for ``tls://`` (default: a
            verifying ``ssl.create_default_context()``); given for ``tcp://``
            or ``unix://``, it turns TLS on.
        serializer: send and receive objects through it (e.g.
            ``framekit.serializers.JSON``) instead of bytes.
        server_hostname: the name to verify the certificate against; default:
            the address's host (required for TLS over a Unix socket).
        max_queued_frames: pause reading above this many unread messages.
        max_queued_bytes: pause reading above this many unread bytes.
        max_datagram_size: datagram addresses only (see
            :func:`framekit.asyncio.open_datagram`).
        idle_timeout: stream addresses: ``recv()`` raises ``TimeoutError``
            when nothing arrives for that many seconds (None: never).
        frame_timeout: stream addresses: ``recv()`` raises ``TimeoutError``
            when a frame begun that many seconds ago is still incomplete.
        max_stream_size: frames above the codec's ``max_frame_size`` and up
            to this size (the codec's frame length, header included) can be
            read with ``recv_stream()`` and sent with ``send_stream()``;
            ``recv()`` refuses them with ``FrameTooLarge``.  None: streams
            are bounded by ``max_frame_size`` too.

    Returns:
        A :class:`Connection` for stream addresses; a connected
        :class:`~framekit.asyncio.DatagramEndpoint` for ``udp``/``unixgram``.

    Raises:
        ValueError: a malformed address, or an option that does not fit it.
        TypeError: ``codec`` or ``serializer`` lacks the needed methods, or
            ``ssl`` is not an ``ssl.SSLContext``.
        OSError: the connection failed (refused, no such file, TLS
            failure...); the message names the address and the likely cause.
    """
    settings = client_settings(
        address,
        codec,
        ssl=ssl,
        serializer=serializer,
        max_datagram_size=max_datagram_size,
        idle_timeout=idle_timeout,
        frame_timeout=frame_timeout,
        max_stream_size=max_stream_size,
    )
    check_queue_bounds(max_queued_frames, max_queued_bytes)
    addr, codec, context = settings.address, settings.codec, settings.ssl
    if addr.is_datagram:
        return await open_datagram(
            remote=addr,
            codec=codec,
            serializer=settings.serializer,
            max_queued_frames=max_queued_frames,
            max_queued_bytes=max_queued_bytes,
            max_datagram_size=settings.max_datagram_size,
        )
    if context is not None and server_hostname is None:
        server_hostname = addr.host
    loop = asyncio.get_running_loop()

    def factory() -> FramedProtocol:
        return FramedProtocol(
            codec,
            max_queued_frames=max_queued_frames,
            max_queued_bytes=max_queued_bytes,
            idle_timeout=settings.idle_timeout,
            frame_timeout=settings.frame_timeout,
            max_stream_size=settings.max_stream_size,
            peer=addr.url(),
        )

    transport: Any
    try:
        if addr.is_unix:
            sock = await connect_unix(addr, loop)
            try:
                transport, protocol = await loop.create_unix_connection(
                    factory, sock=sock, ssl=context, server_hostname=server_hostname
                )
            except BaseException:
                sock.close()
                raise
        else:
            transport, protocol = await loop.create_connection(
                factory, *host_port(addr), ssl=context, server_hostname=server_hostname
            )
    except OSError as exc:
        raise connect_error(exc, addr) from exc
    return Connection(transport, protocol, serializer=settings.serializer)
