"""asyncio transports: framed connections, servers and datagram endpoints.

Import it as a subpackage (``framekit`` itself does not import asyncio)::

    import framekit.asyncio

    async def echo(conn):
        async for frame in conn:          # until the client closes
            await conn.send(frame)

    server = await framekit.asyncio.serve("tcp://127.0.0.1:0", echo)
    async with await framekit.asyncio.connect(server.address) as conn:
        await conn.send(b"hello")
        assert await conn.recv() == b"hello"
    server.close()
    await server.wait_closed()

Design notes
------------
The bytes go from the kernel straight into the decoder's buffer: the stream
protocol is an ``asyncio.BufferedProtocol`` whose ``get_buffer()`` is the
decoder's ``get_buffer()`` (:mod:`.protocol`).  Decoded frames wait in a deque
(:mod:`.inbox`) that ``recv()`` pops without suspending.  Sending waits only
when the transport paused writing (:mod:`.flow`).  The same address URLs,
exceptions and Unix socket file rules as the blocking API
(``framekit.connect``/``framekit.serve``) apply; any
:class:`framekit.codecs.interface.Codec` plugs in, and ``serializer=`` turns frames
into objects.  Works on asyncio's loop and on uvloop.

Modules: :mod:`.connection` (``connect``, ``Connection``), :mod:`.server`
(``serve``, ``Server``), :mod:`.datagram` (``open_datagram``,
``DatagramEndpoint``), :mod:`.protocol`, :mod:`.inbox`, :mod:`.flow`, and the
private :mod:`._sockets` (socket set-up; the Unix socket file rules, TLS
arguments and peer names are the blocking API's, in :mod:`framekit._sockets`),
:mod:`._options` (argument checks) and :mod:`._unixgram` (a datagram transport
for Unix sockets on loops that mangle their addresses).
"""

from .connection import CLOSE_TIMEOUT, Connection, connect
from .datagram import DatagramEndpoint, DatagramProtocol, open_datagram
from .inbox import DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_FRAMES
from .protocol import FramedProtocol
from .server import Handler, Server, serve

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_QUEUED_FRAMES",
    "Connection",
    "DatagramEndpoint",
    "DatagramProtocol",
    "FramedProtocol",
    "Handler",
    "Server",
    "connect",
    "open_datagram",
    "serve",
]
