"""Socket set-up shared by connect, serve and the datagram endpoints.

Design notes
------------
Unix sockets are not a copy of TCP: the same transports run over them, and
only the socket set-up differs, so it lives here once.  framekit makes Unix
sockets itself and hands them to the loop with ``sock=``, for two reasons: the
file rules need the socket before and after ``bind()``, and uvloop passes
paths to libuv as C strings, which cannot hold an abstract (``unix:@name``)
address.  A socket made here is the same on every loop.

The Unix socket file rules (0600 mode, stale files replaced, a live server is
"address in use", removal only if still ours) and the TLS arguments are the
blocking API's, from the same code: :mod:`framekit._sockets`.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Optional, Tuple

from .._sockets import DEFAULT_UNIX_MODE, UnixFile
from ..addresses import Address

__all__ = ["bind_unix", "connect_unix", "host_port"]


def host_port(address: Address) -> Tuple[str, int]:
    """``(host, port)`` of an IP address (what the loop's create_* methods take)."""
    assert address.host is not None and address.port is not None
    return address.host, address.port


def bind_unix(
    address: Address, unix_mode: Optional[int] = DEFAULT_UNIX_MODE
) -> Tuple[socket.socket, Optional[UnixFile]]:
    """Make a non-blocking Unix socket bound to ``address`` (the file rules above).

    Returns:
        The socket and, for a path, the :class:`~framekit._sockets.UnixFile` to
        remove at close.

    Raises:
        OSError: ``EADDRINUSE`` if someone is at the path or the path is not a
            socket; any error from ``bind``/``chmod``.
    """
    sock = socket.socket(socket.AF_UNIX, address.socktype)
    try:
        sock.setblocking(False)
        if address.is_abstract:
            sock.bind(address.sockaddr)
            return sock, None
        unix_file = UnixFile.prepare(address, unix_mode)
        unix_file.before_bind(sock)
        sock.bind(address.sockaddr)
        unix_file.created()
        return sock, unix_file
    except BaseException:
        sock.close()
        raise


async def connect_unix(address: Address) -> socket.socket:
    """Return a non-blocking Unix socket connected to ``address``.

    A datagram socket is also bound to an automatic abstract name (Linux), so
    the peer can reply to it.

    Raises:
        OSError: the connection failed (``FileNotFoundError``, ``ConnectionRefusedError``...).
    """
    sock = socket.socket(socket.AF_UNIX, address.socktype)
    try:
        sock.setblocking(False)
        if address.is_datagram:
            if sys.platform.startswith("linux"):
                sock.bind("")  # autobind: an abstract name the peer can reply to
            sock.connect(address.sockaddr)  # a datagram connect never blocks
        else:
            await asyncio.get_running_loop().sock_connect(sock, address.sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock
