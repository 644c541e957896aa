"""framekit.anyio against the other transports: the same bytes on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Dict, Iterator, List

import anyio
import pytest

import framekit
import framekit.anyio as fan
import framekit.asyncio as fa
from framekit.serializers import JSON

from .conftest import Runner
from .helpers import echo

pytestmark = pytest.mark.network

FRAMES = [b"", b"x", b"y" * 70000, *(b"%d" % i for i in range(300))]


def test_a_blocking_client_against_an_anyio_server(run: Runner, sock_dir: str) -> None:
    def client(address: str) -> List[bytes]:
        with framekit.connect(address, timeout=5.0) as conn:
            conn.send_many(FRAMES)
            return [conn.recv() for _ in FRAMES]

    async def main() -> None:
        for address in ("tcp://127.0.0.1:0", f"unix://{sock_dir}/s.sock"):
            async with await fan.serve(address, echo) as server:
                got = await anyio.to_thread.run_sync(client, server.address)
            assert got == FRAMES

    run(main)


@contextlib.contextmanager
def asyncio_server(address: str, handler: Any, **kwargs: Any) -> Iterator[str]:
    """A framekit.asyncio server on its own loop in a thread; yields its address."""
    ready = threading.Event()
    box: Dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            server = await fa.serve(address, handler, **kwargs)
            box["address"] = server.address
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = stop = asyncio.Event()
            ready.set()
            async with server:
                await stop.wait()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(5.0)
    try:
        yield box["address"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(5.0)
        assert not thread.is_alive()


async def asyncio_echo(conn: Any) -> None:
    async for frame in conn:
        await conn.send(frame)


def test_an_anyio_client_against_an_asyncio_server(
    run: Runner, sock_dir: str, tls_contexts: Any
) -> None:
    server_ssl, client_ssl = tls_contexts
    cases = [
        ("tcp://127.0.0.1:0", None, None),
        (f"unix://{sock_dir}/s.sock", None, None),
        ("tls://localhost:0", server_ssl, client_ssl),
    ]
    for address, sssl, cssl in cases:
        with asyncio_server(address, asyncio_echo, ssl=sssl) as where:

            async def main(where: str = where, cssl: Any = cssl) -> None:
                async with await fan.connect(where, ssl=cssl, serializer=JSON) as conn:
                    await conn.send({"hello": [1, 2]})
                    assert await conn.recv() == {"hello": [1, 2]}
                    conn.serializer = None
                    await conn.send_many(FRAMES)
                    got = [await conn.recv() for _ in FRAMES]
                    assert got == FRAMES

            run(main)


def test_an_anyio_client_against_a_blocking_server(run: Runner) -> None:
    def handler(conn: Any) -> None:
        for frame in conn:
            conn.send(frame)

    with framekit.serve("tcp://127.0.0.1:0", handler) as server:
        server.start()

        async def main() -> None:
            async with await fan.connect(server.address) as conn:
                await conn.send_many(FRAMES)
                assert [await conn.recv() for _ in FRAMES] == FRAMES

        run(main)
