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
        assert not inbox.fast and inbox.nbytes == 2  # exact bytes while not fast
        inbox.put([b"c"], 1)
        inbox.end(framekit.ConnectionClosed, "the end")
        inbox.end(ValueError, "ignored: only the first end counts")
        assert await inbox.get() == b"a"
        assert await inbox.get() == b"b"
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


def test_bounds_pause_and_resume(run: Runner) -> None:
    async def main() -> None:
        calls: List[str] = []
        inbox = Inbox(4, 100)
        inbox.pause = lambda: calls.append("pause")
        inbox.resume = lambda: calls.append("resume")
        inbox.put([b"x"] * 4, 4)
        assert calls == [] and inbox.fast
        inbox.put([b"x"], 1)  # five frames: above the frame bound
        assert calls == ["pause"] and inbox.paused and not inbox.fast
        for _ in range(2):
            await inbox.get()
        assert calls == ["pause"]  # three left: not yet half
        await inbox.get()
        assert calls == ["pause", "resume"] and inbox.fast
        inbox.put([b"y" * 60], 60)  # the backlog is counted when not exact
        assert inbox.queued_bytes() == 62 and calls == ["pause", "resume"]
        inbox.put([b"z" * 50], 50)  # above the byte bound
        assert calls[-1] == "pause" and inbox.nbytes == 112

    run(main())


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


def test_exact_inbox_counts_every_pop(run: Runner) -> None:
    async def main() -> None:
        inbox = Inbox(10, 100, lambda item: len(item[0]), exact=True)
        assert not inbox.fast
        inbox.put([(b"abc", "peer"), (b"de", "peer")], 5)
        assert await inbox.get() == (b"abc", "peer")
        assert inbox.nbytes == 2 and inbox.queued_bytes() == 2 and not inbox.fast

    run(main())
