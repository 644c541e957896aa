"""Address URLs shared by the blocking and asyncio transports.

Design notes
------------
One parser for every transport, so ``tcp://``, ``tls://``, ``udp://``,
``unix://`` and ``unixgram://`` mean the same thing everywhere and a bad address
fails the same way: a ``ValueError`` that names the bad part.  A Unix socket is
not a copy of TCP: it is the same transport with another address family, so an
:class:`Address` carries the family and socket type and the transports simply
branch on them.

Forms accepted::

    tcp://127.0.0.1:5001   tcp://[::1]:5001   tcp://localhost:5001
    tls://example.com:443  (TCP + TLS)
    udp://127.0.0.1:5002
    unix:///abs/path.sock  unix:@name  (Linux abstract namespace)
    unixgram:///abs/path.sock  unixgram:@name
    ("127.0.0.1", 5001)    a (host, port) tuple means TCP

Port 0 asks the kernel for a free port (servers).  Host names are resolved by
the transport when it connects or binds, not here.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

__all__ = ["SCHEMES", "Address", "AddressLike", "parse_address", "address_from_sockaddr"]

#: Supported URL schemes.
SCHEMES = ("tcp", "tls", "udp", "unix", "unixgram")

AddressLike = Union[str, Tuple[str, int], "Address"]


@dataclass(frozen=True)
class Address:
    """A parsed transport address.

    Attributes:
        scheme: ``tcp``, ``tls``, ``udp``, ``unix`` or ``unixgram``.
        host: host name or IP literal (brackets removed) for IP schemes.
        port: port number for IP schemes.
        path: filesystem path for Unix schemes, or ``"\\0name"`` for an
            abstract-namespace name.
    """

    scheme: str
    host: Optional[str] = None
    port: Optional[int] = None
    path: Optional[str] = None

    @property
    def is_unix(self) -> bool:
        return self.scheme in ("unix", "unixgram")

    @property
    def is_datagram(self) -> bool:
        return self.scheme in ("udp", "unixgram")

    @property
    def is_tls(self) -> bool:
        return self.scheme == "tls"

    @property
    def is_abstract(self) -> bool:
        return self.path is not None and self.path.startswith("\0")

    @property
    def socktype(self) -> int:
        return socket.SOCK_DGRAM if self.is_datagram else socket.SOCK_STREAM

    @property
    def family(self) -> int:
        """``AF_UNIX``, ``AF_INET`` or ``AF_INET6`` for IP literals, and
        ``AF_UNSPEC`` for host names (resolve with ``getaddrinfo``)."""
        if self.is_unix:
            return socket.AF_UNIX
        assert self.host is not None
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return socket.AF_UNSPEC
        return socket.AF_INET6 if ip.version == 6 else socket.AF_INET

    @property
    def sockaddr(self) -> Any:
        """What ``socket.connect``/``bind`` take: a path or ``(host, port)``."""
        if self.is_unix:
            return self.path
        return (self.host, self.port)

    def url(self) -> str:
        """The address as a URL that :func:`parse_address` accepts."""
        if self.is_unix:
            assert self.path is not None
            if self.is_abstract:
                return f"{self.scheme}:@{self.path[1:]}"
            return f"{self.scheme}://{self.path}"
        host = self.host or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url()


def _parse_port(text: str, address: str) -> int:
    if not text:
        raise ValueError(f"missing port in address {address!r}")
    if not (text.isascii() and text.isdigit()):  # not '²' or full-width digits
        raise ValueError(f"invalid port {text!r} in address {address!r}")
    port = int(text)
    if port > 65535:
        raise ValueError(f"port {port} out of range (0-65535) in address {address!r}")
    return port


def parse_address(address: AddressLike) -> Address:
    """Parse an address URL (or a ``(host, port)`` tuple, meaning TCP).

    Raises:
        ValueError: the address is malformed; the message names the bad part.
    """
    if isinstance(address, Address):
        return address
    if isinstance(address, tuple):
        if len(address) != 2 or not isinstance(address[0], str):
            raise ValueError(f"a tuple address must be (host, port), got {address!r}")
        host, port = address
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"invalid port {port!r} in address {address!r}")
        return Address("tcp", host=host.strip("[]"), port=port)
    if not isinstance(address, str):
        raise ValueError(f"an address must be a URL string or (host, port), got {address!r}")
    scheme, sep, rest = address.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            f"unknown scheme {scheme!r} in address {address!r}; "
            f"expected one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    if scheme in ("unix", "unixgram"):
        if rest.startswith("@"):
            name = rest[1:]
            if not name:
                raise ValueError(f"empty abstract socket name in address {address!r}")
            return Address(scheme, path="\0" + name)
        if not rest.startswith("//"):
            raise ValueError(
                f"invalid {scheme} address {address!r}: use {scheme}:///absolute/path "
                f"or {scheme}:@abstract-name"
            )
        path = rest[2:]
        if not path.startswith("/"):
            raise ValueError(
                f"{scheme} path must be absolute, got {path!r} in address {address!r} "
                f"(write {scheme}:///tmp/name.sock)"
            )
        return Address(scheme, path=path)
    if not rest.startswith("//"):
        raise ValueError(f"invalid {scheme} address {address!r}: expected {scheme}://host:port")
    hostport = rest[2:].rstrip("/")
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket:
            raise ValueError(f"unclosed '[' in IPv6 host of address {address!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 host {host!r} in address {address!r}") from None
        if not tail.startswith(":"):
            raise ValueError(f"missing port in address {address!r}")
        port = _parse_port(tail[1:], address)
    else:
        host, colon, port_text = hostport.rpartition(":")
        if not colon:
            raise ValueError(f"missing port in address {address!r}")
        if ":" in host:
            raise ValueError(f"IPv6 host must be in brackets ([{host}]) in address {address!r}")
        port = _parse_port(port_text, address)
    if not host:
        raise ValueError(f"missing host in address {address!r}")
    return Address(scheme, host=host, port=port)


def address_from_sockaddr(scheme: str, sockaddr: Any) -> Address:
    """Build the :class:`Address` of a bound or peer socket address.

    ``sockaddr`` is what ``socket.getsockname()`` returns for that scheme.
    """
    if scheme in ("unix", "unixgram"):
        if isinstance(sockaddr, bytes):
            sockaddr = sockaddr.decode("utf-8", "surrogateescape")
        return Address(scheme, path=sockaddr)
    return Address(scheme, host=sockaddr[0], port=sockaddr[1])
