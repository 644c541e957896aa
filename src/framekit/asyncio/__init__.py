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
The transports only do I/O: the framing (decoding in batches, the order of
frames and errors, end of stream, timeouts, encoding, coalescing, codec
switching) is the sans-IO connection core's (:mod:`framekit.core`), the same
code the blocking transports drive.  The stream protocol is an
``asyncio.BufferedProtocol`` whose ``get_buffer()`` is the core's, so the bytes
go from the kernel straight into the decoder's buffer (:mod:`.protocol`);
``recv()`` takes decoded messages from the core without suspending; sending
waits only when the transport paused writing (:mod:`.flow`).  The same address
URLs, exceptions, defaults and socket rules as the blocking API
(``framekit.connect``/``framekit.serve``) apply, from the same modules.  Works
on asyncio's loop and on uvloop.

Modules, the same names as in :mod:`framekit.sync` for the same roles:
:mod:`.connect` (``connect``), :mod:`.connection` (``Connection``),
:mod:`.datagram` (``open_datagram``, ``DatagramEndpoint``), :mod:`.server`
(``serve``, ``Server``); and the asyncio plumbing: :mod:`.protocol` (the
stream protocol), :mod:`.flow` (waiting to read, pausing to write) and
:mod:`._unixgram` (a datagram transport for Unix sockets on loops that mangle
their addresses).
"""

from ..core.frames import AsyncFrameStream
from ..core.options import CLOSE_TIMEOUT, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_FRAMES
from .connect import connect
from .connection import Connection
from .datagram import DatagramEndpoint, DatagramProtocol, open_datagram
from .protocol import FramedProtocol
from .server import Handler, Server, serve

__all__ = [
    "AsyncFrameStream",
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
