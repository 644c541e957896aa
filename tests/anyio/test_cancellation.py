"""Cancellation and backpressure: a cancelled recv() loses no frame, a cancelled send() cuts
none, and a handler that stops reading stops the reads."""

from __future__ import annotations

from typing import Any, List, Optional

import anyio
import pytest

import framekit
import framekit.anyio as fan
from framekit.core.options import DEFAULT_READ_SIZE

from .conftest import Runner
from .helpers import WAIT, echo, wait_until

pytestmark = pytest.mark.network

FRAME = 256 * 1024


def payload(i: int) -> bytes:
    return bytes([i % 251]) * FRAME


def test_cancelled_recv_loses_nothing(run: Runner) -> None:
    async def main() -> None:
        server = await fan.serve("tcp://127.0.0.1:0", echo)
        async with server, await fan.connect(server.address) as conn:
            with anyio.move_on_after(0.05) as scope:
                await conn.recv()  # nothing comes: cancelled while waiting
            assert scope.cancelled_caught
            await conn.send_many([b"one", b"two", b"three"])
            assert await conn.recv() == b"one"
            # cancelled by a task group, with messages of a batch waiting
            async with anyio.create_task_group() as tg:
                tg.start_soon(conn.recv)  # takes "two" without waiting...
                tg.cancel_scope.cancel()
            got = [await conn.recv()]
            if got != [b"three"]:
                assert got == [b"two"] and await conn.recv() == b"three"
            async with anyio.create_task_group() as tg:  # ...and one that waits
                tg.start_soon(conn.recv)
                await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
            await conn.send(b"four")
            assert await conn.recv() == b"four"

    run(main)


def test_recv_cancelled_in_the_middle_of_a_frame(run: Runner) -> None:
    wire = framekit.LengthPrefixed().encode(b"a frame in two halves")

    async def main() -> None:
        rest = anyio.Event()

        async def halves(conn: Any) -> None:
            await conn.stream.send(wire[:7])
            await rest.wait()
            await conn.stream.send(wire[7:])
            await anyio.sleep_forever()

        server = await fan.serve("tcp://127.0.0.1:0", halves)
        async with server, await fan.connect(server.address) as conn:
            with anyio.move_on_after(0.2) as scope:
                await conn.recv()
            assert scope.cancelled_caught
            assert conn.queued_bytes == 7  # the half frame is kept
            rest.set()
            with anyio.fail_after(WAIT):
                assert await conn.recv() == b"a frame in two halves"

    run(main)


async def _collect(conn: Any, gate: anyio.Event, into: List[Any], done: anyio.Event) -> None:
    """A handler that reads nothing until ``gate``, then records every frame and the end."""
    try:
        await gate.wait()
        while True:
            try:
                into.append(await conn.recv())
            except framekit.ConnectionClosed:
                into.append("closed")
                return
            except (framekit.FramingError, ConnectionError) as exc:
                into.append(type(exc).__name__)
                return
    finally:
        done.set()


def test_send_cancelled_in_the_middle_finishes_the_frame(run: Runner) -> None:
    """The peer does not read: sends block; the deadline passes in the middle of a frame;
    once the peer reads, that frame arrives whole, then the cancellation goes on."""

    async def main() -> None:
        gate, done = anyio.Event(), anyio.Event()
        got: List[Any] = []

        async def handler(conn: Any) -> None:
            await _collect(conn, gate, got, done)

        async def open_gate_later() -> None:
            await anyio.sleep(0.6)
            gate.set()

        server = await fan.serve("tcp://127.0.0.1:0", handler)
        async with server, await fan.connect(server.address) as conn:
            sent = 0
            async with anyio.create_task_group() as tg:
                tg.start_soon(open_gate_later)
                with anyio.move_on_after(0.3) as scope:
                    while True:
                        await conn.send(payload(sent))
                        sent += 1
            assert scope.cancelled_caught
            await conn.send(b"end")
            await conn.aclose()
            with anyio.fail_after(WAIT):
                await done.wait()
        assert got[-2:] == [b"end", "closed"]
        frames = got[:-2]
        assert len(frames) in (sent, sent + 1)  # the frame cut by the deadline, whole
        assert frames == [payload(i) for i in range(len(frames))]

    run(main)


def test_a_send_that_cannot_finish_aborts_the_connection(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    """abort() (what closing a server does) ends a shielded write: the peer sees a cut
    frame (IncompleteFrame) after whole ones, never a short frame."""

    async def main() -> None:
        gate, done = anyio.Event(), anyio.Event()
        got: List[Any] = []
        error: Optional[BaseException] = None

        async def handler(conn: Any) -> None:
            await _collect(conn, gate, got, done)

        server = await fan.serve("tcp://127.0.0.1:0", handler)
        async with server:
            conn = await fan.connect(server.address)
            assert isinstance(conn, fan.Connection)

            async def sender() -> None:
                nonlocal error
                i = 0
                try:
                    while True:
                        await conn.send(payload(i))
                        i += 1
                except (OSError, framekit.ConnectionClosed) as exc:
                    error = exc

            async with anyio.create_task_group() as tg:
                tg.start_soon(sender)
                await anyio.sleep(0.3)  # long enough to fill the socket buffers
                conn.abort()
            await conn.aclose()
            assert error is not None
            gate.set()
            with anyio.fail_after(WAIT):
                await done.wait()
        *frames, end = got
        assert end in ("IncompleteFrame", "ConnectionResetError", "closed")
        assert frames == [payload(i) for i in range(len(frames))]

    run(main)


def test_a_handler_that_stops_reading_stops_the_reads(run: Runner) -> None:
    total = 64  # 16 MiB: more than the socket buffers hold

    async def main() -> None:
        gate, done = anyio.Event(), anyio.Event()
        got: List[Any] = []
        peer: List[Any] = []

        async def handler(conn: Any) -> None:
            peer.append(conn)
            got.append(await conn.recv())
            await _collect(conn, gate, got, done)

        server = await fan.serve("tcp://127.0.0.1:0", handler)
        async with server, await fan.connect(server.address) as conn:

            async def sender() -> None:
                for i in range(total):
                    await conn.send(payload(i))
                await conn.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(sender)
                await wait_until(lambda: got, "the first frame arrived")
                await anyio.sleep(0.3)
                core = peer[0].core
                # what the server took is one read past the first frame, at most
                assert core.bytes_in <= FRAME + 4 + DEFAULT_READ_SIZE
                assert core.queued_bytes <= DEFAULT_READ_SIZE
                gate.set()
            with anyio.fail_after(WAIT):
                await done.wait()
        assert got[:-1] == [payload(i) for i in range(total)]
        assert got[-1] == "closed"

    run(main)


def test_a_handler_that_never_reads_holds_nothing(run: Runner) -> None:
    """Not even before the first recv(): the asyncio backend's transport starts paused."""

    async def main() -> None:
        peer: List[Any] = []

        async def idle(conn: Any) -> None:
            peer.append(conn)
            await anyio.sleep_forever()

        server = await fan.serve("tcp://127.0.0.1:0", idle)
        async with server, await fan.connect(server.address) as conn:

            async def sender() -> None:
                with pytest.raises((OSError, framekit.ConnectionClosed)):
                    for i in range(64):
                        await conn.send(payload(i))

            async with anyio.create_task_group() as tg:
                tg.start_soon(sender)
                await anyio.sleep(0.5)  # the sender is stuck: nobody reads
                await wait_until(lambda: peer, "the handler started")
                assert peer[0].core.bytes_in == 0
                conn.abort()

    run(main)
