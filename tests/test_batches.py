"""Batches of messages: ``recv_batch()`` and ``batches()`` on every stream transport.

Each test runs a real server on 127.0.0.1 (blocking, asyncio on the default
loop and on uvloop, anyio on asyncio and on trio) whose handler takes messages
a batch at a time, and a raw-socket client that sends its frames in one
``sendall``, so that one read brings several.  Checked: every frame arrives,
in order, across batches; an error comes after the frames before it, never
with them; a frame that does not deserialize ends its batch and is raised by
the next call; replies sent one by one after a batch are held back until the
next batch is asked for; ``send_many`` answers a batch in one write.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import time
from typing import Any, Callable, List

import pytest

import framekit
import framekit.asyncio
from framekit import ConnectionClosed, FrameTooLarge, SerializationError
from framekit.serializers import JSON

from .batch_servers import (
    TIMEOUT,
    TRANSPORTS,
    Running,
    check_transport,
    connect,
    frame,
    read_frames,
)

#: How long a handler dawdles before it asks for more.
SLOW = 4.0


def serve(transport: str, handler: Callable[[Any], Any], **options: Any) -> Any:
    """Run ``handler`` (a sync function for ``blocking``, else ``async def``) in a
    server of that transport, in a thread; return its address and how to stop it."""
    server = Running(transport, handler, framekit.LengthPrefixed(4, max_frame_size=1024), **options)
    return server.address, server.close


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    check_transport(request.param)
    return request.param  # type: ignore[no-any-return]


# --- handlers, written once per style --------------------------------------------


def collect_sync(results: queue.Queue[Any]) -> Callable[[Any], None]:
    def handler(conn: Any) -> None:
        got: List[Any] = []
        try:
            while True:
                batch = conn.recv_batch()
                assert isinstance(batch, list) and batch
                got.append(batch)
                conn.send(b"%d" % len(batch))
        except Exception as exc:
            results.put((got, exc))

    return handler


def collect_async(results: queue.Queue[Any]) -> Callable[[Any], Any]:
    async def handler(conn: Any) -> None:
        got: List[Any] = []
        try:
            while True:
                batch = await conn.recv_batch()
                assert isinstance(batch, list) and batch
                got.append(batch)
                await conn.send(b"%d" % len(batch))
        except Exception as exc:
            results.put((got, exc))

    return handler


def collector(transport: str, results: queue.Queue[Any]) -> Callable[[Any], Any]:
    return collect_sync(results) if transport == "blocking" else collect_async(results)


# --- the tests ----------------------------------------------------------------------


def test_frames_in_order_across_batches_then_the_error(transport: str) -> None:
    """Frames before a bad frame are all delivered, then its error; the connection goes on."""
    results: queue.Queue[Any] = queue.Queue()
    address, shutdown = serve(transport, collector(transport, results))
    try:
        payloads = [b"frame %d" % i for i in range(200)]
        with connect(address) as sock:
            # 200 frames, one too large (skipped: FrameTooLarge), one more, then a clean close.
            sock.sendall(b"".join(map(frame, payloads)) + frame(b"x" * 2000) + frame(b"last"))
            sock.shutdown(socket.SHUT_WR)
            replies = []
            try:
                while True:
                    replies += read_frames(sock, 1)
            except ConnectionError:
                pass
        got, exc = results.get(timeout=TIMEOUT)
        # First handler run ends at FrameTooLarge: every frame before it, in order, in batches.
        assert isinstance(exc, FrameTooLarge)
        assert [m for batch in got for m in batch] == payloads
        assert [int(r) for r in replies[: len(got)]] == [len(b) for b in got]
        assert len(got) < len(payloads)  # a read's frames come as one batch
    finally:
        shutdown()


def test_the_connection_goes_on_after_a_skipped_frame(transport: str) -> None:
    results: queue.Queue[Any] = queue.Queue()

    if transport == "blocking":

        def handler(conn: Any) -> None:
            got: List[Any] = []
            for _ in range(2):
                try:
                    for batch in conn.batches():
                        got.extend(batch)
                except FrameTooLarge as exc:
                    got.append(type(exc))
            results.put(got)

    else:

        async def handler(conn: Any) -> None:
            got: List[Any] = []
            for _ in range(2):
                try:
                    async for batch in conn.batches():
                        got.extend(batch)
                except FrameTooLarge as exc:
                    got.append(type(exc))
            results.put(got)

    address, shutdown = serve(transport, handler)
    try:
        with connect(address) as sock:
            sock.sendall(frame(b"a") + frame(b"b") + frame(b"x" * 2000) + frame(b"c"))
            sock.shutdown(socket.SHUT_WR)
            got = results.get(timeout=TIMEOUT)
        # The second loop ended cleanly: batches() stops at the peer's close.
        assert got == [b"a", b"b", FrameTooLarge, b"c"]
    finally:
        shutdown()


def test_a_frame_that_does_not_deserialize_ends_its_batch(transport: str) -> None:
    results: queue.Queue[Any] = queue.Queue()

    if transport == "blocking":

        def handler(conn: Any) -> None:
            got: List[Any] = []
            while True:
                try:
                    got.append(conn.recv_batch())
                except SerializationError as exc:
                    got.append(exc.frame)
                except ConnectionClosed:
                    break
            results.put(got)

    else:

        async def handler(conn: Any) -> None:
            got: List[Any] = []
            while True:
                try:
                    got.append(await conn.recv_batch())
                except SerializationError as exc:
                    got.append(exc.frame)
                except ConnectionClosed:
                    break
            results.put(got)

    address, shutdown = serve(transport, handler, serializer=JSON)
    try:
        with connect(address) as sock:
            wire = [frame(b'{"n": 1}'), frame(b"[2]"), frame(b"not json"), frame(b'"three"')]
            sock.sendall(b"".join(wire))
            sock.shutdown(socket.SHUT_WR)
            got = results.get(timeout=TIMEOUT)
        # One read brought all four (on loopback): the bad frame splits the batch in two.
        assert [m for part in got if isinstance(part, list) for m in part] == [
            {"n": 1},
            [2],
            "three",
        ]
        assert b"not json" in got
        bad = got.index(b"not json")
        assert got[:bad] and got[bad + 1 :]  # batches before and after it
    finally:
        shutdown()


def test_replies_to_a_batch_are_coalesced_only_where_they_cannot_wait(transport: str) -> None:
    """``send`` after ``recv_batch`` is held back on asyncio (one write for the batch, at the
    end of the loop's iteration); the blocking and anyio connections write each at once. In
    every case the replies reach the peer while the handler does something slow before it
    asks for more: no reply waits for the next ``recv_batch()``."""
    held: queue.Queue[int] = queue.Queue()

    if transport == "blocking":

        def handler(conn: Any) -> None:
            for batch in conn.batches():
                for message in batch:
                    conn.send(message)
                held.put(len(conn.core.outgoing))
                time.sleep(SLOW)  # no recv_batch() for a while

    else:
        sleep = asyncio.sleep
        if transport.startswith("anyio"):
            import anyio

            sleep = anyio.sleep

        async def handler(conn: Any) -> None:
            async for batch in conn.batches():
                for message in batch:
                    await conn.send(message)
                held.put(len(conn.core.outgoing))
                await sleep(SLOW)

    address, shutdown = serve(transport, handler)
    try:
        payloads = [b"%d" % i for i in range(50)]
        with connect(address) as sock:
            sock.sendall(b"".join(map(frame, payloads)))
            sock.settimeout(SLOW / 2)
            assert read_frames(sock, 50, SLOW / 2) == payloads  # before the handler reads again
        first = held.get(timeout=TIMEOUT)
        if transport in ("asyncio", "uvloop"):
            assert first >= 2  # the first batch's replies waited for each other
        else:
            assert first == 0  # each went out at once
    finally:
        shutdown()


def test_recv_and_recv_batch_mix(transport: str) -> None:
    results: queue.Queue[Any] = queue.Queue()

    if transport == "blocking":

        def handler(conn: Any) -> None:
            results.put([conn.recv(), conn.recv_batch(), list(conn)])

    else:

        async def handler(conn: Any) -> None:
            first, batch = await conn.recv(), await conn.recv_batch()
            results.put([first, batch, [m async for m in conn]])

    address, shutdown = serve(transport, handler)
    try:
        with connect(address) as sock:
            sock.sendall(frame(b"1") + frame(b"2") + frame(b"3"))
            sock.sendall(frame(b"4"))
            sock.shutdown(socket.SHUT_WR)
            first, batch, rest = results.get(timeout=TIMEOUT)
        assert first == b"1"
        assert batch[0] == b"2" and batch + rest == [b"2", b"3", b"4"]
    finally:
        shutdown()
