"""Who a stream server lets in: connection slots, TLS handshakes, accept back-off.

Design notes
------------
Every stream server (blocking, asyncio, anyio) accepts connections in its own
way but by the same rules, written once here, without I/O:

* **Connection slots** (``max_connections``).  A connection takes a slot when
  its handler is about to start, and gives it back when the handler is done.
  Beyond the limit a new connection is accepted and closed at once, rather
  than left in the listen backlog: the client learns immediately instead of
  hanging, and the backlog cannot hide an overloaded server.
* **TLS handshakes do not take slots.**  A client that opens a TCP connection
  and never finishes its handshake would otherwise hold a slot (and a file
  descriptor) for the whole ``handshake_timeout``: 50 such clients lock out
  everyone from a server with ``max_connections=50``.  Handshakes in progress
  are bounded apart (:data:`MAX_HANDSHAKES`).  At the bound, a handshake that
  has taken more than :data:`HANDSHAKE_STALL` seconds (an honest client
  finishes in milliseconds, a round trip or two) is dropped to make room for
  a new connection; if none has, the server stops accepting until one
  finishes or stalls, and new clients wait in the listen backlog rather than
  being turned away.  A burst of honest clients is only slowed down; clients
  that stall their handshakes hold nothing for long.  A connection whose
  handshake succeeds then needs a slot like any other.
* **Running out of file descriptors** (``EMFILE``, ``ENFILE``) or memory
  (``ENOBUFS``, ``ENOMEM``) while accepting: stop accepting for
  :data:`ACCEPT_BACKOFF` seconds (a listening socket stays readable, so
  retrying at once would spin) while the connections already accepted go on
  being served, as Tornado, Twisted and uvicorn do.  A flood of clients that
  connect and reset at once costs the server no more than its accept rate.
* **Log lines stay few.**  Refusals and back-offs are counted and reported at
  most once per :data:`REPORT_INTERVAL` seconds, with the count, so a flood
  cannot fill a disk with log lines.
"""

from __future__ import annotations

import errno
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, List, Optional, Tuple

__all__ = [
    "ACCEPT_BACKOFF",
    "ACCEPTS_PER_WAKEUP",
    "HANDSHAKE_STALL",
    "MAX_HANDSHAKES",
    "REPORT_INTERVAL",
    "RESOURCE_ERRNOS",
    "Admission",
]

#: TLS handshakes in progress at once, per server.
MAX_HANDSHAKES = 128
#: Seconds after which a handshake in progress counts as stalled, and may be
#: dropped to make room for a new connection.
HANDSHAKE_STALL = 1.0
#: Seconds to stop accepting after running out of descriptors or memory.
ACCEPT_BACKOFF = 0.1
#: Connections accepted per wake-up of an event loop's listening socket, so a
#: flood of new connections cannot starve the ones already being served.
ACCEPTS_PER_WAKEUP = 32
#: Seconds between two log lines about refused connections.
REPORT_INTERVAL = 1.0
#: ``accept()`` errors that mean "out of resources": back off, then retry.
RESOURCE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
    if hasattr(errno, name)
)


class Admission:
    """The admission state of one stream server.

    Thread safety: the blocking server calls it under its own lock; event-loop
    servers call it from the loop's thread.

    Args:
        max_connections: connection slots; None: no limit.
        max_handshakes: TLS handshakes in progress at once.
        clock: the time source (for back-off and report intervals).
    """

    def __init__(
        self,
        max_connections: Optional[int],
        *,
        max_handshakes: int = MAX_HANDSHAKES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.max_handshakes = max_handshakes
        self.active = 0
        self._handshakes: OrderedDict[Hashable, Any] = OrderedDict()
        self._clock = clock
        self._refused = 0
        self._reported_at = -REPORT_INTERVAL

    # -- slots ------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """Whether every connection slot is taken."""
        return self.max_connections is not None and self.active >= self.max_connections

    def take_slot(self) -> bool:
        """Take a slot for a connection about to be served; False if none is free
        (the connection is to be closed and :meth:`refused` called)."""
        if self.full:
            return False
        self.active += 1
        return True

    def release_slot(self) -> None:
        """A served connection is done."""
        self.active -= 1

    # -- handshakes -------------------------------------------------------------------

    def room_for_handshake(self) -> Tuple[List[Any], Optional[float]]:
        """Make room for one more TLS handshake, if the bound allows.

        Returns:
            The handles of stalled handshakes to drop now, and None if there is
            room; or no handles and the time (by the clock) at which to look
            again, if every handshake in progress is young (accept no more
            connections until then, or until one ends).
        """
        if len(self._handshakes) < self.max_handshakes:
            return [], None
        now = self._clock()
        dropped: List[Any] = []
        while len(self._handshakes) >= self.max_handshakes:
            key, (started, handle) = next(iter(self._handshakes.items()))
            if now - started < HANDSHAKE_STALL:
                return dropped, started + HANDSHAKE_STALL
            del self._handshakes[key]
            dropped.append(handle)
        return dropped, None

    def handshake_started(self, key: Hashable, handle: Any) -> None:
        """Record a TLS handshake in progress (after :meth:`room_for_handshake`)."""
        self._handshakes[key] = (self._clock(), handle)

    def handshake_ended(self, key: Hashable) -> None:
        """A handshake finished (either way) or was dropped."""
        self._handshakes.pop(key, None)

    @property
    def handshakes(self) -> int:
        """Handshakes in progress."""
        return len(self._handshakes)

    def pending_handles(self) -> List[Any]:
        """The handles of every handshake in progress (to abort them at shutdown)."""
        return [handle for _, handle in self._handshakes.values()]

    # -- reporting ----------------------------------------------------------------------

    def refused(self) -> Optional[int]:
        """Count a connection refused for lack of a slot.

        Returns:
            How many were refused since the last report, when it is time for a
            log line; None otherwise.
        """
        self._refused += 1
        now = self._clock()
        if now - self._reported_at < REPORT_INTERVAL:
            return None
        count, self._refused = self._refused, 0
        self._reported_at = now
        return count

    @staticmethod
    def out_of_resources(exc: OSError) -> bool:
        """Whether an ``accept()`` error means: back off, then accept again."""
        return exc.errno in RESOURCE_ERRNOS
