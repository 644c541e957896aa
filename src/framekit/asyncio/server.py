"""Framed servers: :func:`serve` and :class:`Server`.

Design notes
------------
Stream servers (``tcp``, ``tls``, ``unix``) run ``handler(conn)`` as one task
per connection.

Accepting.  The server binds its listening socket with the socket rules every
transport shares (:mod:`framekit._sockets`: a host name is bound on its first
address, as the blocking server does) and accepts connections itself, by the
admission rules every server shares (:mod:`framekit.core.admission`): at most
``ACCEPTS_PER_WAKEUP`` per wake-up, so a flood of new connections cannot
starve the ones being served; beyond ``max_connections`` a connection is
accepted and closed at once with a log line (at most one a second, with a
count), and the client sees a clean close rather than a hang in the backlog;
running out of descriptors (``EMFILE``) stops accepting for a moment, not
serving.  Each accepted socket goes to the loop with
``loop.connect_accepted_socket``, which does the TLS handshake under
``handshake_timeout``.  A handshake in progress takes no connection slot:
handshakes are bounded apart and the oldest stalled one is dropped to make
room, so clients that never finish theirs can exhaust neither slots nor
descriptors.

Isolation.  Whatever ends a handler (a clean EOF, bad input from the client,
a reset, a timeout, a bug in the handler) ends only that task, and the task's
``finally`` closes only that connection.  Each end is logged on the
``framekit`` logger: a clean close at DEBUG, a client's bad frames, a lost
connection or a timeout at WARNING (one line, no traceback: the client
misbehaved, not the server), and any other exception from the handler at
ERROR with its traceback.

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
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Union

from .._sockets import (
    DEFAULT_UNIX_MODE,
    UnixFile,
    bind_socket,
    bound_address,
    peer_name,
    set_nodelay,
)
from ..addresses import AddressLike, address_from_sockaddr
from ..codecs.interface import Codec
from ..core.admission import ACCEPT_BACKOFF, ACCEPTS_PER_WAKEUP, Admission
from ..core.budget import MemoryBudget
from ..core.datagram import peer_fault
from ..core.options import (
    CLOSE_TIMEOUT,
    DEFAULT_BACKLOG,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_FRAMES,
    FRAME_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    ServerSettings,
    check_handler,
    check_queue_bounds,
    server_settings,
)
from ..core.outcome import ending
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
        settings: ServerSettings,
        handler: Handler,
        *,
        max_queued_frames: int,
        max_queued_bytes: int,
    ) -> None:
        self._settings = settings
        self._requested = settings.address
        limit = settings.max_buffered_bytes
        self._budget = None if limit is None else MemoryBudget(limit)
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._admission = Admission(settings.max_connections, clock=self._loop.time)
        self._backoff_until = 0.0
        self._resume_timer: Optional[asyncio.TimerHandle] = None
        self._listener: Optional[socket.socket] = None
        self._accepting = False
        self._ssl: Optional[_ssl.SSLContext] = None
        #: Tasks handing accepted sockets to the loop (and doing TLS handshakes).
        self._connecting: Set[asyncio.Task[None]] = set()
        self._max_queued_frames = max_queued_frames
        self._max_queued_bytes = max_queued_bytes
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._tasks: Dict[Peer, asyncio.Task[None]] = {}
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
        settings = self._settings
        protocol = FramedProtocol(
            settings.codec,
            max_queued_frames=self._max_queued_frames,
            max_queued_bytes=self._max_queued_bytes,
            idle_timeout=settings.idle_timeout,
            frame_timeout=settings.frame_timeout,
            max_stream_size=settings.max_stream_size,
        )
        protocol.core.set_budget(self._budget)
        return protocol

    async def _start(
        self,
        ssl: Optional[_ssl.SSLContext],
        unix_mode: Optional[int],
        backlog: int,
        reuse_port: bool,
    ) -> None:
        addr = self._requested
        sock, self._unix_file = bind_socket(
            addr, backlog=backlog, unix_mode=unix_mode, reuse_port=reuse_port
        )
        try:
            sock.setblocking(False)
            self._address = bound_address(addr, sock).url()
            self._loop.add_reader(sock.fileno(), self._accept_ready)
        except BaseException:
            sock.close()
            if self._unix_file is not None:
                self._unix_file.remove()
            raise
        self._listener = sock
        self._accepting = True
        self._ssl = ssl

    # -- accepting ----------------------------------------------------------------

    def _accept_ready(self) -> None:
        listener = self._listener
        assert listener is not None
        for _ in range(ACCEPTS_PER_WAKEUP):
            if self._ssl is not None and not self._room_for_handshake():
                return
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up before we got to it
            except OSError as exc:
                if not self._closed.done():
                    self._back_off(exc)
                return
            self._admit(sock, peer)

    def _room_for_handshake(self) -> bool:
        dropped, retry_at = self._admission.room_for_handshake()
        for sock in dropped:
            _wake(sock)  # a stalled handshake makes room: its next read sees the end
        if retry_at is None:
            return True
        self._stop_accepting()
        self._resume_at(retry_at)
        return False

    def _back_off(self, exc: OSError) -> None:
        if Admission.out_of_resources(exc):
            logger.warning(
                "%s: cannot accept connections for now: %s; serving the others, retrying in %.1f s",
                self._address,
                exc.strerror or exc,
                ACCEPT_BACKOFF,
            )
        else:
            logger.error("%s: cannot accept a connection: %s", self._address, exc)
        self._stop_accepting()
        self._backoff_until = self._loop.time() + ACCEPT_BACKOFF
        self._resume_at(self._backoff_until)

    def _resume_at(self, when: float) -> None:
        timer = self._resume_timer
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return  # an earlier wake-up is due: it looks again
        if timer is not None:
            timer.cancel()
        # call_later, not call_at, and never less than a millisecond: uvloop's
        # timers may fire up to a millisecond before the loop's time() says.
        self._resume_timer = self._loop.call_later(
            max(0.001, when - self._loop.time()), self._timer_resume
        )

    def _timer_resume(self) -> None:
        self._resume_timer = None
        self._resume_accepting()

    def _stop_accepting(self) -> None:
        if self._accepting and self._listener is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._accepting = False

    def _resume_accepting(self) -> None:
        if self._closed.done() or self._accepting or self._listener is None:
            return
        if self._loop.time() < self._backoff_until:
            self._resume_at(self._backoff_until)  # woken early (or by a handshake's end)
            return
        self._loop.add_reader(self._listener.fileno(), self._accept_ready)
        self._accepting = True

    def _admit(self, sock: socket.socket, peer: Any) -> None:
        name = peer_name(self._requested.scheme, peer)
        try:
            sock.setblocking(False)
            set_nodelay(sock)
        except OSError as exc:  # macOS: EINVAL for a connection reset before accept
            sock.close()
            logger.warning("%s: dropping connection from %s: %s", self._address, name, exc)
            return
        if self._ssl is not None:
            self._admission.handshake_started(sock, sock)
        elif not self._admission.take_slot():
            self._refuse(name)
            sock.close()
            return
        task = self._loop.create_task(self._connect(sock, name))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    def _refuse(self, name: str) -> None:
        count = self._admission.refused()
        if count is not None:
            logger.warning(
                "%s: refusing connection from %s: max_connections (%d) reached%s",
                self._address,
                name,
                self._admission.max_connections,
                f" ({count - 1} more refused since the last such line)" if count > 1 else "",
            )

    async def _connect(self, sock: socket.socket, name: str) -> None:
        """Hand an accepted socket to the loop (TLS: after the handshake), then serve it."""
        tls = self._ssl is not None
        made: List[FramedProtocol] = []  # uvloop returns its TLS protocol, not ours

        def factory() -> FramedProtocol:
            protocol = self._protocol_factory()
            protocol.core.peer = name
            made.append(protocol)
            return protocol

        try:
            await self._loop.connect_accepted_socket(
                factory,
                sock,
                ssl=self._ssl,
                ssl_handshake_timeout=self._settings.handshake_timeout if tls else None,
            )
        except (OSError, asyncio.TimeoutError) as exc:  # a failed or stalled handshake
            sock.close()
            if not tls:
                self._admission.release_slot()
            level = logging.DEBUG if self._closed.done() else logging.WARNING
            logger.log(level, "%s: TLS handshake with %s failed: %s", self._address, name, exc)
            return
        except BaseException:
            sock.close()
            if not tls:
                self._admission.release_slot()
            raise
        finally:
            if tls:
                self._admission.handshake_ended(sock)
                self._resume_accepting()  # if it waited for a handshake to end
        protocol = made[0]
        transport = protocol.transport
        assert transport is not None
        if tls and not self._admission.take_slot():
            self._refuse(name)
            transport.abort()
            return
        if self._closed.done():
            self._admission.release_slot()
            transport.abort()
            return
        conn = Connection(transport, protocol, serializer=self._settings.serializer)
        self._start_handler(conn, f"connection from {name}")

    def _start_datagram(self, endpoint: DatagramEndpoint) -> None:
        self._endpoint = endpoint
        self._address = address_from_sockaddr(self._requested.scheme, endpoint.local_address).url()
        self._start_handler(endpoint, f"datagram endpoint {self._address}")

    def _start_handler(self, peer: Peer, name: str) -> None:
        task = self._loop.create_task(self._run(peer, name))
        self._tasks[peer] = task
        # Not in _run's finally: a task cancelled before it started never runs it.
        task.add_done_callback(lambda _: self._handler_done(peer))

    def _handler_done(self, peer: Peer) -> None:
        if self._tasks.pop(peer, None) is not None and peer is not self._endpoint:
            self._admission.release_slot()

    async def _run(self, peer: Peer, name: str) -> None:
        ended: Optional[BaseException] = None
        try:
            if peer is self._endpoint:
                await self._serve_datagrams(peer)
            else:
                await self._handler(peer)
        except asyncio.CancelledError:
            logger.debug("server %s: %s: handler cancelled", self._address, name)
        except Exception as exc:
            ended = exc
        else:
            ended = None
        finally:
            if not isinstance(ended, asyncio.CancelledError):
                level, message, exc_info = ending(name, ended, closing=self._closed.done())
                logger.log(level, "server %s: %s", self._address, message, exc_info=exc_info)
            ended = None  # no traceback cycle through this frame
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
                fault = peer_fault(exc, endpoint.last_receive_error, self._requested.scheme)
                if not fault or self._closed.done() or endpoint.closed:
                    raise
                endpoint.last_receive_error = None  # the same error never restarts twice
                logger.warning("%s: %s", self._address, fault)

    # -- public API -----------------------------------------------------------

    @property
    def address(self) -> str:
        """The bound address as a URL that :func:`~framekit.asyncio.connect`
        accepts, with the real port (``tcp://127.0.0.1:40123``)."""
        return self._address

    @property
    def active_connections(self) -> int:
        """Connections being served now (stream servers; TLS handshakes in
        progress not counted)."""
        return self._admission.active

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
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        if self._listener is not None:
            if self._accepting:
                self._loop.remove_reader(self._listener.fileno())
                self._accepting = False
            self._listener.close()
        if self._unix_file is not None:
            self._unix_file.remove()
        for sock in self._admission.pending_handles():
            _wake(sock)  # handshakes in progress fail at once
        for connecting in self._connecting:
            connecting.cancel()
        self._closing_peers = list(self._tasks)
        for peer, task in list(self._tasks.items()):
            peer.transport.close()
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every handler has finished."""
        await asyncio.shield(self._closed)
        while self._tasks or self._connecting:
            await asyncio.gather(*self._tasks.values(), *self._connecting, return_exceptions=True)
        # Each task closed its peer (aborting after the close timeout, or when
        # cancelled); a task cancelled before it ran never did: abort what is left.
        for peer in self._closing_peers:
            peer.abort()  # a no-op for one already gone
            await peer.wait_closed()
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
    reuse_port: bool = False,
    handshake_timeout: Optional[float] = HANDSHAKE_TIMEOUT,
    idle_timeout: Optional[float] = None,
    frame_timeout: Optional[float] = FRAME_TIMEOUT,
    max_buffered_bytes: Optional[int] = DEFAULT_MAX_BUFFERED_BYTES,
    max_stream_size: Optional[int] = None,
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
        reuse_port: set ``SO_REUSEPORT`` (TCP/UDP), so several processes can
            serve one port (the kernel spreads the connections).
        handshake_timeout: seconds a TLS client has to finish its handshake.
        idle_timeout: seconds a connection may send nothing while its handler
            waits for input; then ``recv()`` raises ``TimeoutError`` and (unless
            the handler catches it) the connection is closed.  None: no limit
            (connections may be idle by design).
        frame_timeout: seconds a frame begun may take to arrive whole (the
            slow-trickle defence); then as for ``idle_timeout``.  None: no limit.
        max_buffered_bytes: bound on the bytes all connections hold at once
            (frames waiting for their handler, unfinished frames); a
            connection whose input would go above it is refused
            (``BudgetExceeded`` from its ``recv()``, after what it had
            received) and closed.  None: no bound.
        max_stream_size: frames above the codec's ``max_frame_size`` and up
            to this size (the codec's frame length, header included) can be
            read with ``recv_stream()`` and sent with ``send_stream()``;
            ``recv()`` refuses them with ``FrameTooLarge``.  None: streams
            are bounded by ``max_frame_size`` too.

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
    check_queue_bounds(max_queued_frames, max_queued_bytes)
    server = Server(
        settings, handler, max_queued_frames=max_queued_frames, max_queued_bytes=max_queued_bytes
    )
    if settings.address.is_datagram:
        endpoint = await open_datagram(
            local=settings.address,
            codec=settings.codec,
            serializer=settings.serializer,
            max_datagram_size=settings.max_datagram_size,
            max_queued_frames=max_queued_frames,
            max_queued_bytes=max_queued_bytes,
            unix_mode=unix_mode,
            reuse_port=reuse_port,
        )
        server._start_datagram(endpoint)
    else:
        await server._start(settings.ssl, unix_mode, backlog, reuse_port)
    return server


def _wake(sock: socket.socket) -> None:
    """End a connection whose handshake is in progress: its next read sees the end."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone
