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

**Admission** follows the rules every server shares
(:mod:`framekit.core.admission`): above ``max_connections`` a connection is
accepted, logged at WARNING (at most once a second, with a count) and closed
at once, so the client sees a clean close rather than a hang in the backlog;
an ``accept()`` that fails for lack of resources (``EMFILE``...) is logged and
retried after a short pause, while the connections already accepted go on
being served.  Here the slots count connections from ``accept()`` on, TLS
handshakes included, each for at most ``handshake_timeout``.  The memory
budget (``max_buffered_bytes``) is the other servers' too
(:mod:`framekit.core.budget`).

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
from ..addresses import AddressLike, address_from_sockaddr
from ..codecs.interface import Codec
from ..core.admission import ACCEPT_BACKOFF, Admission
from ..core.budget import MemoryBudget
from ..core.datagram import peer_fault
from ..core.options import (
    DEFAULT_BACKLOG,
    DEFAULT_MAX_BUFFERED_BYTES,
    FRAME_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    ServerSettings,
    check_handler,
    server_settings,
)
from ..core.outcome import ending
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

#: accept() errors that concern one client only (it gave up): accept the next.
_CLIENT_GAVE_UP = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}


class Server:
    """A bound framed server; made by :func:`serve`.

    Serve with ``async with server:`` (serving inside the block, closed when
    it is left) or ``await server.serve_forever()``; stop with
    :meth:`close` (then :meth:`wait_closed`), or ``await server.aclose()``.
    """

    def __init__(self, settings: ServerSettings, handler: Handler) -> None:
        self._settings = settings
        self._requested = settings.address
        self._handler = handler
        self._ssl = settings.ssl
        self._admission = Admission(settings.max_connections)
        limit = settings.max_buffered_bytes
        self._budget = None if limit is None else MemoryBudget(limit)
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
                if Admission.out_of_resources(exc):
                    logger.warning(
                        "server %s: cannot accept connections for now: %s; serving the "
                        "others, retrying in %.1f s",
                        self._address,
                        exc.strerror or exc,
                        ACCEPT_BACKOFF,
                    )
                else:
                    logger.error("server %s: cannot accept a connection: %s", self._address, exc)
                await anyio.sleep(ACCEPT_BACKOFF)
                continue
            sockaddr = stream.extra(SocketAttribute.remote_address, None)
            peer = peer_name(self._requested.scheme, sockaddr)
            name = f"connection from {peer}"
            if not self._admission.take_slot():
                count = self._admission.refused()
                if count is not None:
                    logger.warning(
                        "server %s: refusing %s: max_connections (%d) reached%s",
                        self._address,
                        name,
                        self._admission.max_connections,
                        f" ({count - 1} more refused since the last such line)"
                        if count > 1
                        else "",
                    )
                await anyio.aclose_forcefully(stream)
                continue
            hold_reads(stream)
            handlers.start_soon(self._connection, stream, peer)

    async def _connection(self, stream: anyio.abc.ByteStream, peer: str) -> None:
        name = f"connection from {peer}"
        try:
            if self._ssl is not None:
                tls = await self._handshake(stream, self._ssl, name)
                if tls is None:
                    return
                stream = tls
            settings = self._settings
            conn = Connection(
                stream,
                settings.codec,
                serializer=settings.serializer,
                idle_timeout=settings.idle_timeout,
                frame_timeout=settings.frame_timeout,
                max_stream_size=settings.max_stream_size,
            )
            conn.core.set_budget(self._budget)
            conn.core.peer = peer
            await self._run(conn, name)
        finally:
            self._admission.release_slot()

    async def _handshake(
        self, stream: anyio.abc.ByteStream, context: _ssl.SSLContext, name: str
    ) -> Optional[TLSStream]:
        """The TLS handshake, bounded; None (logged, closed) if it failed."""
        limit = self._settings.handshake_timeout
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
        ended: Optional[BaseException] = None
        try:
            if peer is self._endpoint:
                await self._serve_datagrams(peer)
            else:
                await self._handler(peer)
        except anyio.get_cancelled_exc_class():
            cancelled = True
            logger.debug("server %s: %s: handler cancelled", self._address, name)
            raise
        except Exception as exc:
            ended = exc
        finally:
            if not cancelled:
                level, message, exc_info = ending(name, ended, closing=self._closing)
                logger.log(level, "server %s: %s", self._address, message, exc_info=exc_info)
            ended = None  # no traceback cycle through this frame
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
                fault = peer_fault(exc, endpoint.last_receive_error, self._requested.scheme)
                if not fault or self._closing or endpoint.closed:
                    raise
                endpoint.last_receive_error = None  # the same error never restarts twice
                logger.warning("%s: %s", self._address, fault)

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
    max_buffered_bytes: Optional[int] = DEFAULT_MAX_BUFFERED_BYTES,
    max_stream_size: Optional[int] = None,
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
        max_buffered_bytes: bytes all connections together may hold
            received and not yet handled; a connection that would go above
            it is closed (``BudgetExceeded``).  None: no bound.
        max_stream_size: frames above the codec's ``max_frame_size`` and up
            to this size (the codec's frame length, header included) can be
            read with ``recv_stream()`` and sent with ``send_stream()``;
            ``recv()`` refuses them with ``FrameTooLarge``.  None: streams
            are bounded by ``max_frame_size`` too.

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
    check_handler(handler, "an async function")
    settings = server_settings(
        address,
        codec,
        ssl=ssl,
        serializer=serializer,
        max_connections=max_connections,
        max_datagram_size=max_datagram_size,
        handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout,
        frame_timeout=frame_timeout,
        max_buffered_bytes=max_buffered_bytes,
        max_stream_size=max_stream_size,
    )
    addr = settings.address
    server = Server(settings, handler)
    if addr.is_datagram:
        endpoint = await open_datagram(
            local=addr,
            codec=settings.codec,
            serializer=settings.serializer,
            max_datagram_size=settings.max_datagram_size,
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
