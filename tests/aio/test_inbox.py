"""The receive queue on its own: ordering of frames and errors, bounds, cancellation."""

from __future__ import annotations

import asyncio
from typing import List

import pytest

import framekit
from framekit.asyncio.inbox import Inbox

from .conftest import Runner


def test_frames_then_errors_in_order_then_the_end(run: Runner) -> None:
    async def main() -> None:
        inbox = Inbox(100, 1000)
        inbox.put([b"a", b"b"], 2)
        assert inbox.fast
        inbox.put_error(framekit.FrameTooLarge("too large"))
        assert not inbox.fast and inbox.errors == 1
        inbox.put([b"c"], 1)
        inbox.end(framekit.ConnectionClosed, "the end")
        inbox.end(ValueError, "ignored: only the first end counts")
        assert await inbox.get() == b"a"
        assert inbox.pop() == b"b"
        with pytest.raises(framekit.FrameTooLarge):
            await inbox.get()
        assert inbox.fast  # no error left
        assert await inbox.get() == b"c"
        errors = []
        for _ in range(2):
            with pytest.raises(framekit.ConnectionClosed, match="the end") as info:
                await inbox.get()
            errors.append(info.value)
        assert errors[0] is not errors[1]  # a fresh exception each time

    run(main())


def test_frame_bound_pauses_and_half_resumes() -> None:
    calls: List[str] = []
    inbox = Inbox(4, 1000)
    inbox.pause = lambda: calls.append("pause")
    inbox.resume = lambda: calls.append("resume")
    inbox.put([b"x"] * 4, 4)
    assert calls == [] and inbox.fast
    inbox.put([b"y"], 1)  # five frames: above the frame bound
    assert calls == ["pause"] and inbox.paused and not inbox.fast
    assert inbox.resume_at == 2
    inbox.pop()
    inbox.pop()
    assert calls == ["pause"]  # three left
    inbox.pop()
    assert calls == ["pause", "resume"] and inbox.fast and not inbox.paused


def test_byte_bound_counts_batches_not_pops() -> None:
    calls: List[str] = []
    inbox = Inbox(1000, 100)
    inbox.pause = lambda: calls.append("pause")
    inbox.resume = lambda: calls.append("resume")
    inbox.put([b"a" * 30, b"b" * 30], 60)
    inbox.items.popleft()  # the fast path: no bookkeeping at all
    assert inbox.queued_bytes() == 60  # the partly consumed batch counts whole
    inbox.items.popleft()
    assert inbox.queued_bytes() == 0  # wholly consumed batches are dropped
    inbox.put([b"c" * 40], 40)
    inbox.put([b"d" * 20], 20)
    inbox.put([b"e" * 50], 50)  # 110 bytes: above the byte bound
    assert calls == ["pause"]
    # Half the bytes (50) remain once only the newest batch is left.
    assert inbox.resume_at == 1
    assert inbox.pop() == b"c" * 40
    assert calls == ["pause"]
    assert inbox.pop() == b"d" * 20
    assert calls == ["pause", "resume"] and inbox.queued_bytes() == 50


def test_cancelled_get_loses_nothing(run: Runner) -> None:
    """A frame that arrives just as the waiting get() is cancelled stays queued."""

    async def main() -> None:
        inbox = Inbox(10, 100)
        waiting = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        inbox.put([b"frame"], 5)  # wakes the waiter...
        waiting.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert list(inbox.items) == [b"frame"]
        assert await inbox.get() == b"frame"

    run(main())


def test_error_that_empties_a_paused_queue_resumes() -> None:
    """Reading paused, then the queue runs dry on an error: popping it resumes."""
    calls: List[str] = []
    inbox = Inbox(1000, 100)
    inbox.pause = lambda: calls.append("pause")
    inbox.resume = lambda: calls.append("resume")
    inbox.put([b"x" * 120], 120)  # above the byte bound: resume only once empty
    inbox.put_error(framekit.FrameTooLarge("skipped"))
    assert calls == ["pause"] and inbox.resume_at == 0
    assert inbox.pop() == b"x" * 120
    assert calls == ["pause"]  # the error is still queued
    with pytest.raises(framekit.FrameTooLarge):
        inbox.pop()
    assert calls == ["pause", "resume"]
    assert not inbox.paused and inbox.fast


def test_get_on_an_empty_paused_queue_resumes(run: Runner) -> None:
    async def main() -> None:
        calls: List[str] = []
        inbox = Inbox(1000, 100)
        inbox.pause = lambda: calls.append("pause")
        inbox.resume = lambda: calls.append("resume")
        inbox.put([b"x" * 120], 120)
        inbox.items.clear()  # as if consumed without bookkeeping
        inbox.end(framekit.ConnectionClosed, "the end")
        with pytest.raises(framekit.ConnectionClosed):
            await inbox.get()
        assert calls == ["pause", "resume"] and not inbox.paused

    run(main())
