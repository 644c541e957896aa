"""connect(): one call from an address URL to a framed connection, on anyio.

Design notes
------------
The address decides everything, as for :func:`framekit.connect` and
:func:`framekit.asyncio.connect`: its scheme picks a stream
:class:`~.connection.Connection` or a datagram
:class:`~.datagram.DatagramEndpoint`, its family picks IP or Unix, and
``tls://`` (or an ``ssl=`` context) adds TLS through anyio's ``TLSStream``,
verified by default.  TCP connects through ``anyio.connect_tcp`` (Happy
Eyeballs over the names' addresses), Unix streams through
``anyio.connect_unix`` (a path, or an abstract ``unix:@name``).  The TLS
arguments come from the socket rules every transport shares
(:mod:`framekit._sockets`), the defaults and argument checks from
:mod:`framekit.core.options`, and a failed connection raises the same
``OSError`` type and message as on the other transports
(:func:`framekit._sockets.connect_error`): anyio's ``ConnectionFailed`` is
unwrapped to the error under it.
"""

from __future__ import annotations

import errno
import ssl as _ssl
from typing import Optional, Union

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from .._sockets import connect_error, host_port
from ..addresses import Address, AddressLike
from ..codecs.interface import Codec
from ..core.options import client_settings
from ..serializers import Serializer
from .connection import Connection, hold_reads
from .datagram import DatagramEndpoint, open_datagram

__all__ = ["connect"]


def _first_os_error(exc: OSError) -> OSError:
    """The error under anyio's ``ConnectionFailed`` ("All connection attempts failed")."""
    cause = exc.__cause__
    if isinstance(cause, OSError):
        return cause
    for inner in getattr(cause, "exceptions", ()):
        if isinstance(inner, OSError):
            return inner
    return exc


async def _open_stream(addr: Address) -> anyio.abc.SocketStream:
    try:
        if addr.is_unix:
            return await anyio.connect_unix(addr.sockaddr)
        stream = await anyio.connect_tcp(*host_port(addr))
    except OSError as exc:
        raise connect_error(_first_os_error(exc), addr) from exc
    hold_reads(stream)
    return stream


async def _start_tls(
    stream: anyio.abc.SocketStream,
    addr: Address,
    context: _ssl.SSLContext,
    server_hostname: Optional[str],
) -> TLSStream:
    try:
        return await TLSStream.wrap(
            stream,
            server_side=False,
            hostname=server_hostname,
            ssl_context=context,
            standard_compatible=False,
        )
    except BaseException as exc:
        await anyio.aclose_forcefully(stream)
        if isinstance(exc, (anyio.EndOfStream, anyio.BrokenResourceError)):
            lost = exc.__cause__
            if not isinstance(lost, OSError):
                lost = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            raise connect_error(lost, addr) from exc
        if isinstance(exc, OSError):  # ssl.SSLError: a failed verification, not TLS...
            raise connect_error(exc, addr) from exc
        raise


async def connect(
    address: AddressLike,
    codec: Optional[Codec] = None,
    *,
    ssl: Optional[_ssl.SSLContext] = None,
    serializer: Optional[Serializer] = None,
    server_hostname: Optional[str] = None,
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
        max_datagram_size: datagram addresses only (see
            :func:`framekit.anyio.open_datagram`).
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
        :class:`~framekit.anyio.DatagramEndpoint` for ``udp``/``unixgram``.

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
    addr, codec, context = settings.address, settings.codec, settings.ssl
    if addr.is_datagram:
        return await open_datagram(
            remote=addr,
            codec=codec,
            serializer=settings.serializer,
            max_datagram_size=settings.max_datagram_size,
        )
    stream: anyio.abc.ByteStream = await _open_stream(addr)
    if context is not None:
        assert isinstance(stream, anyio.abc.SocketStream)
        stream = await _start_tls(stream, addr, context, server_hostname or addr.host)
    return Connection(
        stream,
        codec,
        serializer=settings.serializer,
        idle_timeout=settings.idle_timeout,
        frame_timeout=settings.frame_timeout,
        max_stream_size=settings.max_stream_size,
    )
