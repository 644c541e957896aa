"""Handlers: what a server runs for each connection (or each datagram).

Design notes
------------
A handler is either a plain callable or a :class:`FrameHandler` subclass, the
shape of ``socketserver.BaseRequestHandler`` (``setup``, ``handle``,
``finish``; ``conn``, ``client_address``, ``server``) with framing done:
``handle()`` reads frames and calls ``handle_frame(frame)``, and whatever that
returns (if not ``None``) goes back as one frame.  Unlike socketserver, nothing
runs in ``__init__``, so a subclass may extend it freely.

``batch_replies = True`` makes ``handle()`` take the frames one read brought
as a batch (``recv_batch()``) and send their replies with one ``send_many()``:
one encoding call and one system call per read, two to three times the rate
when clients pipeline.  It is off by default because the batch is decoded
before ``handle_frame`` sees its first frame: a handler that switches codecs
in ``handle_frame`` (a line handshake, then binary frames) must see each frame
before the next is decoded.

=================  ==================================  ==============================
handler            stream server (tcp, tls, unix)      datagram server (udp, unixgram)
=================  ==================================  ==============================
callable           ``handler(conn)`` in its thread     ``handler(frame, address)``
                                                       returns the reply or ``None``
FrameHandler       one instance per connection:        one instance for the server:
subclass           ``handle_frame(frame)``             ``handle_frame(frame, address)``
=================  ==================================  ==============================

A frame that fails to deserialize (with ``serializer=``) is logged and
skipped; the connection goes on.  Every other error ends the connection and is
logged by the server.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, List, Union

from ..errors import ConnectionClosed, SerializationError

__all__ = ["FrameHandler", "Handler", "is_frame_handler", "run_stream_handler"]

logger = logging.getLogger("framekit")


class FrameHandler:
    """Base class for frame handlers; override :meth:`handle_frame`.

    Attributes:
        conn: the connection (:class:`~framekit.FramedSocket`), or for a
            datagram server its :class:`~framekit.DatagramSocket`.
        client_address: the peer's socket address (``None`` for a datagram
            server, whose peers are passed to :meth:`handle_frame`).
        server: the :class:`~framekit.Server`.
    """

    #: Answer the frames of one read with one ``send_many()`` (see the module notes);
    #: only for a handler that never switches codecs in :meth:`handle_frame`.
    batch_replies = False

    def __init__(self, conn: Any, client_address: Any, server: Any) -> None:
        self.conn = conn
        self.client_address = client_address
        self.server = server

    def setup(self) -> None:
        """Called before the first frame.  Does nothing by default."""

    def handle(self) -> None:
        """Serve the connection: each frame to :meth:`handle_frame`, replies back.

        Returns when the peer closes cleanly.  Override it to drive the
        connection yourself (``self.conn.recv()``/``send()``).
        """
        if self.batch_replies:
            self._handle_batches()
            return
        # One frame at a time, each decoded after the one before was handled (it may
        # switch codecs).  Not written as batches of one: that costs 0.3 us a frame.
        conn = self.conn
        while True:
            try:
                frame = conn.recv()
            except ConnectionClosed:
                return
            except SerializationError as exc:
                logger.warning("skipping a frame from %s: %s", self.client_address, exc)
                continue
            reply = self.handle_frame(frame)
            if reply is not None:
                conn.send(reply)

    def _handle_batches(self) -> None:
        conn = self.conn
        handle_frame = self.handle_frame
        while True:
            try:
                batch = conn.recv_batch()  # every frame one read brought
            except ConnectionClosed:
                return
            except SerializationError as exc:
                logger.warning("skipping a frame from %s: %s", self.client_address, exc)
                continue
            replies: List[Any] = []
            for frame in batch:
                try:
                    reply = handle_frame(frame)
                except BaseException:
                    _send(conn, replies)  # the frames answered before it are answered
                    raise
                if reply is not None:
                    replies.append(reply)
            _send(conn, replies)

    def handle_frame(self, frame: Any, address: Any = None) -> Any:
        """Handle one frame; return a reply to send back, or ``None``.

        Args:
            frame: the frame (bytes, or an object with a serializer).
            address: for datagram servers, the sender; stream servers call
                ``handle_frame(frame)`` only.
        """
        raise NotImplementedError(f"{type(self).__name__} must override handle_frame()")

    def finish(self) -> None:
        """Called after the last frame, even after an error.  Does nothing by default."""


def _send(conn: Any, replies: List[Any]) -> None:
    """The replies to one batch: one frame each, in one system call where they all encode."""
    if len(replies) == 1:
        conn.send(replies[0])
    elif replies:
        try:
            conn.send_many(replies)  # nothing is sent if one of them cannot be framed...
        except (SerializationError, ValueError, TypeError):
            for reply in replies:  # ...so the ones before it go, and it raises, as one by one
                conn.send(reply)


Handler = Union[Callable[..., Any], type]


def is_frame_handler(handler: Any) -> bool:
    """Whether ``handler`` is a FrameHandler subclass (else a plain callable)."""
    return isinstance(handler, type) and issubclass(handler, FrameHandler)


def run_stream_handler(handler: Handler, conn: Any, client_address: Any, server: Any) -> None:
    """Run ``handler`` on one connection, in the calling thread."""
    if is_frame_handler(handler):
        instance = handler(conn, client_address, server)
        instance.setup()
        try:
            instance.handle()
        finally:
            instance.finish()
    else:
        handler(conn)
