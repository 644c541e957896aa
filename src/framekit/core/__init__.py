"""The connection core: the sans-IO layer between the codecs and the sockets.

Design notes
------------
Everything a framed connection does that is not I/O lives here once, and
every transport (blocking, asyncio, anyio) drives it:

* :mod:`.stream`: :class:`StreamCore`, one stream connection: decoding in
  batches, frames and errors in order, end of stream, serializers and
  ``prefix=``, write coalescing, idle and frame timeouts, codec switching,
  counters;
* :mod:`.datagram`: :class:`DatagramCore`, one datagram socket: a datagram in,
  its messages out; messages in, datagrams out; truncation and bounds;
* :mod:`.options`: every transport default and argument check.

It never touches a socket, a selector, a thread or an event loop.
"""

from .datagram import DatagramCore
from .stream import StreamCore

__all__ = ["DatagramCore", "StreamCore"]
