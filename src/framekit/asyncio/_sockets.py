"""Socket set-up shared by connect, serve and the datagram endpoints.

Design notes
------------
Unix sockets are not a copy of TCP: the same transports run over them, and
only the socket set-up differs, so it lives here once.  framekit makes Unix
sockets itself and hands them to the loop with ``sock=``, for two reasons: the
file rules below need the socket before and after ``bind()``, and uvloop passes
paths to libuv as C strings, which cannot hold an abstract (``unix:@name``)
address.  A socket made here is the same on every loop.

Unix socket files (the blocking API follows the same rules):

* created with mode 0600 (``unix_mode=``), set with ``chmod`` right after
  ``bind()``;
* a stale file, one that refuses connections because its server died, is
  removed and replaced; a live server at that path is an ``OSError``
  (``EADDRINUSE``) that says so; a file that is not a socket is never removed;
* removed when the server closes, but only if it is still the file we bound
  (another server may have replaced it meanwhile).

Abstract names have no file: none of this applies to them.

TLS: ``tls://`` without ``ssl=`` (or with ``ssl=True``) verifies the server
with ``ssl.create_default_context()``; a ``tls://`` server needs an
``ssl.SSLContext`` holding its certificate; ``ssl=`` with a non-TLS address is
a ``ValueError`` rather than a silent plain-text connection.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl as _ssl
import stat
import sys
from typing import Any, Optional, Tuple, Union

from ..addresses import Address

__all__ = [
    "DEFAULT_UNIX_MODE",
    "SSLArg",
    "UnixFile",
    "bind_unix",
    "client_tls",
    "connect_unix",
    "host_port",
    "peer_name",
    "server_tls",
]

#: Permissions of a Unix socket file: owner only.
DEFAULT_UNIX_MODE = 0o600

SSLArg = Union[_ssl.SSLContext, bool, None]


def host_port(address: Address) -> Tuple[str, int]:
    """``(host, port)`` of an IP address (what the loop's create_* methods take)."""
    assert address.host is not None and address.port is not None
    return address.host, address.port


def client_tls(address: Address, ssl: SSLArg) -> Tuple[Optional[_ssl.SSLContext], Optional[str]]:
    """Return ``(context, server_hostname)`` for a client, ``(None, None)`` without TLS.

    Raises:
        ValueError: ``ssl`` was given for an address that is not ``tls://``.
    """
    if address.is_tls:
        if isinstance(ssl, _ssl.SSLContext):
            return ssl, address.host
        if ssl is None or ssl is True:
            return _ssl.create_default_context(), address.host
        raise ValueError(f"a tls:// address needs ssl=None, True or an SSLContext, not {ssl!r}")
    if ssl is not None and ssl is not False:
        raise ValueError(f"ssl= is only for tls:// addresses, not {address.url()}")
    return None, None


def server_tls(address: Address, ssl: SSLArg) -> Optional[_ssl.SSLContext]:
    """Return the server's TLS context, or None without TLS.

    Raises:
        ValueError: a ``tls://`` server without an ``SSLContext``, or ``ssl``
            given for another address.
    """
    if address.is_tls:
        if not isinstance(ssl, _ssl.SSLContext):
            raise ValueError(
                "a tls:// server needs ssl=<ssl.SSLContext> holding its certificate "
                "(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) + load_cert_chain)"
            )
        return ssl
    if ssl is not None and ssl is not False:
        raise ValueError(f"ssl= is only for tls:// addresses, not {address.url()}")
    return None


class UnixFile:
    """The socket file a server bound, removed by :meth:`remove` if still ours."""

    def __init__(self, path: str) -> None:
        st = os.stat(path)
        self.path = path
        self._identity = (st.st_dev, st.st_ino)

    def remove(self) -> None:
        """Unlink the file if it is still the one we bound."""
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                os.unlink(self.path)
        except FileNotFoundError:
            pass


def _remove_stale(path: str, socktype: int) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EADDRINUSE, f"address in use: {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socktype) as probe:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # nobody listens: a dead server's file
            return
        except FileNotFoundError:
            return
        except OSError:
            pass  # a full backlog (EAGAIN) or another socket type: someone is there
    raise OSError(errno.EADDRINUSE, f"address in use: a server is already bound to {path}")


def bind_unix(
    address: Address, unix_mode: Optional[int] = DEFAULT_UNIX_MODE
) -> Tuple[socket.socket, Optional[UnixFile]]:
    """Make a non-blocking Unix socket bound to ``address`` (file rules above).

    Returns:
        The socket and, for a path, the :class:`UnixFile` to remove at close.

    Raises:
        OSError: ``EADDRINUSE`` if a live server owns the path or the path is
            not a socket; any error from ``bind``/``chmod``.
    """
    path = address.path
    assert path is not None
    sock = socket.socket(socket.AF_UNIX, address.socktype)
    try:
        sock.setblocking(False)
        if address.is_abstract:
            sock.bind(path)
            return sock, None
        _remove_stale(path, address.socktype)
        sock.bind(path)
        unix_file = UnixFile(path)
        try:
            if unix_mode is not None:
                os.chmod(path, unix_mode)
        except BaseException:
            unix_file.remove()
            raise
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


def peer_name(sockaddr: Any) -> str:
    """A short printable form of a peer address, for log lines."""
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        host = sockaddr[0]
        return f"[{host}]:{sockaddr[1]}" if ":" in str(host) else f"{host}:{sockaddr[1]}"
    if isinstance(sockaddr, bytes):
        sockaddr = sockaddr.decode("utf-8", "backslashreplace")
    if isinstance(sockaddr, str) and sockaddr.startswith("\0"):
        return "@" + sockaddr[1:]
    return str(sockaddr) if sockaddr else "unnamed peer"
