"""Receive-side backpressure: an unread fast sender cannot grow the receiver's memory."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any, Callable, List

import pytest

import framekit
import framekit.asyncio as fa

from .conftest import Runner
from .helpers import WAIT, close_writer, raw_connect, wait_until

pytestmark = pytest.mark.network

KiB = 1024
MiB = 1024 * KiB


def test_unread_fast_sender_leaves_memory_flat(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(4)
    max_frames, max_bytes = 64, 64 * KiB
    batch = [b"%06d" % i + b"." * (4 * KiB - 6) for i in range(16)]  # 16 frames of 4 KiB
    batches = 256  # 16 MiB in all: far more than the bounds and loopback's buffers hold

    async def main() -> None:
        loop = asyncio.get_running_loop()
        release = asyncio.Event()
        server_conn: asyncio.Future[Any] = loop.create_future()
        received: List[bytes] = []

        async def lazy(conn: Any) -> None:
            server_conn.set_result(conn)
            await release.wait()
            async for frame in conn:
                received.append(frame)

        server = await fa.serve(
            "tcp://127.0.0.1:0",
            lazy,
            codec,
            max_queued_frames=max_frames,
            max_queued_bytes=max_bytes,
        )
        async with server, await fa.connect(server.address, codec) as client:
            receiver = await asyncio.wait_for(server_conn, WAIT)
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                sent = 0

                async def fast_sender() -> None:
                    nonlocal sent
                    for _ in range(batches):
                        await client.send_many(batch)
                        sent += 1

                sender = asyncio.ensure_future(fast_sender())
                await wait_until(
                    lambda: client._protocol.flow.paused or sender.done(), "the sender is held back"
                )
                # The bounds, plus at most one read past them: one view of the
                # decoder's buffer (64 KiB asked; the buffer may have grown to 256 KiB).
                one_read = 256 * KiB
                for _ in range(20):  # it stays that way
                    await asyncio.sleep(0.005)
                    assert receiver.queued_frames <= max_frames + one_read // len(batch[0])
                    assert receiver.queued_bytes <= max_bytes + one_read
                    assert not receiver.transport.is_reading()
                assert not sender.done() and sent < batches
                grown = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
            # Decoder buffer, queue, one read and the sender's write buffer: well under
            # the 16 MiB an unbounded receiver (or sender) would hold.
            assert grown < 2 * MiB, f"{grown} bytes"
            release.set()
            await asyncio.wait_for(sender, WAIT * 2)
            await client.close()
            await wait_until(lambda: len(received) == batches * len(batch), "all frames arrived")
            assert received[:16] == batch and received[-16:] == batch

    run(main())


def test_frame_too_large_while_paused_does_not_stop_reading(
    run: Runner, LP: Callable[..., Any]
) -> None:
    """A frame above the byte bound pauses reading; the oversized frame behind it
    is queued as an error; once both are popped reading resumes (it stayed
    paused for good, and every later recv() hung)."""
    codec = LP(4, max_frame_size=2000)
    big = codec.encode(b"x" * 1200)
    oversized = framekit.LengthPrefixed(4).encode(b"j" * 2500)
    after = codec.encode(b"after")

    async def main() -> None:
        go = asyncio.Event()
        conns: List[Any] = []
        got: List[Any] = []

        async def handler(conn: Any) -> None:
            conns.append(conn)
            await go.wait()
            for _ in range(3):
                try:
                    got.append(await asyncio.wait_for(conn.recv(), WAIT))
                except framekit.FrameTooLarge as exc:
                    got.append(type(exc))

        async with await fa.serve(
            "tcp://127.0.0.1:0", handler, codec, max_queued_bytes=1000
        ) as server:
            _reader, writer = await raw_connect(server.address)
            writer.write(big + oversized[:100])
            await wait_until(
                lambda: bool(conns) and conns[0].core._error is not None,
                "the big frame was refused",
            )
            assert conns[0]._protocol.paused
            writer.write(oversized[100:] + after)  # arrives only once reading resumes
            go.set()
            await wait_until(lambda: len(got) == 3, "three results")
            assert got == [b"x" * 1200, framekit.FrameTooLarge, b"after"]
            await close_writer(writer)

    run(main())
