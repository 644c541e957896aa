"""A memory budget: 100 connections announcing max-size frames cannot take the server's memory.

Issue 12, item 7: 100 connections, each announcing a 16 MiB frame and sending
all but its last byte, drove the server to 1.97 GB RSS (blocking) and 1.91 GB
(asyncio); nothing bounded the total.  Here the server runs with
``max_buffered_bytes=64 MiB``; its peak RSS (``VmHWM``) must stay under

    RSS before the attack + the budget + 100 x 2 x read_size + OVERHEAD

Per connection, two reads' worth is outside the budget: its read buffer
(``read_size``, 256 KiB), and the room the decoder zeroes ahead of the bytes
received when it assembles a large frame in place (one read's worth).
OVERHEAD (16 MiB) is for what every connection has besides buffered input (a
thread's stack and a socket object on the blocking server, a transport and a
protocol on asyncio: some KiB each) and the allocator's slack.  The budget
refuses the connections that would cross it, so the server stays alive and
keeps serving.  Then every connection closes, and RSS must fall back: the
server runs with ``gc.disable()``, so only buffers freed by reference
counting count.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, Dict, List, Optional

import pytest

from .helpers import (
    MAX_FRAME,
    MiB,
    ServerProcess,
    echo_round_trip,
    header,
    kind_params,
    open_raw,
    run_bounded,
    server_process,
    wait_until,
)

pytestmark = pytest.mark.slow

BUDGET = 64 * MiB
CONNECTIONS = 100
READ_SIZE = 256 * 1024
OVERHEAD = 16 * MiB
BOUND = BUDGET + CONNECTIONS * 2 * READ_SIZE + OVERHEAD
#: RSS may stay this far above its level before the attack once every connection closed.
SLACK = 16 * MiB


async def announce_max_frames(server: ServerProcess, count: int) -> Dict[str, Any]:
    """``count`` connections each send a max-size frame but its last byte, all at once.

    Returns:
        ``sent``: connections that sent it all (and now hold it open),
        ``refused``: connections the server closed first; ``socks``: the open ones.
    """
    loop = asyncio.get_running_loop()
    payload = memoryview(bytes(MAX_FRAME - 4 - 1))
    socks: List[socket.socket] = []
    outcome = {"sent": 0, "refused": 0}

    async def one() -> None:
        sock = await open_raw(server.host, server.port)
        socks.append(sock)
        try:
            await loop.sock_sendall(sock, header(MAX_FRAME - 4))
            await loop.sock_sendall(sock, payload)
        except OSError:
            outcome["refused"] += 1
        else:
            outcome["sent"] += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return {**outcome, "socks": socks}


def budget_attack(kind: str, env: Optional[Dict[str, str]] = None, **kwargs: Any) -> Dict[str, Any]:
    """The attack on a ``kind`` server with the GC off; what it cost the server (bytes)."""
    with server_process(kind, kwargs=kwargs, gc=False, env=env) as server:
        run_bounded(echo_round_trip(server.host, server.port), 10)
        before = server.rss()
        server.reset_peak()
        socks: List[socket.socket] = []
        try:
            result = run_bounded(announce_max_frames(server, CONNECTIONS), 120)
            socks = result.pop("socks")
            wait_until(lambda: False, 0.5)  # the last reads
            result["peak"] = server.peak_rss() - before
            result["held"] = server.rss() - before
            run_bounded(echo_round_trip(server.host, server.port), 10)  # still serving
        finally:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.close()
        wait_until(lambda: server.stats()["active"] in (0, None), 10)
        wait_until(lambda: server.rss() - before <= SLACK, 3)
        result["after"] = server.rss() - before
        result["status"] = server.stop()
    return result


def check(result: Dict[str, Any]) -> None:
    mib = {k: v // MiB for k, v in result.items() if k in ("peak", "held", "after")}
    assert result["peak"] <= BOUND, f"peak RSS above {BOUND // MiB} MiB: {mib} (MiB)"
    assert result["refused"] > 0, result  # the budget refused the connections that crossed it
    assert result["status"] == 0
    assert result["after"] <= SLACK, f"RSS not back after every connection closed: {mib}"


#: glibc: every allocation from 128 KiB up gets its own mapping, given back when freed.
MMAP_ALWAYS = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


@pytest.mark.parametrize("kind", kind_params())
def test_memory_budget_bounds_what_the_server_holds(kind: str) -> None:
    """What the server holds stays within the budget: RSS, with the allocator told
    to give freed buffers back (so RSS counts what is held, not what was once)."""
    check(budget_attack(kind, env=MMAP_ALWAYS, max_buffered_bytes=BUDGET))


@pytest.mark.xfail(
    strict=True,
    reason="glibc keeps the 16 MiB frame buffers the budget made the server drop: "
    "RSS peaks at 3-5x the budget (malloc's in-use count stays at the budget); "
    "the blocking server's RSS also stays there after every connection closed "
    "(per-thread arenas)",
)
@pytest.mark.parametrize("kind", ["blocking", "asyncio"])
def test_memory_budget_bounds_rss(kind: str) -> None:
    """The same, with the allocator as it comes: what an operator sees."""
    check(budget_attack(kind, max_buffered_bytes=BUDGET))
