"""Socket creation for the blocking transports: connect, bind, Unix socket files.

Design notes
------------
Client and server build their sockets here, and TCP, UDP and Unix sockets share
one code path: an :class:`~framekit.addresses.Address` knows its family and
socket type, :func:`_candidates` turns it into ``(family, type, proto,
sockaddr)`` tuples (``getaddrinfo`` for IP, the path itself for Unix), and the
same loop tries each one.  The only Unix-specific code is what a filesystem
path needs and an IP port does not: its permissions, stale files and cleanup,
by the rules the asyncio transports share (:class:`framekit._sockets.UnixFile`,
whose design notes give them).  Abstract names (``unix:@name``) have no file.

TLS is not here: :func:`framekit._sockets.tls_context` picks the context, and
wrapping is the caller's business (the client wraps at once, the server in
each connection's thread).
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any, List, Optional, Tuple

from .._sockets import DEFAULT_UNIX_MODE, UnixFile
from ..addresses import Address, address_from_sockaddr

__all__ = ["bind_socket", "bound_address", "connect_socket", "set_nodelay"]

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


def _named_error(exc: OSError, action: str, address: Address) -> OSError:
    """Return ``exc`` re-made with a message that names the address."""
    if isinstance(exc, socket.timeout):
        return TimeoutError(f"cannot {action} {address.url()}: timed out")
    in_use = exc.errno == errno.EADDRINUSE
    reason = "address in use" if in_use else exc.strerror or str(exc)
    made = type(exc)(exc.errno, f"cannot {action} {address.url()}: {reason}")
    made.__cause__ = exc
    return made


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


def bind_socket(
    address: Address,
    *,
    backlog: int = 128,
    unix_mode: int = DEFAULT_UNIX_MODE,
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
