"""Framed servers: :func:`serve` and :class:`Server`.

Design notes
------------
Stream servers (``tcp``, ``tls``, ``unix``) run ``handler(conn)`` as one task
per connection, started from the protocol's ``connection_made`` (after the TLS
handshake, which asyncio does without blocking the accept loop).

Isolation.  Whatever ends a handler (a clean EOF, bad input from the client,
a reset, a bug in the handler) ends only that task, and the task's ``finally``
closes only that connection.  Each end is logged on the ``framekit`` logger:
a clean close at DEBUG, a client's bad frames or a lost connection at WARNING
(one line, no traceback: the client misbehaved, not the server), and any other
exception from the handler at ERROR with its traceback.

``max_connections``.  asyncio has no public way to stop accepting for a while,
so a connection above the bound is accepted, logged at WARNING and closed at
once: the client sees a clean close rather than a hang in the backlog.  (The
blocking API may choose otherwise; the bound on memory and tasks is the same.)

A host name with port 0 (``tcp://localhost:0``) is bound on its first
address only: asyncio would give each address its own free port, and
:attr:`Server.address` can name only one.  With a fixed port every address
is bound.

Closing.  ``close()`` stops accepting, removes the Unix socket file, closes
every client connection and cancels every handler (a handler awaiting
something other than ``recv()`` would otherwise never notice).
``wait_closed()`` waits for the handlers' tasks, each of which waits (at most
:data:`~.connection.CLOSE_TIMEOUT` seconds, then aborts) for its connection to
close; a task cancelled while it waits (``close()`` cancels every task, also
one whose handler already returned) aborts its connection at once.  When
``wait_closed()`` returns, no client transport is left open.

Datagram addresses (``udp``, ``unixgram``) have no connections: ``serve()``
binds one :class:`~.datagram.DatagramEndpoint` and runs ``handler(endpoint)``
once, as one task; the handler loops over ``recvfrom()`` and replies with
``sendto()``.  When that handler returns, the server closes.  Any sender can
send a malformed datagram, so an error that ``recvfrom()`` raised for a peer
(``CorruptedFrame`` or another ``FramingError``, with ``.address``; a
``SerializationError``; a socket error from ``error_received``, such as
``ConnectionRefusedError``) and that escapes the handler does not close the
server: it is logged at WARNING (one line, naming the peer when known) and the
handler is called again on the same endpoint.  ``recvfrom()`` itself still
raises these errors, so a handler may catch them and keep its own state; any
other exception closes the server, as before.  Closing the endpoint waits for
its buffered datagrams at most ``CLOSE_TIMEOUT`` seconds, then aborts (a Unix
datagram peer that does not read blocks the sender).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as _ssl
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

from .._sockets import (
    DEFAULT_UNIX_MODE,
    UnixFile,
    bind_unix,
    host_port,
    peer_name,
    tls_context,
)
from ..addresses import Address, AddressLike, address_from_sockaddr, parse_address
from ..codecs.interface import Codec
from ..core.options import (
    CLOSE_TIMEOUT,
    DEFAULT_BACKLOG,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_FRAMES,
    FRAME_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    check_max_connections,
    check_max_datagram_size,
    check_queue_bounds,
    check_serializer,
    check_timeout,
    make_codec,
)
from ..errors import ConnectionClosed, FramingError
from ..serializers import Serializer
from .connection import Connection
from .datagram import DatagramEndpoint, open_datagram
from .protocol import FramedProtocol

__all__ = ["Handler", "Server", "serve"]

logger = logging.getLogger("framekit")

#: ``async def handler(conn) -> None``: a :class:`Connection`, or the
#: :class:`DatagramEndpoint` of a datagram server.
Handler = Callable[[Any], Awaitable[Any]]

Peer = Union[Connection, DatagramEndpoint]


class Server:
    """A running framed server; made by :func:`serve`.

    Use ``async with server:`` (closes it on exit), ``await
    server.serve_forever()``, or ``server.close()`` then ``await
    server.wait_closed()``.
    """

    def __init__(
        self,
        address: Address,
        handler: Handler,
        codec: Codec,
        *,
        serializer: Optional[Serializer],
        max_connections: Optional[int],
        max_queued_frames: int,
        max_queued_bytes: int,
        handshake_timeout: Optional[float] = HANDSHAKE_TIMEOUT,
        idle_timeout: Optional[float] = None,
        frame_timeout: Optional[float] = FRAME_TIMEOUT,
    ) -> None:
        self._requested = address
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._frame_timeout = frame_timeout
        self._handler = handler
        self._codec = codec
        self._serializer = serializer
        self._max_connections = max_connections
        self._max_queued_frames = max_queued_frames
        self._max_queued_bytes = max_queued_bytes
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._tasks: Dict[Peer, asyncio.Task[None]] = {}
        self._server: Optional[asyncio.AbstractServer] = None
        self._endpoint: Optional[DatagramEndpoint] = None
        self._unix_file: Optional[UnixFile] = None
        self._address = ""
        #: The peers being handled when close() was called: wait_closed()
        #: leaves none of their transports open.
        self._closing_peers: List[Peer] = []
        #: Bound on each peer's graceful close, in seconds.
        self._close_timeout: Optional[float] = CLOSE_TIMEOUT

    # -- starting -------------------------------------------------------------

    def _protocol_factory(self) -> FramedProtocol:
        return FramedProtocol(
            self._codec,
            max_queued_frames=self._max_queued_frames,
            max_queued_bytes=self._max_queued_bytes,
            on_connection_made=self._connection_made,
            idle_timeout=self._idle_timeout,
            frame_timeout=self._frame_timeout,
        )

    async def _start(
        self, ssl: Optional[_ssl.SSLContext], unix_mode: Optional[int], backlog: int
    ) -> None:
        addr = self._requested
        handshake = None if ssl is None else self._handshake_timeout
        if addr.is_unix:
            sock, self._unix_file = bind_unix(addr, unix_mode)
            try:
                self._server = await self._loop.create_unix_server(
                    self._protocol_factory,
                    sock=sock,
                    ssl=ssl,
                    backlog=backlog,
                    ssl_handshake_timeout=handshake,
                )
            except BaseException:
                sock.close()
                if self._unix_file is not None:
                    self._unix_file.remove()
                raise
        else:
            host, port = host_port(addr)
            if port == 0 and addr.family == socket.AF_UNSPEC:
                # A name may resolve to several addresses, and port 0 would give
                # each its own port: bind the first one only.
                infos = await self._loop.getaddrinfo(
                    host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
                host = str(infos[0][4][0])
            self._server = await self._loop.create_server(
                self._protocol_factory,
                host,
                port,
                ssl=ssl,
                backlog=backlog,
                ssl_handshake_timeout=handshake,
            )
        bound = address_from_sockaddr(addr.scheme, self._server.sockets[0].getsockname())
        if addr.is_tls and addr.family == socket.AF_UNSPEC:
            # Keep the host name: certificates are usually issued for names.
            bound = Address(addr.scheme, host=addr.host, port=bound.port)
        self._address = bound.url()

    def _start_datagram(self, endpoint: DatagramEndpoint) -> None:
        self._endpoint = endpoint
        self._address = address_from_sockaddr(self._requested.scheme, endpoint.local_address).url()
        self._start_handler(endpoint, f"datagram endpoint {self._address}")

    def _connection_made(self, protocol: FramedProtocol) -> None:
        transport = protocol.transport
        assert transport is not None
        peer = peer_name(self._requested.scheme, transport.get_extra_info("peername"))
        if self._closed.done():
            protocol.close(abort=True)
            return
        if self._max_connections is not None and len(self._tasks) >= self._max_connections:
            logger.warning(
                "%s: refusing connection from %s: max_connections (%d) reached",
                self._address,
                peer,
                self._max_connections,
            )
            protocol.close()
            return
        conn = Connection(transport, protocol, serializer=self._serializer)
        self._start_handler(conn, f"connection from {peer}")

    def _start_handler(self, peer: Peer, name: str) -> None:
        task = self._loop.create_task(self._run(peer, name))
        self._tasks[peer] = task
        # Not in _run's finally: a task cancelled before it started never runs it.
        task.add_done_callback(lambda _: self._tasks.pop(peer, None))

    async def _run(self, peer: Peer, name: str) -> None:
        try:
            if peer is self._endpoint:
                await self._serve_datagrams(peer)
            else:
                await self._handler(peer)
            logger.debug("%s: %s: handler done", self._address, name)
        except ConnectionClosed:
            logger.debug("%s: %s closed", self._address, name)
        except asyncio.CancelledError:
            logger.debug("%s: %s: handler cancelled", self._address, name)
        except FramingError as exc:
            logger.warning(
                "%s: closing %s: bad input: %s: %s", self._address, name, type(exc).__name__, exc
            )
        except (ConnectionError, _ssl.SSLError) as exc:
            logger.warning("%s: %s lost: %s: %s", self._address, name, type(exc).__name__, exc)
        except TimeoutError as exc:
            logger.warning("%s: closing %s: %s", self._address, name, exc)
        except Exception:
            logger.exception("%s: handler failed on %s; closing it", self._address, name)
        finally:
            await peer.close(self._close_timeout)
            if peer is self._endpoint:
                self.close()

    async def _serve_datagrams(self, endpoint: DatagramEndpoint) -> None:
        """Run the datagram handler; call it again after a peer's bad datagram.

        Any sender can send a malformed datagram: it must not stop the service.
        """
        while True:
            try:
                await self._handler(endpoint)
                return
            except Exception as exc:
                if exc is not endpoint.last_receive_error or self._closed.done() or endpoint.closed:
                    raise
                endpoint.last_receive_error = None  # the same error never restarts twice
                sender = getattr(exc, "address", None)
                logger.warning(
                    "%s: %s: %s: %s; handler restarted",
                    self._address,
                    "socket error, peer unknown"
                    if sender is None
                    else f"datagram from {peer_name(self._requested.scheme, sender)}",
                    type(exc).__name__,
                    exc,
                )

    # -- public API -----------------------------------------------------------

    @property
    def address(self) -> str:
        """The bound address as a URL that :func:`~framekit.asyncio.connect`
        accepts, with the real port (``tcp://127.0.0.1:40123``)."""
        return self._address

    @property
    def connections(self) -> List[Peer]:
        """The client connections being handled (the endpoint, for datagrams)."""
        return list(self._tasks)

    def is_serving(self) -> bool:
        """Whether the server accepts connections (or datagrams)."""
        return not self._closed.done()

    def close(self) -> None:
        """Stop serving: stop accepting, close every client connection, cancel
        the handlers.  Safe to call more than once; see :meth:`wait_closed`."""
        if self._closed.done():
            return
        self._closed.set_result(None)
        if self._server is not None:
            self._server.close()
        if self._unix_file is not None:
            self._unix_file.remove()
        self._closing_peers = list(self._tasks)
        for peer, task in list(self._tasks.items()):
            peer.transport.close()
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every handler has finished."""
        await asyncio.shield(self._closed)
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        # Each task closed its peer (aborting after the close timeout, or when
        # cancelled); a task cancelled before it ran never did: abort what is left.
        for peer in self._closing_peers:
            peer.abort()  # a no-op for one already gone
            await peer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()
        if self._endpoint is not None:
            await self._endpoint.close()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called or this coroutine is cancelled
        (which closes the server)."""
        try:
            await asyncio.shield(self._closed)
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise
        await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        state = "serving" if self.is_serving() else "closed"
        return f"<framekit.asyncio.Server {self._address} {state}, {len(self._tasks)} handlers>"


async def serve(
    address: AddressLike,
    handler: Handler,
    codec: Optional[Codec] = None,
    *,
    ssl: Optional[_ssl.SSLContext] = None,
    max_connections: Optional[int] = None,
    serializer: Optional[Serializer] = None,
    max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    max_datagram_size: Optional[int] = None,
    unix_mode: Optional[int] = DEFAULT_UNIX_MODE,
    backlog: int = DEFAULT_BACKLOG,
    handshake_timeout: Optional[float] = HANDSHAKE_TIMEOUT,
    idle_timeout: Optional[float] = None,
    frame_timeout: Optional[float] = FRAME_TIMEOUT,
) -> Server:
    """Bind ``address`` and serve: ``await handler(conn)`` runs once per connection.

    Args:
        address: ``tcp://host:port`` (port 0: a free port, see
            :attr:`Server.address`), ``tls://host:port``, ``unix:///path``,
            ``unix:@name``, ``udp://host:port``, ``unixgram:///path``, or a
            ``(host, port)`` tuple (TCP).
        handler: ``async def handler(conn)``, given a :class:`Connection`; for
            datagram addresses it runs once, given the
            :class:`~framekit.asyncio.DatagramEndpoint`.
        codec: the framing; None means ``framekit.LengthPrefixed()``.
        ssl: the server's ``ssl.SSLContext`` (with its certificate): required
            for ``tls://``; with ``tcp://`` or ``unix://`` it turns TLS on.
        max_connections: connections handled at once; more are closed at once
            (and logged).  None: no bound.
        serializer: connections send and receive objects through it.
        max_queued_frames: per connection, pause reading above this many
            unread frames.
        max_queued_bytes: per connection, pause reading above this many
            unread bytes.
        max_datagram_size: datagram addresses only (see
            :func:`~framekit.asyncio.open_datagram`).
        unix_mode: permissions of the Unix socket file (None: the umask's).
        backlog: the listen backlog.
        handshake_timeout: seconds a TLS client has to finish its handshake.
        idle_timeout: seconds a connection may send nothing while its handler
            waits for input; then ``recv()`` raises ``TimeoutError`` and (unless
            the handler catches it) the connection is closed.  None: no limit
            (connections may be idle by design).
        frame_timeout: seconds a frame begun may take to arrive whole (the
            slow-trickle defence); then as for ``idle_timeout``.  None: no limit.

    Returns:
        The :class:`Server`, already serving.

    Raises:
        ValueError: a malformed address, a ``tls://`` address without
            ``ssl``, ``ssl`` with a datagram address, or a bad bound.
        TypeError: ``handler`` is not callable, ``ssl`` is not an
            ``ssl.SSLContext``, or ``codec`` or ``serializer`` lacks the
            needed methods.
        OSError: binding failed (``EADDRINUSE``: a live server owns the
            address or the Unix path).
    """
    addr = parse_address(address)
    if not callable(handler):
        raise TypeError(f"handler must be an async function, not {type(handler).__name__}")
    codec = make_codec(codec)
    check_serializer(serializer)
    check_queue_bounds(max_queued_frames, max_queued_bytes)
    max_connections = check_max_connections(max_connections)
    check_max_datagram_size(max_datagram_size)
    if max_connections is not None and addr.is_datagram:
        raise ValueError(f"max_connections is for stream servers, not {addr.url()}")
    if max_datagram_size is not None and not addr.is_datagram:
        raise ValueError(f"max_datagram_size is for udp:// and unixgram://, not {addr.url()}")
    handshake_timeout = check_timeout("handshake_timeout", handshake_timeout)
    idle_timeout = check_timeout("idle_timeout", idle_timeout)
    frame_timeout = check_timeout("frame_timeout", frame_timeout)
    context = tls_context(addr, ssl, server_side=True)
    server = Server(
        addr,
        handler,
        codec,
        serializer=serializer,
        max_connections=max_connections,
        max_queued_frames=max_queued_frames,
        max_queued_bytes=max_queued_bytes,
        handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout,
        frame_timeout=frame_timeout,
    )
    if addr.is_datagram:
        endpoint = await open_datagram(
            local=addr,
            codec=codec,
            serializer=serializer,
            max_datagram_size=max_datagram_size,
            max_queued_frames=max_queued_frames,
            max_queued_bytes=max_queued_bytes,
            unix_mode=unix_mode,
        )
        server._start_datagram(endpoint)
    else:
        await server._start(context, unix_mode, backlog)
    return server
