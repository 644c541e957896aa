"""Socket rules: every transport makes, binds and names its sockets here.

Design notes
------------
One module of socket rules for every transport (blocking, asyncio, anyio), so
they cannot drift apart.  Nothing here frames bytes or touches an event loop
(the one coroutine, :func:`connect_unix`, is given the loop's ``sock_connect``).

* **Creation and binding, one code path for every family** (:func:`connect_socket`,
  :func:`bind_socket`, :func:`bind_unix`).  An :class:`~framekit.addresses.Address`
  knows its family and socket type; :func:`_candidates` turns it into ``(family,
  type, proto, sockaddr)`` tuples (``getaddrinfo`` for IP, the path itself for
  Unix) and the same loop tries each one.  The only Unix-specific code is what a
  filesystem path needs and an IP port does not.  The event-loop transports make
  Unix sockets here too and hand them to the loop with ``sock=``: the file rules
  need the socket before and after ``bind()``, and uvloop passes paths to libuv
  as C strings, which cannot hold an abstract (``unix:@name``) address.  Errors
  name the address (:func:`_named_error`).

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
import struct
import sys
from typing import Any, List, Optional, Tuple

from .addresses import Address, address_from_sockaddr

__all__ = [
    "DEFAULT_UNIX_MODE",
    "UnixFile",
    "bind_socket",
    "bind_unix",
    "bound_address",
    "bound_sends",
    "connect_error",
    "connect_socket",
    "connect_unix",
    "host_port",
    "peer_name",
    "set_nodelay",
    "tls_context",
]

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


# -- creating, connecting and binding -------------------------------------------

Candidate = Tuple[int, int, int, Any]


def _candidates(address: Address, *, passive: bool) -> List[Candidate]:
    """``(family, type, proto, sockaddr)`` to try, in order, for ``address``."""
    if address.is_unix:
        return [(socket.AF_UNIX, address.socktype, 0, address.path)]
    flags = socket.AI_PASSIVE if passive else 0
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, address.family, address.socktype, 0, flags
        )
    except socket.gaierror as exc:
        raise socket.gaierror(exc.errno, f"cannot resolve {address.url()}: {exc.strerror}") from exc
    return [(family, kind, proto, sockaddr) for family, kind, proto, _, sockaddr in infos]


def _try_each(
    address: Address, action: str, *, passive: bool, setup: Any, finish: Any
) -> socket.socket:
    """Create a socket for each candidate of ``address`` until ``finish`` succeeds.

    ``setup(sock, candidate)`` configures a new socket, ``finish(sock, sockaddr)``
    connects or binds it.  The first error is re-raised, naming the address,
    if every candidate fails.
    """
    first_error: Optional[OSError] = None
    for family, kind, proto, sockaddr in _candidates(address, passive=passive):
        sock = socket.socket(family, kind, proto)
        try:
            setup(sock, family)
            finish(sock, sockaddr)
        except OSError as exc:
            sock.close()
            if first_error is None:
                first_error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    assert first_error is not None  # getaddrinfo never returns an empty list
    raise _named_error(first_error, action, address)


#: The likely cause of a failed connect, by errno: said after the reason.
_CONNECT_CAUSES = {
    errno.ECONNREFUSED: "nothing is listening at that address",
    errno.ENOENT: "no such socket file: is the server running?",
    errno.ECONNRESET: (
        "the server closed the connection at once: it may expect TLS (tls://), "
        "or be at its max_connections"
    ),
    errno.EHOSTUNREACH: "no route to that host",
    errno.ENETUNREACH: "no route to that network",
    errno.EACCES: "permission denied on the socket file",
}


def _named_error(exc: OSError, action: str, address: Address) -> OSError:
    """Return ``exc`` re-made with a message that names the address, what failed,
    and (for a connect) the likely cause."""
    if isinstance(exc, socket.timeout) or (exc.errno == errno.ETIMEDOUT):
        made: OSError = TimeoutError(f"cannot {action} {address.url()}: timed out")
        made.__cause__ = exc
        return made
    if isinstance(exc, _ssl.SSLError):
        return _tls_error(exc, action, address)
    if exc.errno == errno.EADDRINUSE:
        reason = "address in use"
    elif exc.errno and action == "connect to":
        reason = os.strerror(exc.errno)  # asyncio's own says "Connect call failed (...)"
    else:
        reason = exc.strerror or str(exc)
    cause = _CONNECT_CAUSES.get(exc.errno or 0) if action == "connect to" else None
    message = f"cannot {action} {address.url()}: {reason}"
    if cause:
        message += f" ({cause})"
    made = type(exc)(exc.errno, message)
    made.__cause__ = exc
    return made


def _tls_error(exc: _ssl.SSLError, action: str, address: Address) -> OSError:
    reason = getattr(exc, "verify_message", None) or exc.reason or exc.strerror or str(exc)
    message = f"cannot {action} {address.url()}: TLS handshake failed: {reason}"
    text = str(exc)
    if isinstance(exc, _ssl.SSLCertVerificationError):
        message += " (the server's certificate is not trusted: pass ssl= a context that trusts it)"
    elif "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        message += " (the server does not seem to speak TLS: try tcp://)"
    try:
        made: OSError = type(exc)(exc.errno, message)
    except TypeError:  # pragma: no cover - an SSLError subclass with another signature
        return exc
    made.__cause__ = exc
    return made


def connect_error(exc: OSError, address: Address) -> OSError:
    """A failed connect to ``address``, as every transport reports it: the same
    exception type, a message with the address, the reason and the likely cause."""
    return _named_error(exc, "connect to", address)


def connect_socket(address: Address, timeout: Optional[float]) -> socket.socket:
    """Return a socket connected to ``address`` (stream or datagram).

    A Unix datagram client is bound to an autobound abstract name first (Linux),
    so that the server has an address to reply to.

    Args:
        address: where to connect.
        timeout: applies to ``connect`` and stays set on the returned socket.

    Raises:
        OSError: no candidate address accepted; the message names the address.
    """

    def setup(sock: socket.socket, family: int) -> None:
        sock.settimeout(timeout)
        if family == socket.AF_UNIX and address.is_datagram:
            sock.bind("")  # Linux autobind: a unique abstract name to reply to
        elif not address.is_datagram:
            set_nodelay(sock)

    return _try_each(address, "connect to", passive=False, setup=setup, finish=_connect)


def _connect(sock: socket.socket, sockaddr: Any) -> None:
    sock.connect(sockaddr)


def set_nodelay(sock: socket.socket) -> None:
    """Turn Nagle's algorithm off on a TCP socket (a no-op for Unix sockets).

    Frames go out whole, one send each, and a request must not wait for the
    ACK of the previous one.
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def bound_sends(sock: socket.socket, seconds: Optional[float]) -> bool:
    """Make each send on a blocking socket wait at most ``seconds`` while the peer
    takes nothing (``SO_SNDTIMEO``): the send then fails with ``BlockingIOError``
    (``ssl.SSLWantWriteError`` under TLS), having sent part of its bytes or none.

    Returns:
        Whether the bound is set: not for None, for a socket with a Python
        timeout (Python waits itself then), or where the option is missing.
    """
    if seconds is None or sock.gettimeout() is not None or not hasattr(socket, "SO_SNDTIMEO"):
        return False
    whole = int(seconds)
    micro = min(999_999, round((seconds - whole) * 1e6))
    if not whole and not micro:
        micro = 1  # zero would mean "no bound"
    timeval = struct.pack("@ll", whole, micro)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    except OSError:
        return False
    return True


def bind_socket(
    address: Address,
    *,
    backlog: int = 128,
    unix_mode: Optional[int] = DEFAULT_UNIX_MODE,
    reuse_port: bool = False,
) -> Tuple[socket.socket, Optional[UnixFile]]:
    """Bind (and for streams, listen on) ``address``.

    Args:
        address: where to bind; port 0 picks a free port.
        backlog: ``listen`` backlog for stream sockets.
        unix_mode: permissions of a Unix socket file.
        reuse_port: set ``SO_REUSEPORT`` (IP only) so several processes can
            share the port.

    Returns:
        The socket and, for a Unix path, the :class:`UnixFile` to remove at
        shutdown (``None`` otherwise).

    Raises:
        OSError: the address is in use (``EADDRINUSE``, "address in use") or
            cannot be bound; the message names the address.
        ValueError: ``reuse_port`` for a Unix address.
    """
    if reuse_port and address.is_unix:
        raise ValueError(f"reuse_port is for IP addresses, not {address.url()}")
    unix_file = None
    if address.is_unix and not address.is_abstract:
        unix_file = UnixFile.prepare(address, unix_mode)

    def setup(sock: socket.socket, family: int) -> None:
        if family == socket.AF_UNIX:
            if unix_file is not None:
                unix_file.before_bind(sock)
            return
        if not address.is_datagram and os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)

    def finish(sock: socket.socket, sockaddr: Any) -> None:
        sock.bind(sockaddr)
        if unix_file is not None:
            unix_file.created()
        if not address.is_datagram:
            try:
                sock.listen(backlog)
            except BaseException:
                if unix_file is not None:
                    unix_file.remove()  # the file bind() made is ours to remove
                raise

    sock = _try_each(address, "bind", passive=True, setup=setup, finish=finish)
    return sock, unix_file


def bound_address(address: Address, sock: socket.socket) -> Address:
    """The address ``sock`` is bound to, with the real port, in ``address``'s scheme.

    For ``tls://`` a host *name* is kept (certificates are usually issued for
    names), with the bound port.
    """
    bound = address_from_sockaddr(address.scheme, sock.getsockname())
    if address.is_tls and address.family == socket.AF_UNSPEC:
        return Address(address.scheme, host=address.host, port=bound.port)
    return bound


# -- for event loops ---------------------------------------------------------------


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


async def connect_unix(address: Address, loop: Any) -> socket.socket:
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
            await loop.sock_connect(sock, address.sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock
