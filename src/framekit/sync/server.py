"""Server: socketserver's job (handlers, many clients at once) with framing done right.

Design notes
------------
**Threads.**  One thread accepts; each connection gets its own thread running
the handler, as with ``socketserver.ThreadingTCPServer``.  The accept loop
waits in a selector on the listening socket *and* a wake-up socketpair, so
``shutdown()`` is prompt (one byte on the pair), not a polling interval away.
A datagram server has no connections: its loop reads datagrams and calls the
handler for each frame in the same thread (see :mod:`.datagram_server`).
Nothing one connection does can end the accept loop: a socket that cannot be
set up after ``accept`` (macOS fails ``TCP_NODELAY`` with ``EINVAL`` on a
connection reset meanwhile) is closed and logged, and so is any unexpected
error in one round of the loop; the loop goes on.

**Admission** follows the rules every server shares
(:mod:`framekit.core.admission`): beyond ``max_connections`` a new connection
is accepted and closed at once, with a log line (at most one a second, with
a count), rather than left in the listen backlog.  What the client sees is a
``ConnectionError``: ``ConnectionClosed`` if it only reads, but
``ConnectionResetError`` (or ``BrokenPipeError``) once it has sent data the
server never read.  Running out of descriptors while accepting pauses
accepting for a moment while the other connections go on.

**TLS.**  The accept loop only accepts.  Wrapping and the handshake happen in
the connection's own thread, under ``handshake_timeout``, so a slow or bad TLS
client delays nobody else.  A handshake in progress takes no connection slot:
handshakes are bounded apart, the oldest stalled one dropped to make room, so
clients that never finish theirs can exhaust neither slots nor descriptors.
A client that closes its TCP connection without a TLS ``close_notify`` (a
"ragged EOF") ends its connection like a clean close
(``ConnectionClosed``): Python's own ``SSLSocket.close()`` sends no
``close_notify``, so refusing ragged EOFs would turn every ordinary close
into an error.  The framing still catches a cut inside a frame
(``IncompleteFrame``); a cut *between* frames looks like a clean close, so a
protocol that must know it got everything should say so in its frames.

**Faults stay with their connection.**  Whatever ends a connection (a framing
error, a reset, a handler exception) is logged on the ``framekit`` logger with
the peer's address, that connection is closed, and nothing else is affected.
Frames that arrived whole before bad bytes reach the handler first (the
FramedSocket delivers them before raising).

**Shutdown** stops the loop, closes the listening socket (removing a Unix
socket file) and the wake-up pair, then ``shutdown(SHUT_RDWR)`` on every
client socket, which wakes a thread blocked in ``recv`` (it sees EOF) or
``send``, and joins the threads within the timeout.  Sockets are closed only by their own thread, so
a file descriptor is never reused under a thread still using it.  That holds
for the server socket too: when the loop does not stop within the timeout,
the loop closes the server socket and the wake-up pair itself as it ends.
``shutdown()`` called in the loop's own thread (a datagram handler, or a
signal handler while ``serve_forever()`` runs in the main thread) takes no
lock (a signal handler may have interrupted the loop while it held one): it
only stops the loop, which then does the whole shutdown as it ends, before
``serve_forever()`` returns, so a datagram handler's reply still goes out.
Connection threads are daemons: a handler stuck outside socket calls is
reported, not waited for forever.
"""

from __future__ import annotations

import logging
import select
import selectors
import socket
import ssl as _ssl
import threading
import time
from types import TracebackType
from typing import Any, Optional, Set, Type

from .._sockets import (
    DEFAULT_UNIX_MODE,
    bind_socket,
    bound_address,
    peer_name,
    set_nodelay,
)
from ..addresses import AddressLike
from ..codecs.interface import Codec
from ..core.admission import ACCEPT_BACKOFF, Admission
from ..core.budget import MemoryBudget
from ..core.options import (
    DEFAULT_BACKLOG,
    DEFAULT_MAX_BUFFERED_BYTES,
    FRAME_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    check_handler,
    server_settings,
)
from ..core.outcome import ending
from ..serializers import Serializer
from .connection import FramedSocket
from .datagram import DatagramSocket
from .datagram_server import DatagramService
from .handler import Handler, run_stream_handler

__all__ = ["Server", "serve"]

logger = logging.getLogger("framekit")


class _Client:
    """One connection: its current socket (replaced by the TLS wrapper), its thread,
    and whether it holds a connection slot."""

    __slots__ = ("name", "peer", "slot", "sock", "thread")

    def __init__(self, sock: socket.socket, peer: Any, name: str) -> None:
        self.sock = sock
        self.peer = peer
        self.name = name
        self.slot = False
        self.thread: Optional[threading.Thread] = None

    def abort(self) -> None:
        """Wake the connection's thread: its blocked recv sees EOF, send fails."""
        try:
            # The base method: SSLSocket.shutdown would drop its TLS state under
            # the feet of the thread that is reading.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more, or the TLS wrapper took the descriptor


class Server:
    """A framed server on one address; see :func:`serve`.

    Attributes:
        address: the bound address as a URL that :func:`framekit.connect`
            accepts (the real port when port 0 was asked for).
        socket: the listening (or, for datagrams, bound) socket.
    """

    def __init__(
        self,
        address: AddressLike,
        handler: Handler,
        codec: Optional[Codec] = None,
        *,
        ssl: Optional[_ssl.SSLContext] = None,
        max_connections: Optional[int] = None,
        serializer: Optional[Serializer] = None,
        unix_mode: Optional[int] = DEFAULT_UNIX_MODE,
        backlog: int = DEFAULT_BACKLOG,
        reuse_port: bool = False,
        max_datagram_size: Optional[int] = None,
        handshake_timeout: Optional[float] = HANDSHAKE_TIMEOUT,
        idle_timeout: Optional[float] = None,
        frame_timeout: Optional[float] = FRAME_TIMEOUT,
        max_buffered_bytes: Optional[int] = DEFAULT_MAX_BUFFERED_BYTES,
        max_stream_size: Optional[int] = None,
    ) -> None:
        check_handler(handler, "callable or a FrameHandler subclass")
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
        self._settings = settings
        addr = settings.address
        limit = settings.max_buffered_bytes
        self._budget = None if limit is None else MemoryBudget(limit, threads=True)
        self._ssl = settings.ssl
        self._scheme = addr.scheme
        self._handler = handler
        self._admission = Admission(settings.max_connections)
        self.socket, self._unix_file = bind_socket(
            addr, backlog=backlog, unix_mode=unix_mode, reuse_port=reuse_port
        )
        try:
            self.address = bound_address(addr, self.socket).url()
            # Non-blocking: the loop reads only what the selector says is there,
            # and a datagram reply to a peer that does not read is dropped
            # rather than stalling everyone (see datagram_server).
            self.socket.setblocking(False)
            self._datagram: Optional[DatagramSocket] = None
            if addr.is_datagram:
                self._datagram = DatagramSocket(
                    self.socket,
                    settings.codec,
                    serializer=settings.serializer,
                    max_datagram_size=settings.max_datagram_size,
                )
            self._wake_r, self._wake_w = socket.socketpair()
        except BaseException:
            self._close_socket()
            raise
        self._lock = threading.Lock()
        self._clients: Set[_Client] = set()
        self._closing = False
        self._released = False
        #: Set by a shutdown() called in the loop's thread, which leaves the rest to the loop.
        self._shutdown_timeout: Optional[float] = None
        self._serving = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._loop_thread: Optional[threading.Thread] = None
        self._thread: Optional[threading.Thread] = None

    # -- running ------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`shutdown`.

        Returns at once if the server was already shut down.

        Raises:
            RuntimeError: the server is already serving.
        """
        with self._lock:
            if self._closing:
                return
            if self._serving:
                raise RuntimeError(f"server {self.address} is already serving")
            self._serving = True
            self._loop_done.clear()
            self._loop_thread = threading.current_thread()
        try:
            if self._datagram is not None:
                service = DatagramService(self._handler, self._datagram, self, self._scheme)
                with self._selector() as selector:
                    service.run(lambda: self._wait(selector))
            else:
                self._accept_loop()
        finally:
            try:
                with self._lock:
                    closing = self._closing
                    timeout = self._shutdown_timeout
                if closing:  # shutdown() may have left the closing to this thread
                    self._release()
                if timeout is not None:  # shutdown() was called in this thread
                    self._stop_clients(time.monotonic() + timeout, timeout)
            finally:
                self._loop_done.set()

    def start(self) -> Server:
        """Serve in a background (daemon) thread; return the server.

        Raises:
            RuntimeError: the server was started before.
        """
        if self._thread is not None:
            raise RuntimeError(f"server {self.address} was already started")
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"framekit-server {self.address}", daemon=True
        )
        self._thread.start()
        return self

    @property
    def active_connections(self) -> int:
        """Connections being served now (stream servers; TLS handshakes in
        progress not counted)."""
        with self._lock:
            return self._admission.active

    def _wait(self, selector: selectors.BaseSelector, timeout: Optional[float] = None) -> bool:
        """Wait until the server socket is readable; False once shutting down."""
        events = selector.select(timeout)
        return bool(events) and not self._closing

    def _selector(self) -> selectors.BaseSelector:
        selector = selectors.DefaultSelector()
        selector.register(self.socket, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        return selector

    # -- streams --------------------------------------------------------------

    def _accept_loop(self) -> None:
        with self._selector() as selector:
            while not self._closing:
                if self._ssl is not None and not self._room_for_handshake():
                    continue
                if self._wait(selector):
                    try:
                        self._accept()
                    except Exception as exc:  # a bug or an odd platform: log, go on
                        if self._closing:
                            return
                        logger.error(
                            "server %s: accepting a connection failed",
                            self.address,
                            exc_info=exc,
                        )
                        self._pause(ACCEPT_BACKOFF)

    def _pause(self, seconds: float) -> None:
        """Accept nothing for ``seconds``, unless the server shuts down: wait on
        the wake-up pair only (the listening socket stays readable meanwhile)."""
        select.select([self._wake_r], [], [], max(0.0, seconds))

    def _room_for_handshake(self) -> bool:
        """Make room for one more TLS handshake, or wait a little (see the notes)."""
        with self._lock:
            dropped, retry_at = self._admission.room_for_handshake()
        for client in dropped:
            client.abort()  # a stalled handshake: its thread's read sees the end
        if retry_at is None:
            return True
        # Accept nothing until a handshake ends or stalls: poll the wake-up pair only.
        self._pause(min(0.05, retry_at - time.monotonic()))
        return False

    def _accept(self) -> None:
        try:
            sock, peer = self.socket.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # the client gave up before we got to it
        except OSError as exc:
            if self._closing:
                return
            if Admission.out_of_resources(exc):
                logger.warning(
                    "server %s: cannot accept connections for now: %s; serving the others, "
                    "retrying in %.1f s",
                    self.address,
                    exc.strerror or exc,
                    ACCEPT_BACKOFF,
                )
            else:
                logger.error("server %s cannot accept a connection: %s", self.address, exc)
            self._pause(ACCEPT_BACKOFF)
            return
        try:
            self._admit(sock, peer)
        except BaseException:
            sock.close()  # not handed to a thread: ours to close
            raise

    def _admit(self, sock: socket.socket, peer: Any) -> None:
        """Set up an accepted socket and start its thread (or close it)."""
        name = peer_name(self._scheme, peer)
        try:
            sock.setblocking(True)
            set_nodelay(sock)
        except OSError as exc:
            # macOS: EINVAL for TCP_NODELAY on a connection reset before accept.
            sock.close()
            logger.warning(
                "server %s: dropping connection from %s: cannot set it up: %s",
                self.address,
                name,
                exc,
            )
            return
        client = _Client(sock, peer, name)
        logger.debug("server %s: connection from %s", self.address, client.name)
        with self._lock:
            if self._closing:
                sock.close()
                return
            if self._ssl is not None:
                self._admission.handshake_started(client, client)  # it takes no slot
            elif not self._admission.take_slot():
                self._refuse(client)
                sock.close()
                return
            else:
                client.slot = True
            thread = threading.Thread(
                target=self._serve_client,
                args=(client,),
                name=f"framekit-conn {client.name}",
                daemon=True,
            )
            try:
                thread.start()
            except RuntimeError as exc:  # "can't start new thread": out of resources
                logger.error(
                    "server %s: refusing connection from %s: %s", self.address, client.name, exc
                )
                self._admission.handshake_ended(client)
                if client.slot:
                    self._admission.release_slot()
                sock.close()
                return
            client.thread = thread
            self._clients.add(client)

    def _refuse(self, client: _Client) -> None:
        """Log a refusal for lack of a slot (at most one line a second, with a count)."""
        count = self._admission.refused()
        if count is not None:
            logger.warning(
                "server %s: refusing connection from %s: max_connections (%d) reached%s",
                self.address,
                client.name,
                self._admission.max_connections,
                f" ({count - 1} more refused since the last such line)" if count > 1 else "",
            )

    def _serve_client(self, client: _Client) -> None:
        conn: Optional[FramedSocket] = None
        try:
            sock = client.sock
            if self._ssl is not None:
                sock = self._handshake(client, self._ssl)
                with self._lock:
                    self._admission.handshake_ended(client)
                    client.slot = self._admission.take_slot()
                if not client.slot:
                    self._refuse(client)
                    return
            settings = self._settings
            conn = FramedSocket(
                sock,
                settings.codec,
                serializer=settings.serializer,
                idle_timeout=settings.idle_timeout,
                frame_timeout=settings.frame_timeout,
                max_stream_size=settings.max_stream_size,
            )
            conn.core.set_budget(self._budget)
            conn.core.peer = client.name
            run_stream_handler(self._handler, conn, client.peer, self)
        except BaseException as exc:
            self._log_failure(client.name, exc)
        finally:
            if conn is not None:
                conn.close()  # sends what the handler's last sends held back
            client.sock.close()
            with self._lock:
                self._clients.discard(client)
                self._admission.handshake_ended(client)
                if client.slot:
                    client.slot = False
                    self._admission.release_slot()

    def _handshake(self, client: _Client, context: _ssl.SSLContext) -> _ssl.SSLSocket:
        client.sock.settimeout(self._settings.handshake_timeout)
        tls = context.wrap_socket(client.sock, server_side=True, do_handshake_on_connect=False)
        with self._lock:
            client.sock = tls
            closing = self._closing
        if closing:  # shutdown() could not reach the socket while it changed hands
            raise ConnectionAbortedError("server shutting down")
        try:
            tls.do_handshake()
        except socket.timeout:
            raise TimeoutError(
                f"the TLS handshake took more than {self._settings.handshake_timeout:g} s"
            ) from None
        tls.settimeout(None)
        return tls

    def _log_failure(self, peer: str, exc: Optional[BaseException]) -> None:
        """Log how a connection ended, at a level that says whose fault it was."""
        level, message, exc_info = ending(f"connection from {peer}", exc, closing=self._closing)
        logger.log(level, "server %s: %s", self.address, message, exc_info=exc_info)

    # -- shutdown -------------------------------------------------------------

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving, close every connection, and join their threads.

        Safe to call more than once, and from a handler.  Called from the
        serving loop's own thread (a datagram handler, or a signal handler
        while ``serve_forever()`` runs in the main thread), it only stops the
        loop and returns: the loop does the rest as it ends, before
        ``serve_forever()`` returns (so a datagram handler's reply still goes
        out, and a signal handler never waits for a lock the code it
        interrupted holds).

        Args:
            timeout: how long to wait, in all, for the serving loop and the
                connection threads to finish; threads still running after it
                are logged and left (they are daemons).
        """
        if self._loop_thread is threading.current_thread() and not self._loop_done.is_set():
            # No lock here: this may be a signal handler that interrupted the
            # loop while it held it.  The loop's end finishes the shutdown.
            if not self._closing:
                self._shutdown_timeout = timeout
                self._closing = True
                self._wake()
            return
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._wake()
        self._loop_done.wait(max(0.0, deadline - time.monotonic()))
        if self._loop_done.is_set():
            self._release()
        # Else the loop did not stop in time: it closes the sockets as it ends,
        # rather than have them closed under its feet.
        self._stop_clients(deadline, timeout)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _stop_clients(self, deadline: float, timeout: float) -> None:
        """Wake every connection's thread and join them (and a start() thread)."""
        with self._lock:
            clients = list(self._clients)
        me = threading.current_thread()
        for client in clients:
            client.abort()
        threads = [c.thread for c in clients if c.thread is not None and c.thread is not me]
        if self._thread is not None and self._thread is not me:
            threads.append(self._thread)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            logger.warning(
                "server %s: %d thread(s) still running after %.1f s: %s",
                self.address,
                len(stuck),
                timeout,
                ", ".join(stuck),
            )

    def _release(self) -> None:
        """Close the server socket and the wake-up pair, once, from whichever thread is last."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._close_socket()
        self._wake_r.close()
        self._wake_w.close()

    def _close_socket(self) -> None:
        self.socket.close()
        if self._unix_file is not None:
            self._unix_file.remove()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self._closing else "serving" if self._serving else "bound"
        return f"<framekit.Server {self.address} {state}>"


def serve(
    address: AddressLike,
    handler: Handler,
    codec: Optional[Codec] = None,
    *,
    ssl: Optional[_ssl.SSLContext] = None,
    max_connections: Optional[int] = None,
    serializer: Optional[Serializer] = None,
    unix_mode: Optional[int] = DEFAULT_UNIX_MODE,
    backlog: int = DEFAULT_BACKLOG,
    reuse_port: bool = False,
    max_datagram_size: Optional[int] = None,
    handshake_timeout: Optional[float] = HANDSHAKE_TIMEOUT,
    idle_timeout: Optional[float] = None,
    frame_timeout: Optional[float] = FRAME_TIMEOUT,
    max_buffered_bytes: Optional[int] = DEFAULT_MAX_BUFFERED_BYTES,
    max_stream_size: Optional[int] = None,
) -> Server:
    """Bind ``address`` now and return a :class:`Server` for ``handler``.

    Call ``serve_forever()`` or ``start()`` to serve; ``shutdown()`` (or the
    ``with`` block's end) to stop.

    Args:
        address: as for :func:`framekit.connect`; port 0 picks a free port
            (see ``Server.address``).
        handler: for stream servers a callable ``handler(conn)``, run in a
            thread per connection, or a :class:`FrameHandler` subclass; for
            datagram servers a callable ``handler(frame, address)`` returning
            a reply or ``None``, or a FrameHandler subclass (its
            ``handle_frame(frame, address)``).  See :mod:`framekit.sync.handler`.
        codec: any :class:`framekit.codecs.interface.Codec`; ``None`` means ``LengthPrefixed()``.
        ssl: the server's ``ssl.SSLContext``; required for ``tls://``, and
            turns TLS on for ``tcp://`` and ``unix://``.
        max_connections: connections served at once; more are accepted and
            closed at once, with a log line.  ``None``: no limit.
        serializer: handlers get and return objects through it.
        unix_mode: permissions of a Unix socket file (default 0600).
        backlog: the listen backlog.
        reuse_port: set ``SO_REUSEPORT`` (TCP/UDP), for several processes on one port.
        max_datagram_size: for datagram servers, the largest datagram accepted.
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
        The bound, not yet serving, :class:`Server`.

    Raises:
        ValueError: a malformed address, ``tls://`` without ``ssl=``, or an
            option that does not fit the address.
        OSError: the address is in use ("address in use") or cannot be bound.
    """
    return Server(
        address,
        handler,
        codec,
        ssl=ssl,
        max_connections=max_connections,
        serializer=serializer,
        unix_mode=unix_mode,
        backlog=backlog,
        reuse_port=reuse_port,
        max_datagram_size=max_datagram_size,
        handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout,
        frame_timeout=frame_timeout,
        max_buffered_bytes=max_buffered_bytes,
        max_stream_size=max_stream_size,
    )
