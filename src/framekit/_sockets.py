"""Socket rules shared by the blocking and asyncio transports.

Design notes
------------
Both transports create their sockets themselves (:mod:`framekit.sync._sockets`,
:mod:`framekit.asyncio._sockets`); what does not depend on blocking calls or an
event loop lives here once, so the two cannot drift apart:

* **Unix socket files** (:class:`UnixFile`; abstract names have no file):

  - *Permissions.*  The file gets ``unix_mode`` (default 0600).  The socket is
    ``fchmod``-ed *before* ``bind`` (Linux creates the file from the socket
    inode's mode, less the umask), so the file is never more open than asked,
    even for an instant, and the file is ``chmod``-ed after ``bind`` to get
    exactly that mode whatever the umask.  ``os.umask`` is process-wide and
    would race with other threads, so it is not touched.  ``unix_mode=None``
    (asyncio) leaves the umask's mode.
  - *Stale files.*  A server killed without cleanup leaves its file behind, and
    ``bind`` would fail with ``EADDRINUSE``.  Before binding, the path is
    probed with a non-blocking ``connect``: only ``ConnectionRefusedError``
    (nobody listens) means stale, and the file is removed.  Anything else means
    someone is there, and binding fails with ``EADDRINUSE``, "address in use":
    a connect that succeeds, ``EAGAIN`` (a live server with a full backlog),
    ``EPROTOTYPE`` (a live socket of the other type: a datagram socket probed
    with a stream socket or the reverse), ``EPERM`` (a datagram socket
    connected to someone else)...  A path that is not a socket is never removed.
    Two servers may find the same stale file at once: the file's
    ``(st_dev, st_ino, st_ctime_ns)`` is recorded before the probe and checked
    again right before the ``unlink``, so a server removes only the file it
    probed, never the one the other has just bound (it fails with "address in
    use" instead).  The change time is part of it because a freed inode number
    is reused at once (ext4, tmpfs): the other's new file often has the stale
    file's number.  A window of a few instructions between that check and the
    ``unlink`` remains, and two files made within one tick of the filesystem's
    clock look alike (closing these would take a lock file).
  - *Cleanup.*  A :class:`UnixFile` remembers the inode it created and removes
    the file at close only if it is still that inode (another server may have
    replaced it meanwhile).

* **TLS arguments** (:func:`tls_context`): ``tls://`` without ``ssl=`` verifies
  the server with ``ssl.create_default_context()``; a context given with
  ``tcp://`` or ``unix://`` turns TLS on; a ``tls://`` server needs a context
  holding its certificate; datagrams cannot have TLS.  Wrapping is the
  transports' business.

* **Peer names** in log lines and error messages (:func:`peer_name`): the
  peer's address as a URL in the server's scheme.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl as _ssl
import stat
from typing import Any, Optional, Tuple

from .addresses import Address, address_from_sockaddr

__all__ = ["DEFAULT_UNIX_MODE", "UnixFile", "peer_name", "tls_context"]

#: Permissions of a Unix socket file: owner only.
DEFAULT_UNIX_MODE = 0o600


class UnixFile:
    """The file of a Unix socket bound to a path: its mode and its removal.

    Use: :meth:`prepare` before creating the socket, :meth:`before_bind` on
    the new socket, ``sock.bind(path)``, :meth:`created`; :meth:`remove` at
    close.
    """

    def __init__(self, address: Address, mode: Optional[int]) -> None:
        assert address.path is not None and not address.is_abstract
        self.address = address
        self.path = address.path
        self.mode = mode
        self._identity: Optional[Tuple[int, int]] = None

    @classmethod
    def prepare(cls, address: Address, mode: Optional[int] = DEFAULT_UNIX_MODE) -> UnixFile:
        """Clear the way for binding ``address``: remove a stale socket file.

        Raises:
            OSError: ``EADDRINUSE`` if someone is at the path (see the design
                notes) or the path exists and is not a socket.
        """
        unix_file = cls(address, mode)
        unix_file._remove_stale()
        return unix_file

    def before_bind(self, sock: socket.socket) -> None:
        """Give the new socket the file's mode, before ``bind`` creates the file."""
        if self.mode is not None:
            os.fchmod(sock.fileno(), self.mode)

    def created(self) -> None:
        """Called right after ``bind``: remember the inode, set the exact mode.

        If the ``chmod`` fails, the new file is removed before the error goes on.
        """
        info = os.stat(self.path)
        self._identity = (info.st_dev, info.st_ino)
        if self.mode is not None:
            try:
                os.chmod(self.path, self.mode)
            except BaseException:
                self.remove()
                raise

    def remove(self) -> None:
        """Remove the file if it is still the one bound here.  Safe to call again."""
        if self._identity is None:
            return
        try:
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._identity = None

    def _remove_stale(self) -> None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise self._in_use(f"{self.path} exists and is not a socket")
        # A freed inode number is reused at once (ext4, tmpfs): the change time
        # tells a new file from the stale one that had the same number.
        identity = (info.st_dev, info.st_ino, info.st_ctime_ns)
        with socket.socket(socket.AF_UNIX, self.address.socktype) as probe:
            probe.setblocking(False)
            try:
                probe.connect(self.path)
            except ConnectionRefusedError:
                pass  # nobody listens: a dead server's file
            except FileNotFoundError:
                return  # gone meanwhile
            except OSError:
                raise self._in_use("a server is listening there") from None
            else:
                raise self._in_use("a server is listening there")
        # Another server may have removed the stale file and bound its own (not
        # listening yet, so the probe was refused too): unlink only the file probed.
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino, info.st_ctime_ns) != identity:
            raise self._in_use("another server has just bound it")
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _in_use(self, why: str) -> OSError:
        return OSError(
            errno.EADDRINUSE, f"cannot bind {self.address.url()}: address in use ({why})"
        )


def tls_context(
    address: Address, context: Optional[_ssl.SSLContext], *, server_side: bool
) -> Optional[_ssl.SSLContext]:
    """The TLS context to use for ``address``, or ``None`` for a plain connection.

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


def peer_name(scheme: str, sockaddr: Any) -> str:
    """A readable name for a peer's socket address, for log lines: its URL.

    ``scheme`` is the server's (a ``tls://`` peer is named as ``tcp://``).
    """
    if not sockaddr:
        return f"an unnamed {scheme} peer"
    if scheme == "tls":
        scheme = "tcp"
    try:
        return address_from_sockaddr(scheme, sockaddr).url()
    except (TypeError, IndexError, ValueError):
        return repr(sockaddr)
