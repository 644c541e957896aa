"""The receive queue shared by stream and datagram protocols: frames, errors, one waiter.

Design notes
------------
A protocol callback (``buffer_updated``, ``datagram_received``) may decode many
frames at once; ``recv()`` hands them out one by one.  The queue is a
``collections.deque`` of items (frames for streams, ``(frame, address)`` pairs
for datagrams) in which errors are queued *in place*, right after the frames
that arrived before them, so nothing that arrived intact is lost and errors are
raised in the order they happened.  ``errors`` counts the error items: while it
is zero and reading is not paused, ``fast`` is true and the consumer may
``popleft()`` without looking at the item.  That is the fast path of
``Connection.recv()``: a deque check, a flag and a pop, with no future, no
suspension and no bookkeeping.

Only when the queue is empty does a consumer create a future and wait
(:meth:`Inbox.get`).  The future is the *only* thing a cancelled ``recv()``
loses: the item is popped after the wait, never before, so cancelling a
pending ``recv()`` cannot drop a frame.

The end of the stream is not an item: it is a state (``end``) reached when the
queue runs dry, and ``recv()`` raises it every time from then on (a fresh
exception each time, so tracebacks do not pile up).  Errors that happen once
(``IncompleteFrame`` at EOF, a connection reset) are queued as items before the
end, so they are raised once and then ``ConnectionClosed`` follows.

Bounds.  Counting bytes on every pop would cost the fast path a ``len()``
and a store per frame, so the byte count is kept exactly only while ``fast``
is false (reading paused, or an error queued), when pops go through
:meth:`Inbox.get`.  While ``fast`` is true the count is recomputed when frames
are put: free when the consumer keeps up (the queue was empty), one C-level
``sum`` over the backlog when it does not, and that backlog is bounded by the
limits themselves.  Above either bound, ``put()`` sets ``paused`` and calls
``pause`` (the stream protocol stops reading); once :meth:`Inbox.get` has
drained the queue below half of both bounds it calls ``resume``.  A datagram
queue makes ``exact`` true (it never takes the fast path) and drops datagrams
instead of pausing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Tuple, Type

__all__ = ["DEFAULT_MAX_QUEUED_BYTES", "DEFAULT_MAX_QUEUED_FRAMES", "Inbox", "check_limits"]

#: Default bound on decoded frames waiting for ``recv()``.
DEFAULT_MAX_QUEUED_FRAMES = 1024
#: Default bound on the bytes of decoded frames waiting for ``recv()``.
DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024


def check_limits(max_queued_frames: int, max_queued_bytes: int) -> None:
    """Validate the receive-queue bounds.

    Raises:
        ValueError: a bound is not a positive int.
    """
    for name, value in (
        ("max_queued_frames", max_queued_frames),
        ("max_queued_bytes", max_queued_bytes),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


class Inbox:
    """A FIFO of received items and queued errors, with at most one waiting consumer.

    Args:
        max_items: above this many items, reading pauses.
        max_bytes: above this many bytes of items, reading pauses.
        size: how many bytes an item counts for (``len`` for frames).
        exact: never allow the fast path (count bytes on every pop).
    """

    __slots__ = (
        "_end",
        "_exact",
        "_size",
        "_waiter",
        "errors",
        "fast",
        "items",
        "max_bytes",
        "max_items",
        "nbytes",
        "pause",
        "paused",
        "resume",
    )

    def __init__(
        self,
        max_items: int,
        max_bytes: int,
        size: Callable[[Any], int] = len,
        *,
        exact: bool = False,
    ) -> None:
        self.items: Deque[Any] = deque()
        #: Error items in ``items``.
        self.errors = 0
        #: Consumers may ``items.popleft()`` directly (no error queued, not paused).
        self.fast = not exact
        #: Bytes of the queued items; exact only while ``fast`` is false.
        self.nbytes = 0
        self.max_items = max_items
        self.max_bytes = max_bytes
        #: Reading was paused because of the bounds.
        self.paused = False
        #: Called when the queue goes above a bound, and below half of both.
        self.pause: Optional[Callable[[], None]] = None
        self.resume: Optional[Callable[[], None]] = None
        self._exact = exact
        self._size = size
        self._waiter: Optional[asyncio.Future[None]] = None
        self._end: Optional[Tuple[Type[BaseException], str]] = None

    # -- bookkeeping ----------------------------------------------------------

    def _count(self) -> int:
        size = self._size
        if self.errors:
            return sum(size(i) for i in self.items if not isinstance(i, BaseException))
        return sum(map(size, self.items))

    def _set_fast(self) -> None:
        fast = not (self._exact or self.errors or self.paused)
        if self.fast and not fast:
            self.nbytes = self._count()  # exact from now on
        self.fast = fast

    def queued_bytes(self) -> int:
        """The total size of the queued items."""
        return self._count() if self.fast else self.nbytes

    @property
    def over_limit(self) -> bool:
        """More items or bytes are queued than the bounds allow."""
        return len(self.items) > self.max_items or self.queued_bytes() > self.max_bytes

    # -- producer side --------------------------------------------------------

    def put(self, items: List[Any], nbytes: int) -> None:
        """Queue received items whose sizes add up to ``nbytes``; pause above a bound."""
        queue = self.items
        backlog = len(queue)
        queue.extend(items)
        if not self.fast:
            self.nbytes += nbytes
        elif backlog:
            self.nbytes = self._count()
        else:
            self.nbytes = nbytes
        if not self.paused and (len(queue) > self.max_items or self.nbytes > self.max_bytes):
            self.paused = True
            self._set_fast()
            if self.pause is not None:
                self.pause()
        self._wake()

    def put_error(self, exc: BaseException) -> None:
        """Queue an error; ``get()`` raises it after the items queued before it."""
        self.errors += 1
        if self.fast:
            self.nbytes = sum(map(self._size, self.items))
            self.fast = False
        self.items.append(exc)
        self._wake()

    def end(self, exc_type: Type[BaseException], message: str) -> None:
        """Mark the end of input: once the queue is empty, every ``get()`` raises
        ``exc_type(message)``.  Only the first call counts."""
        if self._end is None:
            self._end = (exc_type, message)
            self._wake()

    def clear(self) -> None:
        """Drop every queued item (the connection was closed locally)."""
        self.items.clear()
        self.errors = 0
        self.nbytes = 0
        self._set_fast()

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called."""
        return self._end is not None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- consumer side --------------------------------------------------------

    async def get(self) -> Any:
        """Return the next item, waiting for one; raise queued errors and the end.

        This is the slow path; while ``fast`` is true callers pop directly.

        Raises:
            RuntimeError: another coroutine is already waiting on this queue.
            BaseException: a queued error, or the end-of-input exception.
        """
        items = self.items
        while True:
            if items:
                item = items.popleft()
                if isinstance(item, BaseException):
                    self.errors -= 1
                    if not self.errors:
                        self._set_fast()
                    raise item
                if not self.fast:
                    self.nbytes -= self._size(item)
                    if (
                        self.paused
                        and len(items) <= self.max_items // 2
                        and self.nbytes <= self.max_bytes // 2
                    ):
                        self.paused = False
                        self._set_fast()
                        if self.resume is not None:
                            self.resume()
                return item
            if self._end is not None:
                exc_type, message = self._end
                raise exc_type(message)
            if self._waiter is not None:
                raise RuntimeError("another coroutine is already waiting for the next frame")
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
