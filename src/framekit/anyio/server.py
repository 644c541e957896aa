"""Framed servers on anyio: :func:`serve` and :class:`Server`.

Design notes
------------
**Structured concurrency.**  :func:`serve` binds the address (the kernel
queues connections in the backlog from then on) and returns a
:class:`Server`; it serves inside ``async with server:`` or ``await
server.serve_forever()``, which own the task group where the accept loop and
every handler run, one task per connection.  Leaving the block, cancelling
``serve_forever()``, or calling :meth:`Server.close` stops accepting, cancels
every handler and closes its connection; when the block is left (or
``serve_forever()`` returns, or :meth:`Server.wait_closed`), no task, socket or
Unix socket file of the server is left.  The handlers run under the server's
own cancel scope, inside the block's task group: closing the server from the
block cancels the handlers, not the block.

**Isolation.**  Whatever ends a handler (a clean end, bad input from the
client, a reset, a timeout, a bug in the handler) ends only that task, whose
``finally`` closes only that connection; it is logged on the ``framekit``
logger as on asyncio: a clean close at DEBUG, a client's bad frames, a lost
connection or a timeout at WARNING (one line, no traceback: the client
misbehaved, not the server), and any other exception from the handler at
ERROR with its traceback.  Cancellation is never swallowed.

**max_connections** counts connections from ``accept()`` on, TLS handshakes
included, so stalled handshakes hold no more slots (and fds) than the bound,
each for at most ``handshake_timeout``.  Above it a connection is accepted,
logged at WARNING and closed at once: the client sees a clean close rather
than a hang in the backlog, as with the other servers.  An ``accept()`` that
fails for lack of resources (``EMFILE``...) is logged and retried after a
short pause, while the connections already accepted go on being served.

**TLS** is anyio's ``TLSStream``, wrapped in the connection's own task (a slow
client delays nobody) under ``handshake_timeout``.  As on the other
transports, a missing ``close_notify`` reads as a clean close (see
:mod:`.connection`).

**Closing** cancels the server's scope: the accept loop ends, each handler
gets the cancellation, and :meth:`Connection.abort` on every connection makes
even a shielded write (a frame being finished) fail at once; each task then
closes its connection without waiting for the peer.  A handler that returns
by itself gets a graceful close (what it sent is flushed, for at most
``CLOSE_TIMEOUT`` seconds).

**Datagram addresses** (``udp``, ``unixgram``) have no connections: the server
binds one :class:`~.datagram.DatagramEndpoint` and runs ``handler(endpoint)``
once, in the same task group; when the handler returns, the server closes.
As on asyncio, an error that ``recvfrom()`` raised for a peer's datagram (or
a socket error) and that escapes the handler is logged at WARNING and the
handler is called again on the same endpoint; any other exception closes the
server.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import ssl as _ssl
import sys
from types import TracebackType
from typing import Any, Awaitable, Callable, List, Optional, Set, Type, Union

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

from .._sockets import DEFAULT_UNIX_MODE, UnixFile, bind_socket, bound_address, peer_name
from .._sockets import tls_context as _tls_context
from ..addresses import Address, AddressLike, address_from_sockaddr, parse_address
from ..codecs.interface import Codec
from ..core.options import (
    DEFAULT_BACKLOG,
    FRAME_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    check_max_connections,
    check_max_datagram_size,
    check_serializer,
    check_timeout,
    make_codec,
)
from ..errors import ConnectionClosed, FramingError
from ..serializers import Serializer
from .connection import Connection, hold_reads
from .datagram import DatagramEndpoint, open_datagram

if sys.version_info < (3, 11):  # pragma: no cover - anyio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["Handler", "Server", "serve"]

logger = logging.getLogger("framekit")

#: ``async def handler(conn) -> None``: a :class:`Connection`, or the
#: :class:`DatagramEndpoint` of a datagram server.
Handler = Callable[[Any], Awaitable[Any]]

Peer = Union[Connection, DatagramEndpoint]

#: Pause after accept() fails for lack of resources (EMFILE...), so the loop
#: does not spin on a listening socket that stays readable.
_ACCEPT_BACKOFF = 0.1
#: accept() errors that concern one client only (it gave up): accept the next.
_CLIENT_GAVE_UP = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}


class Server:
    """A bound framed server; made by :func:`serve`.

    Serve with ``async with server:`` (serving inside the block, closed when
    it is left) or ``await server.serve_forever()``; stop with
    :meth:`close` (then :meth:`wait_closed`), or ``await server.aclose()``.
    """

    def __init__(
        self,
        address: Address,
        handler: Handler,
        codec: Codec,
        *,
        ssl: Optional[_ssl.SSLContext],
        serializer: Optional[Serializer],
        max_connections: Optional[int],
        handshake_timeout: Optional[float],
        idle_timeout: Optional[float],
        frame_timeout: Optional[float],
    ) -> None:
        self._requested = address
        self._handler = handler
        self._codec = codec
        self._ssl = ssl
        self._serializer = serializer
        self._max_connections = max_connections
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._frame_timeout = frame_timeout
        self._listener: Optional[anyio.abc.SocketListener] = None
        self._endpoint: Optional[DatagramEndpoint] = None
        self._unix_file: Optional[UnixFile] = None
        self._address = ""
        self._scope = anyio.CancelScope()  # the accept loop's and the handlers'
        self._task_group: Optional[anyio.abc.TaskGroup] = None  # the block's
        self._stopped = anyio.Event()  # close() was called
        self._finished = anyio.Event()  # everything is released
        self._started = False
        self._closing = False
        self._peers: Set[Peer] = set()
        self._admitted = 0  # connections counted against max_connections

    # -- serving ----------------------------------------------------------------

    async def _serve(self) -> None:
        """The one task of the block's task group: accept (or run the datagram
        handler) and run the handlers, until closed; then release everything."""
        try:
            with self._scope:
                if self._endpoint is not None:
                    await self._run(self._endpoint, f"datagram endpoint {self._address}")
                else:
                    async with anyio.create_task_group() as handlers:
                        await self._accept_loop(handlers)
        finally:
            await self._release()

    async def _accept_loop(self, handlers: anyio.abc.TaskGroup) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                stream = await listener.accept()
            except anyio.ClosedResourceError:
                return
            except OSError as exc:
                if exc.errno in _CLIENT_GAVE_UP:
                    continue
                logger.error("%s: cannot accept a connection: %s", self._address, exc)
                await anyio.sleep(_ACCEPT_BACKOFF)
                continue
            sockaddr = stream.extra(SocketAttribute.remote_address, None)
            name = f"connection from {peer_name(self._requested.scheme, sockaddr)}"
            limit = self._max_connections
            if limit is not None and self._admitted >= limit:
                logger.warning(
                    "%s: refusing %s: max_connections (%d) reached", self._address, name, limit
                )
                await anyio.aclose_forcefully(stream)
                continue
            hold_reads(stream)
            self._admitted += 1
            handlers.start_soon(self._connection, stream, name)

    async def _connection(self, stream: anyio.abc.ByteStream, name: str) -> None:
        try:
            if self._ssl is not None:
                tls = await self._handshake(stream, self._ssl, name)
                if tls is None:
                    return
                stream = tls
            conn = Connection(
                stream,
                self._codec,
                serializer=self._serializer,
                idle_timeout=self._idle_timeout,
                frame_timeout=self._frame_timeout,
            )
            await self._run(conn, name)
        finally:
            self._admitted -= 1

    async def _handshake(
        self, stream: anyio.abc.ByteStream, context: _ssl.SSLContext, name: str
    ) -> Optional[TLSStream]:
        """The TLS handshake, bounded; None (logged, closed) if it failed."""
        limit = self._handshake_timeout
        try:
            with anyio.move_on_after(math.inf if limit is None else limit):
                return await TLSStream.wrap(
                    stream, server_side=True, ssl_context=context, standard_compatible=False
                )
            logger.warning(
                "%s: closing %s: the TLS handshake took more than %g s", self._address, name, limit
            )
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            reason = exc.__cause__ if exc.__cause__ is not None else exc
            logger.warning(
                "%s: %s: TLS handshake failed: %s: %s",
                self._address,
                name,
                type(reason).__name__,
                reason,
            )
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        await anyio.aclose_forcefully(stream)
        return None

    async def _run(self, peer: Peer, name: str) -> None:
        """Run the handler on ``peer``; log how it ended; close it."""
        self._peers.add(peer)
        cancelled = False
        try:
            if peer is self._endpoint:
                await self._serve_datagrams(peer)
            else:
                await self._handler(peer)
            logger.debug("%s: %s: handler done", self._address, name)
        except ConnectionClosed:
            logger.debug("%s: %s closed", self._address, name)
        except anyio.get_cancelled_exc_class():
            cancelled = True
            logger.debug("%s: %s: handler cancelled", self._address, name)
            raise
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
            self._peers.discard(peer)
            if cancelled or self._closing or isinstance(peer, DatagramEndpoint):
                peer.abort()
            if isinstance(peer, Connection):
                await peer.aclose()  # graceful (flushes), unless aborted or cancelled
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
                if exc is not endpoint.last_receive_error or self._closing or endpoint.closed:
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

    async def _release(self) -> None:
        """Close the listening socket (or the endpoint) and remove the socket file."""
        try:
            if self._listener is not None:
                listener, self._listener = self._listener, None
                await anyio.aclose_forcefully(listener)
            if self._endpoint is not None:
                self._endpoint.abort()
        finally:
            if self._unix_file is not None:
                self._unix_file.remove()
            self._finished.set()

    # -- public API -----------------------------------------------------------

    @property
    def address(self) -> str:
        """The bound address as a URL that :func:`~framekit.anyio.connect`
        accepts, with the real port (``tcp://127.0.0.1:40123``)."""
        return self._address

    @property
    def connections(self) -> List[Peer]:
        """The client connections being handled (the endpoint, for datagrams)."""
        return list(self._peers)

    def is_serving(self) -> bool:
        """Whether the server accepts connections (or datagrams) now."""
        return self._started and not self._closing

    def close(self) -> None:
        """Stop serving: stop accepting, cancel the handlers, abort their
        connections.  Safe to call more than once, from any task; see
        :meth:`wait_closed`."""
        if self._closing:
            return
        self._closing = True
        self._stopped.set()
        self._scope.cancel()
        for peer in list(self._peers):
            peer.abort()
        if self._unix_file is not None:
            self._unix_file.remove()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every handler has finished."""
        if not self._started:
            await self._stopped.wait()  # close() was called: nothing ran
            await self._release()
            return
        await self._finished.wait()

    async def aclose(self) -> None:
        """Close the server and wait until it is closed (see :meth:`close`)."""
        self.close()
        await self.wait_closed()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called or this coroutine is cancelled
        (which closes the server).  In a server's ``async with`` block, wait
        until it is closed."""
        if self._started:
            await self._finished.wait()
            return
        async with self:
            await self._stopped.wait()

    async def __aenter__(self) -> Server:
        if self._started or self._closing:
            raise RuntimeError(f"the server {self._address} is already serving or closed")
        self._started = True
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._serve)
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> Optional[bool]:
        self.close()
        assert self._task_group is not None
        try:
            return await self._task_group.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            # The block's own exception, wrapped by the task group it ran in:
            # let it go on as it was raised (the server's task raised nothing).
            if exc is not None and list(group.exceptions) == [exc]:
                return False
            raise

    def __repr__(self) -> str:
        state = "serving" if self.is_serving() else ("closed" if self._closing else "bound")
        return f"<framekit.anyio.Server {self._address} {state}, {len(self._peers)} handlers>"


async def serve(
    address: AddressLike,
    handler: Handler,
    codec: Optional[Codec] = None,
    *,
    ssl: Optional[_ssl.SSLContext] = None,
    max_connections: Optional[int] = None,
    serializer: Optional[Serializer] = None,
    max_datagram_size: Optional[int] = None,
    unix_mode: Optional[int] = DEFAULT_UNIX_MODE,
    backlog: int = DEFAULT_BACKLOG,
    handshake_timeout: Optional[float] = HANDSHAKE_TIMEOUT,
    idle_timeout: Optional[float] = None,
    frame_timeout: Optional[float] = FRAME_TIMEOUT,
) -> Server:
    """Bind ``address``; the :class:`Server` runs ``await handler(conn)`` once per
    connection inside ``async with server:`` or ``await server.serve_forever()``.

    Args:
        address: ``tcp://host:port`` (port 0: a free port, see
            :attr:`Server.address`), ``tls://host:port``, ``unix:///path``,
            ``unix:@name``, ``udp://host:port``, ``unixgram:///path``, or a
            ``(host, port)`` tuple (TCP).
        handler: ``async def handler(conn)``, given a :class:`Connection`; for
            datagram addresses it runs once, given the
            :class:`~framekit.anyio.DatagramEndpoint`.
        codec: the framing; None means ``framekit.LengthPrefixed()``.
        ssl: the server's ``ssl.SSLContext`` (with its certificate): required
            for ``tls://``; with ``tcp://`` or ``unix://`` it turns TLS on.
        max_connections: connections handled at once, TLS handshakes
            included; more are closed at once (and logged).  None: no bound.
        serializer: connections send and receive objects through it.
        max_datagram_size: datagram addresses only (see
            :func:`~framekit.anyio.open_datagram`).
        unix_mode: permissions of the Unix socket file (None: the umask's).
        backlog: the listen backlog.
        handshake_timeout: seconds a TLS client has to finish its handshake.
        idle_timeout: seconds a connection may send nothing while its handler
            waits for input; then ``recv()`` raises ``TimeoutError`` and (unless
            the handler catches it) the connection is closed.  None: no limit.
        frame_timeout: seconds a frame begun may take to arrive whole (the
            slow-trickle defence); then as for ``idle_timeout``.  None: no limit.

    Returns:
        The :class:`Server`, bound (connections wait in the backlog until it serves).

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
    max_connections = check_max_connections(max_connections)
    check_max_datagram_size(max_datagram_size)
    if max_connections is not None and addr.is_datagram:
        raise ValueError(f"max_connections is for stream servers, not {addr.url()}")
    if max_datagram_size is not None and not addr.is_datagram:
        raise ValueError(f"max_datagram_size is for udp:// and unixgram://, not {addr.url()}")
    handshake_timeout = check_timeout("handshake_timeout", handshake_timeout)
    idle_timeout = check_timeout("idle_timeout", idle_timeout)
    frame_timeout = check_timeout("frame_timeout", frame_timeout)
    context = _tls_context(addr, ssl, server_side=True)
    server = Server(
        addr,
        handler,
        codec,
        ssl=context,
        serializer=serializer,
        max_connections=max_connections,
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
            unix_mode=unix_mode,
        )
        server._endpoint = endpoint
        server._address = address_from_sockaddr(addr.scheme, endpoint.local_address).url()
        return server
    bind = functools.partial(bind_socket, addr, backlog=backlog, unix_mode=unix_mode)
    sock, unix_file = await anyio.to_thread.run_sync(bind)
    try:
        server._address = bound_address(addr, sock).url()
        server._listener = await anyio.abc.SocketListener.from_socket(sock)
    except BaseException:
        sock.close()
        if unix_file is not None:
            unix_file.remove()
        raise
    server._unix_file = unix_file
    return server
