"""Frames too large to hold, on asyncio: recv_stream, recv_into, send_stream, send_file."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, AsyncIterator, Callable, Iterator, List

import pytest

import framekit
import framekit.asyncio as fa

from .conftest import Runner

MiB = 1024 * 1024
WAIT = 10.0


def pattern(n: int, seed: int = 0) -> Iterator[bytes]:
    block = hashlib.sha256(str(seed).encode()).digest() * 3200  # 100 KiB
    while n:
        chunk = block[: min(n, len(block))]
        n -= len(chunk)
        yield chunk


async def apattern(n: int) -> AsyncIterator[bytes]:
    for chunk in pattern(n):
        yield chunk
        await asyncio.sleep(0)


def digest(chunks: Any) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


async def pair(LP: Callable[..., Any], handler: Any, **kw: Any) -> Any:
    codec = LP(4, max_frame_size=64 * 1024)
    server = await fa.serve("tcp://127.0.0.1:0", handler, codec, max_stream_size=64 * MiB)
    conn = await fa.connect(server.address, codec, max_stream_size=64 * MiB, **kw)
    return server, conn


def test_streams_both_ways(run: Runner, LP: Callable[..., Any]) -> None:
    size = 5 * MiB + 11

    async def echo_stream(conn: Any) -> None:
        async with await conn.recv_stream() as stream:
            hashes = hashlib.sha256()
            async for chunk in stream:
                hashes.update(chunk)
        await conn.send(hashes.hexdigest().encode())
        await conn.send_stream(size, apattern(size))
        await conn.send(b"after")

    async def main() -> None:
        server, conn = await pair(LP, echo_stream)
        async with server, conn:
            await conn.send_stream(size, pattern(size))
            assert (await conn.recv()).decode() == digest(pattern(size))
            chunks: List[bytes] = []
            async with await conn.recv_stream(chunk_size=100_000) as stream:
                assert stream.length == size
                async for chunk in stream:
                    chunks.append(chunk)
            assert max(map(len, chunks)) <= 100_000
            assert digest(chunks) == digest(pattern(size))
            assert await conn.recv() == b"after"

    run(asyncio.wait_for(main(), WAIT))


def test_early_exit_recv_refusal_and_recv_into(run: Runner, LP: Callable[..., Any]) -> None:
    async def sender(conn: Any) -> None:
        await conn.send_stream(3 * MiB, pattern(3 * MiB))
        await conn.send(b"one")
        await conn.send_stream(MiB, pattern(MiB))
        await conn.send(b"two")
        await conn.send_stream(200_000, [b"y" * 200_000])
        await conn.send(b"x" * 100)
        await conn.recv()  # wait for the client to finish

    async def main() -> None:
        server, conn = await pair(LP, sender)
        async with server, conn:
            async with await conn.recv_stream() as stream:
                assert len(await stream.read(1000)) == 1000
            assert await conn.recv() == b"one"  # the rest was skipped
            with pytest.raises(framekit.FrameTooLarge, match="recv_stream"):
                await conn.recv()
            assert await conn.recv() == b"two"
            small = bytearray(10)
            with pytest.raises(framekit.FrameTooLarge, match="stays unread"):
                await conn.recv_into(small)
            big = bytearray(200_000)
            assert await conn.recv_into(big) == 200_000 and big == b"y" * 200_000
            with pytest.raises(framekit.FrameTooLarge):
                await conn.recv_into(small)
            assert await conn.recv() == b"x" * 100
            await conn.send(b"done")

    run(asyncio.wait_for(main(), WAIT))


@pytest.mark.parametrize("wrong", [-1, +1])
def test_a_stream_of_the_wrong_length_is_never_misread(
    run: Runner, LP: Callable[..., Any], wrong: int
) -> None:
    got: List[Any] = []

    async def receiver(conn: Any) -> None:
        try:
            async with await conn.recv_stream() as stream:
                async for _ in stream:
                    pass
        except framekit.IncompleteFrame:
            got.append("IncompleteFrame")

    async def main() -> None:
        server, conn = await pair(LP, receiver)
        async with server:
            with pytest.raises(ValueError, match="announced"):
                await conn.send_stream(1000, [b"a" * (1000 + wrong)])
            for _ in range(200):
                if got:
                    break
                await asyncio.sleep(0.01)
        assert got == ["IncompleteFrame"]

    run(asyncio.wait_for(main(), WAIT))


def test_send_file(run: Runner, LP: Callable[..., Any], tmp_path: Any) -> None:
    path = tmp_path / "data.bin"
    with open(path, "wb") as f:
        for chunk in pattern(2 * MiB + 5, seed=9):
            f.write(chunk)

    async def receiver(conn: Any) -> None:
        async with await conn.recv_stream() as stream:
            h = hashlib.sha256()
            async for chunk in stream:
                h.update(chunk)
        await conn.send(h.hexdigest().encode())

    async def main() -> None:
        server, conn = await pair(LP, receiver)
        async with server, conn:
            with open(path, "rb") as f:
                f.seek(5)
                assert await conn.send_file(f) == 2 * MiB
            with open(path, "rb") as f:
                f.seek(5)
                want = hashlib.sha256(f.read()).hexdigest()
            assert (await conn.recv()).decode() == want

    run(asyncio.wait_for(main(), WAIT))


def test_frames_sent_meanwhile_go_after_the_stream(run: Runner, LP: Callable[..., Any]) -> None:
    """A send() from another task while a stream goes out lands after it, never inside it."""
    size = 2 * MiB
    received: List[Any] = []

    async def receiver(conn: Any) -> None:
        async with await conn.recv_stream() as stream:
            received.append(digest([chunk async for chunk in stream]))
        received.append(await conn.recv())
        await conn.send(b"bye")

    async def slow(n: int) -> AsyncIterator[bytes]:
        for chunk in pattern(n):
            yield chunk
            await asyncio.sleep(0.001)

    async def main() -> None:
        server, conn = await pair(LP, receiver)
        async with server, conn:
            task = asyncio.ensure_future(conn.send_stream(size, slow(size)))
            await asyncio.sleep(0.005)  # the stream has begun
            assert not task.done()
            await conn.send(b"meanwhile")
            await task
            assert await conn.recv() == b"bye"
        assert received == [digest(pattern(size)), b"meanwhile"]

    run(asyncio.wait_for(main(), WAIT))


def test_recv_into_reads_straight_into_the_callers_buffer(
    run: Runner, LP: Callable[..., Any]
) -> None:
    """A frame still arriving goes from the socket into the caller's buffer: the
    decoder never holds more than a read's worth of it, and the bytes are counted."""
    size = 3 * MiB + 7
    held: List[int] = []

    async def sender(conn: Any) -> None:
        await conn.send_stream(size, slow_pattern(size))
        await conn.send(b"next")
        await conn.recv()

    async def slow_pattern(n: int) -> AsyncIterator[bytes]:
        for chunk in pattern(n):
            yield chunk
            await asyncio.sleep(0.001)

    async def main() -> None:
        server, conn = await pair(LP, sender)
        async with server, conn:
            buffer = bytearray(size)
            view = memoryview(buffer)
            async with await conn.recv_stream() as stream:
                got = 0
                while got < size:
                    got += await stream.readinto(view[got:])
                    held.append(conn.core.pending)
            assert digest([buffer]) == digest(pattern(size))
            assert max(held) <= 256 * 1024  # never the frame whole in the decoder
            buffer2 = bytearray(16)
            assert await conn.recv_into(buffer2) == 4 and buffer2[:4] == b"next"
            assert conn.core.bytes_in == 4 + size + 4 + 4
            await conn.send(b"done")

    run(asyncio.wait_for(main(), WAIT))
