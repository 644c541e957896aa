"""A dead connection's memory is freed when it dies, not at the next full garbage collection.

Issue 12, defect 1: the asyncio server re-raised a connection's stored error
with a traceback that held the inbox, the protocol and the decoder in a
cycle, so a half-received frame outlived its connection until ``gc.collect()``
(919 MB RSS on the default loop, 784 MB on uvloop, after 100 connections each
sent 16 MiB minus one byte and closed).  Here the server runs with
``gc.disable()`` and a codec whose decoders are counted through weakrefs
(``server_main.TrackedCodec``); connections die in each way below, holding a
partial frame where they can; afterwards no decoder may survive, and RSS must
be back near where it started.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Dict, List

import pytest

from .helpers import (
    MAX_FRAME,
    MMAP_ALWAYS,
    MiB,
    ServerProcess,
    echo_round_trip,
    frame,
    header,
    kind_params,
    open_raw,
    recv_frame,
    reset,
    run_bounded,
    server_process,
    wait_until,
)

#: How a connection dies:
#: ``mid_frame``: part of a 16 MiB frame, then a FIN (the server sees IncompleteFrame);
#: ``mid_error``: frames echoed, then an oversized frame announced (FrameTooLarge), then a FIN;
#: ``reset``: part of a 16 MiB frame, then an RST (ConnectionResetError);
#: ``reply_lost``: a whole frame, then a FIN without reading its echo: the
#: server's reply fails (BrokenPipeError or ConnectionResetError).
ENDS = ["mid_frame", "mid_error", "reset", "reply_lost"]
#: Memory that may stay held after an attack (allocator slack, caches): far
#: below the 10 connections x 4 MiB at stake.
SLACK = 16 * MiB
PARTIAL = 4 * MiB


async def die(server: ServerProcess, end: str, partial: memoryview) -> None:
    """One connection that dies as ``end`` says."""
    loop = asyncio.get_running_loop()
    sock = await open_raw(server.host, server.port)
    try:
        if end == "mid_error":
            for n in range(3):
                await loop.sock_sendall(sock, frame(b"%d" % n))
                assert await recv_frame(sock) == b"%d" % n
            await loop.sock_sendall(sock, header(MAX_FRAME) + b"x" * 1000)
        elif end == "reply_lost":
            await loop.sock_sendall(sock, header(len(partial)))
            await loop.sock_sendall(sock, partial)
        else:
            await loop.sock_sendall(sock, header(MAX_FRAME - 4))
            await loop.sock_sendall(sock, partial)
        await asyncio.sleep(0.05)  # let the server read it all
    finally:
        if end == "reset":
            reset(sock)
        else:
            sock.shutdown(socket.SHUT_WR)
            sock.close()


async def attack(server: ServerProcess, end: str, connections: int, at_once: int) -> None:
    """``connections`` connections that die as ``end`` says, ``at_once`` at a time."""
    partial = memoryview(bytes(PARTIAL))
    limit = asyncio.Semaphore(at_once)

    async def one() -> None:
        async with limit:
            await die(server, end, partial)

    await asyncio.gather(*(one() for _ in range(connections)))


def dead_connections(kind: str, ends: List[str], connections: int = 10) -> Dict[str, Any]:
    """Each of ``ends`` in turn on one ``kind`` server with the GC off: what each left alive.

    Returns:
        ``{end: {"decoders": ..., "malloc": ..., "rss": ...}}``: the decoders
        still alive, and the growth of the bytes the C allocator has handed
        out and of RSS, since just before that attack; and ``"status"``.
    """
    result: Dict[str, Any] = {}
    with server_process(kind, gc=False, tracked=True, env=MMAP_ALWAYS) as server:
        run_bounded(echo_round_trip(server.host, server.port), 10)
        wait_until(lambda: server.stats()["decoders"] == 0, 5)
        for end in ends:
            before, rss = server.stats(), server.rss()
            run_bounded(attack(server, end, connections, at_once=10), 60)
            wait_until(lambda: server.stats()["active"] in (0, None), 10)
            alive = before["decoders"]
            wait_until(lambda alive=alive: server.stats()["decoders"] <= alive, 1.5)
            after = server.stats()
            assert after["gc_enabled"] is False
            result[end] = {
                "decoders": after["decoders"] - before["decoders"],
                "malloc": after["malloc"] - before["malloc"],
                "rss": server.rss() - rss,
            }
        run_bounded(echo_round_trip(server.host, server.port), 10)  # still serving
        result["status"] = server.stop()
    return result


def check(kind: str, result: Dict[str, Any], ends: List[str]) -> None:
    """No decoder survived, their memory was handed back, and RSS fell back (the
    allocator gives large freed buffers back at once: see test_memory_budget)."""
    survivors = {end: result[end]["decoders"] for end in ends if result[end]["decoders"]}
    assert not survivors, f"decoders of dead connections alive (gc off): {survivors}; {result}"
    held = {end: result[end]["malloc"] // MiB for end in ends if result[end]["malloc"] > SLACK}
    assert not held, f"memory not handed back (MiB): {held}; {result}"
    grown = {end: result[end]["rss"] // MiB for end in ends if result[end]["rss"] > SLACK}
    assert not grown, f"RSS grew (MiB): {grown}; {result}"
    assert result["status"] == 0


@pytest.mark.parametrize("kind", kind_params())
def test_connections_ending_in_input_errors_are_freed_without_gc(kind: str) -> None:
    """The issue's case: the decoder's error (IncompleteFrame, FrameTooLarge) ends it."""
    ends = ["mid_frame", "mid_error"]
    check(kind, dead_connections(kind, ends), ends)


@pytest.mark.slow
@pytest.mark.parametrize("kind", kind_params())
def test_connections_lost_are_freed_without_gc(kind: str) -> None:
    """The same pattern elsewhere: a reset, and a reply the peer did not stay for."""
    ends = ["reset", "reply_lost"]
    check(kind, dead_connections(kind, ends), ends)
