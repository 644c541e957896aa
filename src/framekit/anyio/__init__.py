"""anyio transports: framed connections, servers and datagram endpoints, on asyncio and trio.

Import it as a subpackage (``framekit`` itself does not import anyio; install
it with ``pip install "framekit[anyio]"``, plus ``trio`` to run on trio)::

    import anyio
    import framekit.anyio

    async def echo(conn):                 # one task per connection
        async for frame in conn:          # until the client closes
            await conn.send(frame)

    async def main():
        async with await framekit.anyio.serve("tcp://127.0.0.1:0", echo) as server:
            async with await framekit.anyio.connect(server.address) as conn:
                await conn.send(b"hello")
                assert await conn.recv() == b"hello"

    anyio.run(main)                       # or anyio.run(main, backend="trio")

Design notes
------------
The transports only do I/O, through anyio's public API, so the same code runs
on both of anyio's backends: the framing (decoding in batches, the order of
frames and errors, end of stream, timeouts, encoding, coalescing, codec
switching) is the sans-IO connection core's (:mod:`framekit.core`), the same
code the blocking and asyncio transports drive.  The same address URLs,
exceptions, defaults and socket rules apply, from the same modules.  What is
anyio's own: servers serve inside a task group (structured concurrency, see
:mod:`.server`), a cancelled ``recv()`` loses no frame and a cancelled
``send()`` never cuts one (see :mod:`.connection`), and a stream is read only
when ``recv()`` needs input (backpressure without bounds to configure).

Modules, the same names as in :mod:`framekit.sync` and
:mod:`framekit.asyncio` for the same roles: :mod:`.connect` (``connect``),
:mod:`.connection` (``Connection``), :mod:`.datagram` (``open_datagram``,
``DatagramEndpoint``), :mod:`.server` (``serve``, ``Server``).
"""

from ..core.frames import AsyncFrameStream
from ..core.options import CLOSE_TIMEOUT
from .connect import connect
from .connection import Connection
from .datagram import DatagramEndpoint, open_datagram
from .server import Handler, Server, serve

__all__ = [
    "AsyncFrameStream",
    "CLOSE_TIMEOUT",
    "Connection",
    "DatagramEndpoint",
    "Handler",
    "Server",
    "connect",
    "open_datagram",
    "serve",
]
