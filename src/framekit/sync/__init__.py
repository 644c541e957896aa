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

Modules: ``framed`` and ``datagram`` (the sockets), ``connect``, ``server``
(the Server, its accept loop and connection threads), ``datagram_server`` (what
a datagram server does with each datagram), ``handler`` (FrameHandler), and
``_sockets`` (creation and binding, one code path for every address family).
The Unix socket file rules, TLS arguments and peer names are shared with the
asyncio transports, in :mod:`framekit._sockets`.
"""

from .connect import connect
from .connection import FramedSocket
from .datagram import DatagramSocket
from .handler import FrameHandler
from .server import Server, serve

__all__ = ["DatagramSocket", "FrameHandler", "FramedSocket", "Server", "connect", "serve"]
