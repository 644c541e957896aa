"""Blocking transports: framed sockets, connect, serve.

Design notes
------------
Everything here is plain blocking sockets and threads, the model the socket
tutorials teach, with framing done by the codec (see :mod:`framekit.codecs.interface`):

* :class:`FramedSocket` wraps a connected stream socket (TCP, TLS, Unix);
* :class:`DatagramSocket` wraps a UDP or Unix datagram socket;
* :func:`connect` turns an address URL into either of them;
* :func:`serve` binds a :class:`Server` that runs a handler (a callable or a
  :class:`FrameHandler` subclass) for every connection or datagram.

Modules: ``connection`` (FramedSocket), ``datagram`` (DatagramSocket),
``connect``, ``server`` (the Server, its accept loop and connection threads),
``datagram_server`` (what a datagram server does with each datagram) and
``handler`` (FrameHandler).  What every transport shares is below them: the
framing and the connection's state in :mod:`framekit.core` (``FrameStream``,
what ``recv_stream()`` returns, is in :mod:`framekit.core.frames`), socket
creation, TLS and Unix socket files in :mod:`framekit._sockets`.
"""

from ..core.frames import FrameStream
from .connect import connect
from .connection import FramedSocket
from .datagram import DatagramSocket
from .handler import FrameHandler
from .server import Server, serve

__all__ = [
    "DatagramSocket",
    "FrameHandler",
    "FrameStream",
    "FramedSocket",
    "Server",
    "connect",
    "serve",
]
