"""A memory budget: 100 connections announcing max-size frames cannot take the server's memory.

Issue 12, item 7: 100 connections, each announcing a 16 MiB frame and sending
all but its last byte, drove the server to 1.97 GB RSS (blocking) and 1.91 GB
(asyncio); nothing bounded the total.  Here the server runs with
``max_buffered_bytes=64 MiB``; its peak RSS (``VmHWM``) must stay under

    RSS before the attack + 2 x the budget + 100 x 2 x read_size + OVERHEAD

The budget counts the bytes received of each unfinished frame (P); the
decoder may have written or zeroed up to 2 x P + read_size for it (its
documented bound: a frame assembled in place is zeroed as far ahead as has
arrived, and the budget sees a read only after it landed), hence twice the
budget.  Per connection, its read buffer (``read_size``, 256 KiB) is outside
the budget, and so is one more read's worth of room.  OVERHEAD (16 MiB) is for
what every connection has besides buffered input (a thread's stack and a
socket object on the blocking server, a transport and a protocol on asyncio:
some KiB each) and the allocator's slack.  Measured: 85 to 166 MiB at peak,
64 MiB held once the refused connections are gone.

The budget refuses the connections that would cross it, so the server stays
alive and keeps serving.  Then every connection closes, and RSS must fall
back: the server runs with ``gc.disable()``, so only buffers freed by
reference counting count.

The allocator is told to give freed buffers back at once (``MMAP_ALWAYS``), so
RSS counts what the server holds, not what it once held: with glibc as it
comes, the blocking server's per-thread arenas keep what the budget made it
drop (``test_memory_budget_bounds_rss``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, Dict, List, Optional

import pytest

from .helpers import (
    MAX_FRAME,
    MMAP_ALWAYS,
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
BOUND = 2 * BUDGET + CONNECTIONS * 2 * READ_SIZE + OVERHEAD
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


@pytest.mark.parametrize("kind", kind_params())
def test_memory_budget_bounds_what_the_server_holds(kind: str) -> None:
    """What the server holds stays within the budget: RSS, with the allocator told
    to give freed buffers back (so RSS counts what is held, not what was once)."""
    check(budget_attack(kind, env=MMAP_ALWAYS, max_buffered_bytes=BUDGET))


@pytest.mark.xfail(
    strict=True,
    reason="blocking server, glibc as it comes: the per-thread malloc arenas keep the "
    "frame buffers freed when the budget refuses a connection: peak RSS +300 to 350 MiB "
    "for a 64 MiB budget (malloc's in-use count stays at the budget), and it stays there "
    "after every connection closed",
)
def test_memory_budget_bounds_rss() -> None:
    """The same on the blocking server with the allocator as it comes: what an operator
    sees.  (asyncio, one arena: peaks measured at 178 to 214 MiB, back to the start after.)"""
    check(budget_attack("blocking", max_buffered_bytes=BUDGET))
