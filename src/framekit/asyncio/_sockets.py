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

* created with mode 0600 (``unix_mode=``): the socket is ``fchmod``-ed
  *before* ``bind()`` (Linux creates the file from the socket inode's mode,
  less the umask, so it is never more open than asked, even for an instant),
  then the file is ``chmod``-ed after ``bind()`` to get exactly that mode
  whatever the umask (``os.umask`` is process-wide: not touched);
* a stale file, one that refuses connections because its server died, is
  removed and replaced; a live server at that path is an ``OSError``
  (``EADDRINUSE``) that says so; a file that is not a socket is never removed;
* removed when the server closes, but only if it is still the file we bound
  (another server may have replaced it meanwhile).

Abstract names have no file: none of this applies to them.

TLS follows the blocking API: ``tls://`` without ``ssl=`` verifies the server
with ``ssl.create_default_context()``; an ``ssl.SSLContext`` given with
``tcp://`` or ``unix://`` turns TLS on; a ``tls://`` server needs a context
holding its certificate; datagrams cannot have TLS.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl as _ssl
import stat
import sys
from typing import Any, Optional, Tuple

from ..addresses import Address

__all__ = [
    "DEFAULT_UNIX_MODE",
    "UnixFile",
    "bind_unix",
    "connect_unix",
    "host_port",
    "peer_name",
    "tls_context",
]

#: Permissions of a Unix socket file: owner only.
DEFAULT_UNIX_MODE = 0o600


def host_port(address: Address) -> Tuple[str, int]:
    """``(host, port)`` of an IP address (what the loop's create_* methods take)."""
    assert address.host is not None and address.port is not None
    return address.host, address.port


def tls_context(
    address: Address, context: Optional[_ssl.SSLContext], *, server_side: bool
) -> Optional[_ssl.SSLContext]:
    """The TLS context for ``address``, or None for a plain connection.

    ``tls://`` without a context gives a client ``ssl.create_default_context()``
    (verified); a context given with ``tcp://`` or ``unix://`` turns TLS on.

    Raises:
        ValueError: TLS for a datagram address, or a ``tls://`` server without
            a context (a server needs its certificate).
        TypeError: ``context`` is not an ``ssl.SSLContext``.
    """
    if context is not None and not isinstance(context, _ssl.SSLContext):
        raise TypeError(f"ssl must be an ssl.SSLContext, not {type(context).__name__}")
    if address.is_datagram:
        if context is not None:
            raise ValueError(f"TLS is not available for datagrams ({address.url()})")
        return None
    if context is not None or not address.is_tls:
        return context
    if server_side:
        raise ValueError(
            f"serving {address.url()} needs ssl=: an ssl.SSLContext with the server's "
            "certificate (ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH); "
            "ctx.load_cert_chain(certfile, keyfile))"
        )
    return _ssl.create_default_context()


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
        raise OSError(
            errno.EADDRINUSE, f"cannot bind {path}: address in use (it exists and is not a socket)"
        )
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
    raise OSError(
        errno.EADDRINUSE, f"cannot bind {path}: address in use (a server is listening there)"
    )


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
        if unix_mode is not None:
            os.fchmod(sock.fileno(), unix_mode)
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
