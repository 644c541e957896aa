"""A peer that never reads what it is sent cannot hold a connection for ever.

Every stream transport bounds a send by the connection's ``send_timeout`` (the
shorter of ``idle_timeout`` and ``frame_timeout``): when the peer takes no
bytes for that long, the send raises ``TimeoutError`` and the connection is
aborted.  A peer that reads slowly, but reads, is never dropped.  Real sockets:
each server answers one request with replies until the send fails; the client
connects with a raw socket and never reads (or reads slowly).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Callable, Dict, List

import anyio
import pytest

import framekit
import framekit.anyio as fan
import framekit.asyncio as fa

TIMEOUT = 0.5
REPLY = b"r" * 65536
#: Replies to send to the slow reader: many kernel buffers' worth.
SLOW_REPLIES = 96

Outcome = Dict[str, Any]


def _sync_server(outcome: Outcome, replies: int) -> Callable[[], Any]:
    def handler(conn: framekit.FramedSocket) -> None:
        conn.recv()
        try:
            for _ in range(replies):
                conn.send(REPLY)
            outcome["sent"] = replies
        except TimeoutError as exc:
            outcome["error"] = exc
        finally:
            outcome["done"] = time.monotonic()

    server = framekit.serve("tcp://127.0.0.1:0", handler, frame_timeout=TIMEOUT).start()
    outcome["address"] = server.address
    return server.shutdown


async def _asyncio_handler(conn: Any, outcome: Outcome, replies: int) -> None:
    await conn.recv()
    try:
        for _ in range(replies):
            await conn.send(REPLY)
        outcome["sent"] = replies
    except TimeoutError as exc:
        outcome["error"] = exc
    finally:
        outcome["done"] = time.monotonic()


def _asyncio_server(outcome: Outcome, replies: int) -> Callable[[], Any]:
    ready = threading.Event()
    stop_event: List[Any] = []

    def run() -> None:
        async def main() -> None:
            server = await fa.serve(
                "tcp://127.0.0.1:0",
                lambda conn: _asyncio_handler(conn, outcome, replies),
                frame_timeout=TIMEOUT,
            )
            outcome["address"] = server.address
            stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            stop_event.append(lambda: loop.call_soon_threadsafe(stopped.set))
            ready.set()
            async with server:
                await stopped.wait()

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        stop_event[0]()
        thread.join(10)

    return stop


def _anyio_server(backend: str) -> Callable[[Outcome, int], Callable[[], Any]]:
    def start(outcome: Outcome, replies: int) -> Callable[[], Any]:
        ready = threading.Event()
        stoppers: List[Any] = []

        async def main() -> None:
            server = await fan.serve(
                "tcp://127.0.0.1:0",
                lambda conn: _asyncio_handler(conn, outcome, replies),
                frame_timeout=TIMEOUT,
            )
            outcome["address"] = server.address
            token = anyio.lowlevel.current_token()
            async with server:
                scope = anyio.CancelScope()
                stoppers.append((token, scope))
                ready.set()
                with scope:
                    await anyio.sleep_forever()

        thread = threading.Thread(target=lambda: anyio.run(main, backend=backend), daemon=True)
        thread.start()
        ready.wait(10)

        def stop() -> None:
            token, scope = stoppers[0]
            anyio.from_thread.run_sync(scope.cancel, token=token)
            thread.join(10)

        return stop

    return start


SERVERS = {
    "blocking": _sync_server,
    "asyncio": _asyncio_server,
    "anyio-asyncio": _anyio_server("asyncio"),
    "anyio-trio": _anyio_server("trio"),
}


def _client(address: str) -> socket.socket:
    host, port = address.rsplit("//", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(framekit.LengthPrefixed().encode(b"go"))
    return sock


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_a_peer_that_never_reads_is_dropped(kind: str) -> None:
    outcome: Outcome = {}
    stop = SERVERS[kind](outcome, 10_000)  # ~650 MB of replies: never all sent
    try:
        sock = _client(outcome["address"])
        start = time.monotonic()
        deadline = start + 20
        while "done" not in outcome and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "error" in outcome, outcome
        assert "made no room" in str(outcome["error"])
        assert "(tcp://127.0.0.1:" in str(outcome["error"])
        # The connection was aborted: the client sees its end (after the
        # replies the kernel had buffered).
        sock.settimeout(10)
        while sock.recv(1 << 20):
            pass
        sock.close()
    finally:
        stop()


@pytest.mark.parametrize("kind", ["blocking", "asyncio", "anyio-asyncio"])
def test_a_slow_reader_is_not_dropped(kind: str) -> None:
    """Reading slowly is progress: every reply arrives.  (The kernel lets a
    sender go on once about a third of its send buffer is free, so "slowly"
    is a few MiB/s for a timeout of half a second; at the servers' default of
    60 s it is some tens of KiB/s.)"""
    outcome: Outcome = {}
    stop = SERVERS[kind](outcome, SLOW_REPLIES)
    try:
        sock = _client(outcome["address"])
        want = SLOW_REPLIES * (len(REPLY) + 4)
        got = 0
        while got < want:
            data = sock.recv(256 * 1024)
            assert data, (got, outcome)
            got += len(data)
            time.sleep(TIMEOUT / 25)
        assert outcome.get("sent") == SLOW_REPLIES, outcome
        sock.close()
    finally:
        stop()
