"""The asyncio and blocking transports speak the same wire: each against the other."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, List

import pytest

import framekit
import framekit.asyncio as fa

from .conftest import Family, Runner
from .helpers import WAIT, echo, echo_datagrams

pytestmark = pytest.mark.network

FRAMES = [b"", b"x", b"hello" * 100, os.urandom(1 << 20)]


def blocking_exchange(address: str, codec: Any, family: Family) -> List[bytes]:
    """A blocking client: send FRAMES (one by one, then all at once), read the echoes."""
    with framekit.connect(address, codec, timeout=WAIT, ssl=family.client_ssl) as conn:
        for frame in FRAMES:
            conn.send(frame)
        conn.send_many(FRAMES)
        return [conn.recv() for _ in range(2 * len(FRAMES))]


def test_blocking_client_asyncio_server(
    run: Runner, LP: Callable[..., Any], family: Family
) -> None:
    codec = LP(4)

    async def main() -> None:
        async with await fa.serve(family.address, echo, codec, ssl=family.server_ssl) as server:
            got = await asyncio.to_thread(blocking_exchange, server.address, codec, family)
            assert got == FRAMES * 2

    run(main())


def test_asyncio_client_blocking_server(
    run: Runner, LP: Callable[..., Any], family: Family
) -> None:
    codec = LP(4)

    def blocking_echo(conn: Any) -> None:
        for frame in conn:
            conn.send(frame)

    async def main() -> None:
        server = framekit.serve(family.address, blocking_echo, codec, ssl=family.server_ssl)
        try:
            server.start()
            conn = await fa.connect(server.address, codec, ssl=family.client_ssl)
            async with conn:
                for frame in FRAMES:
                    await conn.send(frame)
                await conn.send_many(FRAMES)
                got = [await asyncio.wait_for(conn.recv(), WAIT) for _ in range(2 * len(FRAMES))]
                assert got == FRAMES * 2
        finally:
            await asyncio.to_thread(server.shutdown)

    run(main())


@pytest.mark.parametrize("scheme", ["udp", "unixgram"])
def test_datagrams_both_ways(
    run: Runner, LP: Callable[..., Any], scheme: str, sock_dir: str
) -> None:
    codec = LP(2)
    frames = [b"one", b"", b"three" * 50]
    address = "udp://127.0.0.1:0" if scheme == "udp" else f"unixgram://{sock_dir}/{{}}.sock"

    def blocking_client(server_address: str) -> List[bytes]:
        with framekit.connect(server_address, codec, timeout=WAIT) as dsock:
            dsock.send_many(frames)
            return [dsock.recv() for _ in frames]

    async def main() -> None:
        # A blocking client against an asyncio datagram server...
        async with await fa.serve(address.format("aio"), echo_datagrams, codec) as server:
            assert await asyncio.to_thread(blocking_client, server.address) == frames
        # ...and an asyncio client against a blocking one.
        blocking = framekit.serve(address.format("sync"), lambda frame, addr: frame, codec)
        try:
            blocking.start()
            async with await fa.connect(blocking.address, codec) as client:
                await client.send_many(frames)
                got = [await asyncio.wait_for(client.recv(), WAIT) for _ in frames]
                assert got == frames
        finally:
            await asyncio.to_thread(blocking.shutdown)

    run(main())


def test_errors_match_across_apis(run: Runner, LP: Callable[..., Any]) -> None:
    """A blocking peer that cuts a frame short: the asyncio side raises IncompleteFrame,
    then ConnectionClosed, as a FramedSocket would."""
    codec = LP(4)

    def cut_short(conn: Any) -> None:
        conn.send(b"whole")
        conn.socket.sendall(codec.encode(b"cut short")[:6])

    async def main() -> None:
        server = framekit.serve("tcp://127.0.0.1:0", cut_short, codec)
        try:
            server.start()
            async with await fa.connect(server.address, codec) as conn:
                assert await asyncio.wait_for(conn.recv(), WAIT) == b"whole"
                with pytest.raises(framekit.IncompleteFrame) as info:
                    await asyncio.wait_for(conn.recv(), WAIT)
                assert info.value.missing == 7
                with pytest.raises(framekit.ConnectionClosed):
                    await conn.recv()
        finally:
            await asyncio.to_thread(server.shutdown)

    run(main())
