"""What a datagram server does with each datagram: decode, dispatch, reply.

Design notes
------------
A datagram server has no connections, so no threads: its loop (run by
:class:`~framekit.sync.server.Server`, which owns the socket and the shutdown)
reads one datagram at a time and calls the handler for each frame in it, in
the loop's thread.  Nothing a peer sends can stop it: a malformed datagram, a
frame that does not deserialize, a handler exception or a reply that cannot be
delivered is logged on the ``framekit`` logger, and the loop goes on with the
next datagram.

**No peer can stall it.**  The server's socket is non-blocking, so a reply to
a peer that does not read (a Unix datagram peer whose queue is full) fails at
once with ``BlockingIOError``: the reply is dropped, as the network may drop
any datagram, with one log line naming the peer, and the next datagram is
served.  (Sends a ``FrameHandler`` makes itself on ``self.conn`` are
non-blocking too, and raise ``BlockingIOError`` in that case.)  The loop reads
one datagram per wake-up, even an empty one that holds no frame, so shutdown
reaches it however fast datagrams come.

A handler is a callable ``handler(frame, address)`` or a
:class:`~framekit.FrameHandler` subclass, instantiated once for the server
(``setup()`` before the first datagram, ``finish()`` at shutdown), whose
``handle_frame(frame, address)`` is called for each frame.  A result that is
not ``None`` is sent back to ``address``.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable

from .._sockets import peer_name
from ..errors import FramingError, SerializationError
from .datagram import DatagramSocket
from .handler import Handler, is_frame_handler

__all__ = ["DatagramService"]

logger = logging.getLogger("framekit")


class DatagramService:
    """Runs a handler over a bound :class:`DatagramSocket`.

    Args:
        handler: a callable ``handler(frame, address)`` or a FrameHandler subclass.
        dsock: the server's socket.
        server: the :class:`~framekit.Server`, passed to a FrameHandler.
        scheme: ``udp`` or ``unixgram``, to name peers in log lines.
    """

    def __init__(self, handler: Handler, dsock: DatagramSocket, server: Any, scheme: str) -> None:
        self._instance = handler(dsock, None, server) if is_frame_handler(handler) else None
        self._handler = handler
        self._dsock = dsock
        self._server = server
        self._scheme = scheme

    def run(self, wait: Callable[[], bool]) -> None:
        """Serve datagrams until ``wait()`` (the wait for the next one) returns False."""
        if self._instance is not None:
            self._instance.setup()
        try:
            while self._dsock.buffered or wait():
                self._serve_one()
        finally:
            if self._instance is not None:
                self._instance.finish()

    def _serve_one(self) -> None:
        name = self._server.address
        dsock = self._dsock
        try:
            # One datagram per wake-up, even if it holds no frame (an empty one):
            # the loop gets back to its wait, where shutdown() reaches it.
            if not dsock.buffered and not dsock.read_datagram():
                return
            frame, address = dsock.recvfrom()  # from the queue: no read
        except (BlockingIOError, socket.timeout):  # socket.timeout: TimeoutError on 3.10+
            return  # woken for nothing (a datagram with a bad checksum, say)
        except (FramingError, SerializationError) as exc:
            logger.warning("server %s: dropping a datagram: %s", name, exc)
            return
        except OSError as exc:  # e.g. an ICMP error about an earlier reply
            logger.warning("server %s: receive failed: %s", name, exc)
            return
        peer = peer_name(self._scheme, address)
        try:
            if self._instance is not None:
                reply = self._instance.handle_frame(frame, address)
            else:
                reply = self._handler(frame, address)
        except Exception as exc:
            logger.error("server %s: handler failed on a frame from %s", name, peer, exc_info=exc)
            return
        if reply is None:
            return
        try:
            if not address:
                raise OSError("the sender is an unbound socket, with no address to reply to")
            dsock.sendto(reply, address)  # the server's socket is non-blocking
        except BlockingIOError:
            logger.warning(
                "server %s: dropping a reply to %s: it is not reading (its queue is full)",
                name,
                peer,
            )
        except Exception as exc:
            logger.warning("server %s: cannot reply to %s: %s", name, peer, exc)
