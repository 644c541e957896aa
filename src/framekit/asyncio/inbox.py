"""The receive queue shared by stream and datagram protocols: frames, errors, one waiter.

Design notes
------------
A protocol callback (``buffer_updated``, ``datagram_received``) may decode many
frames at once; ``recv()`` hands them out one by one.  The queue is a
``collections.deque`` of items (frames for streams, ``(frame, address)`` pairs
for datagrams) in which errors are queued *in place*, right after the frames
that arrived before them, so nothing that arrived intact is lost and errors are
raised in the order they happened.

Three ways out, cheapest first:

* ``fast`` is true while no error is queued and reading is not paused: the
  consumer may ``items.popleft()`` without looking at the item.  That is the
  fast path of ``Connection.recv()`` and ``async for``: a deque check, a flag
  and a pop, with no future, no suspension and no bookkeeping.
* Otherwise, while items are queued, :meth:`Inbox.pop` raises error items and
  resumes reading when the queue is low enough: a plain method call.
* Only an empty queue makes :meth:`Inbox.get` create a future and wait.  The
  future is the *only* thing a cancelled ``recv()`` loses: the item is popped
  after the wait, never before, so cancelling a pending ``recv()`` cannot drop
  a frame.

The end of the stream is not an item: it is a state (``end``) reached when the
queue runs dry, and ``recv()`` raises it every time from then on (a fresh
exception each time, so tracebacks do not pile up).  Errors that happen once
(``IncompleteFrame`` at EOF, a connection reset) are queued as items before the
end, so they are raised once and then ``ConnectionClosed`` follows.

Bounds without per-frame bookkeeping.  Counting bytes on every pop would cost
the fast path a ``len()`` and two stores per frame.  Instead each ``put()`` is
remembered as a batch (how many items were ever queued after it, and its
bytes); the items popped since are ``added - len(items)``, so batches wholly
consumed are dropped lazily, and the bytes still queued are those of the
remaining batches, counting the partly consumed oldest one whole: an
overestimate by less than one read, never an underestimate.  Above either bound
``put()`` pauses (calls ``pause``: the stream protocol stops reading) and
computes ``resume_at``, the queue length at which at most half of each bound
remains; :meth:`Inbox.pop` resumes when the queue gets there, whether the
item it popped is a frame or an error (a queue that runs dry on a
``FrameTooLarge`` must resume too), and :meth:`Inbox.get` resumes on an empty
queue.  Hardly any item arrives while reading is paused (only the rest of the
read that crossed the bound, and errors), so that one comparison is all a pop
needs.  A datagram endpoint drops datagrams above the bounds instead of
pausing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Tuple, Type

__all__ = ["DEFAULT_MAX_QUEUED_BYTES", "DEFAULT_MAX_QUEUED_FRAMES", "Inbox", "check_limits"]

#: Default bound on decoded frames waiting for ``recv()``.  One 64 KiB read of
#: small frames decodes thousands (8192 frames of 4 bytes), and uvloop reads
#: several times before the consumer runs; a bound below a few reads' worth
#: would pause reading all the time.  16384 empty frames hold about 700 KiB (a
#: ``bytes`` object and a deque slot each).
DEFAULT_MAX_QUEUED_FRAMES = 16384
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
        max_items: above this many queued items, :meth:`put` pauses.
        max_bytes: above this many queued bytes, :meth:`put` pauses.
    """

    __slots__ = (
        "_added",
        "_batch_bytes",
        "_batches",
        "_end",
        "_waiter",
        "errors",
        "fast",
        "items",
        "max_bytes",
        "max_items",
        "pause",
        "paused",
        "resume",
        "resume_at",
    )

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.items: Deque[Any] = deque()
        #: Error items in ``items``.
        self.errors = 0
        #: Consumers may ``items.popleft()`` directly (no error queued, not paused).
        self.fast = True
        self.max_items = max_items
        self.max_bytes = max_bytes
        #: Set by :meth:`put` above a bound, until the queue is low again.
        self.paused = False
        #: While paused: resume once ``len(items)`` is at most this.
        self.resume_at = -1
        #: Called when the queue goes above a bound, and when it is low again.
        self.pause: Optional[Callable[[], None]] = None
        self.resume: Optional[Callable[[], None]] = None
        self._added = 0  # items ever queued
        self._batches: Deque[Tuple[int, int, int]] = deque()  # (added after, items, bytes)
        self._batch_bytes = 0  # bytes of the batches in _batches
        self._waiter: Optional[asyncio.Future[None]] = None
        self._end: Optional[Tuple[Type[BaseException], str]] = None

    # -- producer side --------------------------------------------------------

    def put(self, items: List[Any], nbytes: int) -> None:
        """Queue received items whose sizes add up to ``nbytes``; pause above a bound."""
        self.items.extend(items)
        self._record(len(items), nbytes)
        if not self.paused and self.over_limit:
            self.paused = True
            self.fast = False
            self.resume_at = self._low_water()
            if self.pause is not None:
                self.pause()
        self._wake()

    def put_error(self, exc: BaseException) -> None:
        """Queue an error; consumers raise it after the items queued before it."""
        self.items.append(exc)
        self._record(1, 0)
        self.errors += 1
        self.fast = False
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
        self._batches.clear()
        self._batch_bytes = 0
        self.errors = 0
        self.fast = not self.paused

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called."""
        return self._end is not None

    def _record(self, count: int, nbytes: int) -> None:
        self._added += count
        self._batches.append((self._added, count, nbytes))
        self._batch_bytes += nbytes

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- bounds -----------------------------------------------------------------

    def queued_bytes(self) -> int:
        """Bytes of the queued items (the partly consumed oldest batch counts whole)."""
        taken = self._added - len(self.items)
        batches = self._batches
        while batches and batches[0][0] <= taken:
            self._batch_bytes -= batches.popleft()[2]
        return self._batch_bytes

    @property
    def over_limit(self) -> bool:
        """More items or bytes are queued than the bounds allow."""
        return len(self.items) > self.max_items or self.queued_bytes() > self.max_bytes

    def _low_water(self) -> int:
        """The queue length at which at most half of each bound remains queued."""
        half_bytes = self.max_bytes // 2
        count = nbytes = 0
        for _, batch_count, batch_bytes in reversed(self._batches):
            if nbytes + batch_bytes > half_bytes:
                break
            nbytes += batch_bytes
            count += batch_count
        return min(count, self.max_items // 2)

    # -- consumer side --------------------------------------------------------

    def pop(self) -> Any:
        """Pop the next item (the queue must not be empty): raise it if it is an
        error, resume reading if the queue is now low enough.

        Raises:
            BaseException: the item, if it is a queued error.
        """
        items = self.items
        item = items.popleft()
        error = isinstance(item, BaseException)
        if error:
            self.errors -= 1
        # An error item counts too: after a FrameTooLarge the queue may run dry
        # on an error, and reading paused for good would hang every recv().
        if self.paused and len(items) <= self.resume_at:
            self._resume()
        self.fast = not (self.errors or self.paused)
        if error:
            raise item
        return item

    def _resume(self) -> None:
        self.paused = False
        self.resume_at = -1
        self.fast = not self.errors
        if self.resume is not None:
            self.resume()

    async def get(self) -> Any:
        """Return the next item, waiting for one; raise queued errors and the end.

        Raises:
            RuntimeError: another coroutine is already waiting on this queue.
            BaseException: a queued error, or the end-of-input exception.
        """
        while not self.items:
            if self.paused:
                self._resume()  # an empty queue is low enough, whatever resume_at says
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
        return self.pop()
