"""A server-wide memory budget: the bytes all its connections hold, bounded.

Design notes
------------
Each connection's core already bounds what one peer can make it hold (a
frame is checked against ``max_frame_size`` before it is buffered; an event
loop stops reading when too much waits unread).  But a server has many peers:
100 connections each announcing a 16 MiB frame and sending all but its last
byte would hold 1.6 GB.  :class:`MemoryBudget` bounds the sum.

What is counted: for each connection, the bytes of frames decoded and not yet
handed to the handler (the current batch, counted whole), input held back
while a batch is in use, and the bytes the decoder holds for an unfinished
frame, as of the connection's last read (:meth:`StreamCore.budget_charge`).
What is not: each connection's read buffer (one read, ``read_size``), which
is per connection, not per byte received.

When a read would take the sum above the limit, the connection whose read it
was is refused: the input it holds is dropped at once (freeing its memory),
the messages it had already received are still handed to its handler, then
``recv()`` raises :class:`framekit.BudgetExceeded` and the server closes it
with one log line.  The other connections are not touched.  Refusing the
connection that asks for more, rather than pausing the largest holders, keeps
the rule simple and cannot deadlock (paused connections holding half-received
frames would never finish them); the ``frame_timeout`` still bounds how long a
trickling peer can hold its share.
"""

from __future__ import annotations

import threading

__all__ = ["MemoryBudget"]


class MemoryBudget:
    """Bytes held by all of a server's connections, against a limit.

    Args:
        limit: the most bytes held at once (``max_buffered_bytes``).
        threads: whether connections charge it from several threads (the
            blocking server); an event-loop server charges from one, and
            needs no lock.
    """

    __slots__ = ("_lock", "limit", "used")

    def __init__(self, limit: int, *, threads: bool = False) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock() if threads else None

    def charge(self, delta: int) -> bool:
        """Add ``delta`` bytes (negative: release); False if that takes the sum
        above the limit (the charge is then not made)."""
        lock = self._lock
        if lock is None:
            used = self.used + delta
            if delta > 0 and used > self.limit:
                return False
            self.used = used
            return True
        with lock:
            used = self.used + delta
            if delta > 0 and used > self.limit:
                return False
            self.used = used
            return True

    def __repr__(self) -> str:
        return f"<MemoryBudget {self.used}/{self.limit} bytes>"
