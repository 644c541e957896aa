"""Frames too large to hold, on anyio (asyncio and trio): recv_stream, recv_into,
send_stream, send_file, and frames sent by other tasks while a stream goes out."""

from __future__ import annotations

import hashlib
from typing import Any, AsyncIterator, Callable, Iterator, List

import anyio
import pytest

import framekit
import framekit.anyio as fan

from .conftest import Runner

MiB = 1024 * 1024


def pattern(n: int, seed: int = 0) -> Iterator[bytes]:
    block = hashlib.sha256(str(seed).encode()).digest() * 3200  # 100 KiB
    while n:
        chunk = block[: min(n, len(block))]
        n -= len(chunk)
        yield chunk


async def apattern(n: int, pause: float = 0.0) -> AsyncIterator[bytes]:
    for chunk in pattern(n):
        yield chunk
        await anyio.sleep(pause)


def digest(chunks: Any) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


async def pair(LP: Callable[..., Any], handler: Any) -> Any:
    codec = LP(4, max_frame_size=64 * 1024)
    server = await fan.serve("tcp://127.0.0.1:0", handler, codec, max_stream_size=64 * MiB)
    await server.__aenter__()
    conn = await fan.connect(server.address, codec, max_stream_size=64 * MiB)
    return server, conn


def test_streams_both_ways(run: Runner, LP: Callable[..., Any]) -> None:
    size = 3 * MiB + 11

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
        try:
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
        finally:
            await conn.aclose()
            await server.__aexit__(None, None, None)

    run(main)


def test_early_exit_refusal_and_recv_into(run: Runner, LP: Callable[..., Any]) -> None:
    async def sender(conn: Any) -> None:
        await conn.send_stream(2 * MiB, pattern(2 * MiB))
        await conn.send(b"one")
        await conn.send_stream(MiB, pattern(MiB))
        await conn.send(b"two")
        await conn.send_stream(200_000, [b"y" * 200_000])
        await conn.send(b"x" * 100)
        await conn.recv()  # wait for the client to finish

    async def main() -> None:
        server, conn = await pair(LP, sender)
        try:
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
            assert await conn.recv() == b"x" * 100
            await conn.send(b"done")
        finally:
            await conn.aclose()
            await server.__aexit__(None, None, None)

    run(main)


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
        try:
            with pytest.raises(ValueError, match="announced"):
                await conn.send_stream(1000, [b"a" * (1000 + wrong)])
            with anyio.fail_after(5):
                while not got:
                    await anyio.sleep(0.01)
        finally:
            await conn.aclose()
            await server.__aexit__(None, None, None)
        assert got == ["IncompleteFrame"]

    run(main)


def test_send_file_and_frames_sent_meanwhile(
    run: Runner, LP: Callable[..., Any], tmp_path: Any
) -> None:
    """Another task's send() while a stream goes out lands after it, never inside it."""
    path = tmp_path / "data.bin"
    with open(path, "wb") as f:
        for chunk in pattern(MiB + 5, seed=9):
            f.write(chunk)
    received: List[Any] = []

    async def receiver(conn: Any) -> None:
        for _ in range(2):
            async with await conn.recv_stream() as stream:
                h = hashlib.sha256()
                async for chunk in stream:
                    h.update(chunk)
            received.append(h.hexdigest())
            received.append(await conn.recv())
        await conn.send(b"bye")

    async def main() -> None:
        server, conn = await pair(LP, receiver)
        try:
            with open(path, "rb") as f:
                f.seek(5)
                assert await conn.send_file(f) == MiB
            await conn.send(b"after the file")
            async with anyio.create_task_group() as tg:
                size = 2 * MiB

                async def stream_it() -> None:
                    await conn.send_stream(size, apattern(size, pause=0.001))

                tg.start_soon(stream_it)
                await anyio.sleep(0.005)  # the stream has begun
                await conn.send(b"meanwhile")
            assert await conn.recv() == b"bye"
        finally:
            await conn.aclose()
            await server.__aexit__(None, None, None)
        with open(path, "rb") as f:
            f.seek(5)
            want = hashlib.sha256(f.read()).hexdigest()
        assert received == [want, b"after the file", digest(pattern(2 * MiB)), b"meanwhile"]

    run(main)
