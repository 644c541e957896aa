"""connect(): one call from an address URL to a framed connection.

Design notes
------------
The address decides everything: its scheme picks stream or datagram, its
family picks IP or Unix (one code path in :mod:`._sockets`), and ``tls://``
adds TLS.  ``tls://`` without ``ssl=`` uses ``ssl.create_default_context()``,
which verifies the server's certificate and host name: encryption without
verification is opt-in (pass your own context), never the default.  An
``ssl=`` context on ``tcp://`` or ``unix://`` also means TLS, as in asyncio:
both transports pick the context with :func:`framekit._sockets.tls_context`.

The timeout is ``socket.create_connection``'s: it bounds the connect (and the
TLS handshake) and stays on the socket for every later call.

**TLS end of stream.**  A peer that closes the TCP connection without a TLS
``close_notify`` (a "ragged EOF") reads as a clean close, ``ConnectionClosed``
(``suppress_ragged_eofs``, the ``ssl`` module's default, is kept).  This is
deliberate: Python's own ``SSLSocket.close()`` sends no ``close_notify``
either, so treating a ragged EOF as an error would make every ordinary close
by a Python peer look like a truncation attack.  The framing still detects a
cut *inside* a frame (``IncompleteFrame``); a cut *between* frames cannot be
told from a clean close, so a protocol that must know it received everything
should mark its last frame.
"""

from __future__ import annotations

import ssl as _ssl
from typing import Optional, Union

from .._sockets import connect_error, connect_socket, tls_context
from ..addresses import AddressLike
from ..codecs.interface import Codec
from ..core.options import check_timeout, client_settings
from ..serializers import Serializer
from .connection import FramedSocket
from .datagram import DatagramSocket

__all__ = ["connect", "tls_context"]


def connect(
    address: AddressLike,
    codec: Optional[Codec] = None,
    *,
    timeout: Optional[float] = None,
    ssl: Optional[_ssl.SSLContext] = None,
    serializer: Optional[Serializer] = None,
    server_hostname: Optional[str] = None,
    max_datagram_size: Optional[int] = None,
    idle_timeout: Optional[float] = None,
    frame_timeout: Optional[float] = None,
    max_stream_size: Optional[int] = None,
) -> Union[FramedSocket, DatagramSocket]:
    """Connect to ``address`` and return a framed connection.

    Args:
        address: ``tcp://host:port``, ``tls://host:port``, ``udp://host:port``,
            ``unix:///path``, ``unix:@name``, ``unixgram:///path`` or a
            ``(host, port)`` tuple (TCP).
        codec: any :class:`framekit.codecs.interface.Codec`; ``None`` means
            ``LengthPrefixed()``.
        timeout: seconds for the connect and every later socket call;
            ``None`` blocks.
        ssl: the client ``ssl.SSLContext`` for ``tls://`` (default: a verifying
            ``ssl.create_default_context()``); given for ``tcp://`` or
            ``unix://``, it turns TLS on.
        serializer: send and receive objects through it (``dumps``/``loads``).
        server_hostname: the name to verify the certificate against; default:
            the address's host (required for TLS over a Unix socket).
        max_datagram_size: for ``udp://``/``unixgram://`` only: the largest
            datagram sent or accepted.
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
        A :class:`FramedSocket` for stream addresses, a
        :class:`DatagramSocket` (connected to the address) for datagram ones.

    Raises:
        ValueError: a malformed address, or an option that does not fit it.
        OSError: the connection failed (refused, unreachable, timed out,
            ``ssl.SSLCertVerificationError``...).

    Over TLS, a TCP close without ``close_notify`` reads as a clean close
    (``ConnectionClosed``), as after ``SSLSocket.close()``, which sends none;
    only a cut inside a frame is detected (``IncompleteFrame``).  See the
    module notes.
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
    check_timeout("timeout", timeout)
    addr, context = settings.address, settings.ssl
    sock = connect_socket(addr, timeout)
    if addr.is_datagram:
        return DatagramSocket(
            sock,
            settings.codec,
            serializer=settings.serializer,
            max_datagram_size=settings.max_datagram_size,
        )
    if context is not None:
        try:
            sock = context.wrap_socket(sock, server_hostname=server_hostname or addr.host)
        except OSError as exc:
            sock.close()
            raise connect_error(exc, addr) from exc
        except BaseException:
            sock.close()
            raise
    conn = FramedSocket(
        sock,
        settings.codec,
        serializer=settings.serializer,
        idle_timeout=settings.idle_timeout,
        frame_timeout=settings.frame_timeout,
        max_stream_size=settings.max_stream_size,
    )
    conn.core.peer = addr.url()
    return conn
