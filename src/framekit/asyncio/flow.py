"""Flow control shared by stream and datagram protocols: the send side, and the one reader.

Design notes
------------
**Receiving** needs only a way to sleep until the protocol has something:
:class:`ReadWaiter` holds at most one future, for the one coroutine that
waits in ``recv()``, woken by the protocol callbacks.  The future is the only
thing a cancelled ``recv()`` loses: messages stay in the connection core, so
cancelling a waiting ``recv()`` cannot drop one.  A deadline (the core's
timeouts) wakes it with a timer.

**Sending.**
asyncio transports buffer what the kernel does not take at once and call the
protocol's ``pause_writing()`` when that buffer goes above its high-water mark,
``resume_writing()`` when it drains below the low-water mark.  ``send()`` writes
and then, *only if* writing is paused, awaits a future that ``resume_writing()``
completes.  Checking a flag costs nothing; awaiting ``StreamWriter.drain()``
after every write costs a coroutine per frame even when nothing is buffered.

Each waiting sender gets its own future, so cancelling one ``send()`` does not
cancel the others.  When the connection is lost (or closed locally) every
waiter gets the error, and every later ``send()`` raises it at once instead of
writing into a dead transport.

**Closing** (:func:`wait_closed`) is the same for both: after a graceful
close, wait for the protocol's ``lost`` future at most ``timeout`` seconds,
then abort; a cancelled close aborts at once, so cancelling it (as
``Server.close()`` cancels the handlers' tasks) never leaves a transport open
behind it while a peer does not read.

A sender waits at most the connection core's ``send_timeout`` each time the
transport pauses (the peer took nothing meanwhile); then :meth:`WriteFlow.wait`
says so and the connection aborts it: a peer that never reads cannot hold a
handler, and its connection slot, for ever.
"""

from __future__ import annotations

import asyncio
from typing import Callable, List, Optional

from .._util import fresh
from ..errors import ConnectionClosed

__all__ = ["ReadWaiter", "WriteFlow", "wait_closed"]


class ReadWaiter:
    """The one coroutine waiting for input, and how to wake it."""

    __slots__ = ("_future", "_loop", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # The loop, kept: asyncio.get_running_loop() costs a getpid() system
        # call on every call (CPython 3.11: it checks for a fork), once per wait.
        self._loop = loop
        self._future: Optional[asyncio.Future[None]] = None
        self._timer: Optional[asyncio.TimerHandle] = None

    def wake(self) -> None:
        """Input (or an end) arrived: let the waiting coroutine look."""
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_result(None)
            timer = self._timer
            if timer is not None:
                self._timer = None
                timer.cancel()

    def wait(self, timeout: Optional[float] = None) -> asyncio.Future[None]:
        """Return what to await until :meth:`wake` (or ``timeout`` seconds, if given).

        A future, not a coroutine: one frame less on the path of every read.
        Cancelling the awaiting task cancels it, and the next ``wait()`` may begin.

        Raises:
            RuntimeError: another coroutine is already waiting.
        """
        current = self._future
        if current is not None and not current.done():
            raise RuntimeError("another coroutine is already waiting for the next message")
        timer = self._timer
        if timer is not None:  # of a wait that was cancelled
            self._timer = None
            timer.cancel()
        loop = self._loop
        future = self._future = loop.create_future()
        if timeout is not None:
            self._timer = loop.call_later(max(timeout, 0.0), _expire, future)
        return future


def _expire(future: asyncio.Future[None]) -> None:
    """A wait's timeout: wake that wait (not a later one)."""
    if not future.done():
        future.set_result(None)


class WriteFlow:
    """Pause/resume state of one transport's write side, and its waiting senders."""

    __slots__ = ("_loop", "_waiters", "error", "paused")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        #: True between ``pause_writing()`` and ``resume_writing()``.
        self.paused = False
        #: Set once writing is impossible: raised by every later send.
        self.error: Optional[BaseException] = None
        self._waiters: List[asyncio.Future[bool]] = []

    def pause(self) -> None:
        """The transport's write buffer went above its high-water mark."""
        self.paused = True

    def resume(self) -> None:
        """The transport's write buffer drained below its low-water mark."""
        self.paused = False
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(True)

    def fail(self, exc: Optional[BaseException], message: str = "connection is closed") -> None:
        """Writing is over: wake every waiter with ``exc`` (``ConnectionClosed`` if None)."""
        if self.error is not None:
            return
        # A copy: the core raises ``exc`` itself once, with a traceback.
        self.error = fresh(exc) if exc is not None else ConnectionClosed(message)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(fresh(self.error))
                # A waiter whose sender was cancelled would log "exception never
                # retrieved"; mark it retrieved.
                waiter.exception()

    def check(self) -> None:
        """Raise the error that ended writing, if any."""
        if self.error is not None:
            raise fresh(self.error)  # a copy: no traceback on the stored one

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until writing is resumed (return at once if it is not paused).

        Returns:
            False if the peer took nothing for ``timeout`` seconds (None: wait
            for ever): the caller aborts the connection.

        Raises:
            ConnectionError: the connection was lost or closed while waiting.
        """
        loop = self._loop
        while self.paused:
            self.check()
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = None if timeout is None else loop.call_later(timeout, _stalled, waiter)
            try:
                if not await waiter:
                    return False
            finally:
                self._waiters.remove(waiter)
                if timer is not None:
                    timer.cancel()
                # The error the waiter raised has this frame in its traceback:
                # this frame must not hold the waiter (no reference cycle).
                waiter = timer = None  # type: ignore[assignment]
        self.check()
        return True


def _stalled(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


async def wait_closed(
    lost: asyncio.Future[None], timeout: Optional[float], abort: Callable[[], None]
) -> None:
    """After a graceful close: wait until ``lost`` is done, at most ``timeout``
    seconds (None: no limit), then ``abort()`` and wait for it; cancelled,
    ``abort()`` before the ``CancelledError`` goes on."""
    if lost.done():
        return
    try:
        await asyncio.wait_for(asyncio.shield(lost), timeout)
    except asyncio.TimeoutError:
        abort()
        await lost
    except BaseException:
        abort()
        raise
