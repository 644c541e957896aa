"""A flood of connect-and-reset clients under a low descriptor limit: back off, keep serving.

Issue 12, defect 4: on the default asyncio loop with ``backlog=4096``, clients
that connected and reset (SO_LINGER 0) pushed the server to EMFILE; only
26,002 of 360,000 honest frames completed, and every honest client timed out.
Here the server runs under ``RLIMIT_NOFILE=256`` with ``backlog=4096``.
Honest clients open their connections first and then send frames in turn,
each of which must come back within a few seconds, while the flood opens
400 connections at a time (more than the server has descriptors for), holds
them until the server has run out and then 0.3 s more, and resets them all,
again and again.  Every honest frame
must complete; the server must say it backs off, once per back-off
(``ACCEPT_BACKOFF``, 0.1 s), not once per failed accept, and without a
traceback; it must stay alive, and serve a new client once the flood ends.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from typing import Any, Dict, List

import pytest

from .helpers import (
    ServerProcess,
    frame,
    kind_params,
    open_raw,
    recv_frame,
    reset,
    run_bounded,
    served_within,
    server_process,
    wait_until,
)

pytestmark = pytest.mark.slow

NOFILE = 256
HONEST = 20
WAVE = 400
#: Seconds each wave holds its connections once the server is out of descriptors.
HOLD = 0.3
FLOOD_SECONDS = 2.5
#: framekit.core.admission.ACCEPT_BACKOFF (copied: the old framekit has no such module).
ACCEPT_BACKOFF = 0.1
#: The most back-off log lines the flood may cause: one per back-off, and some.
MAX_BACKOFF_LINES = int(FLOOD_SECONDS / ACCEPT_BACKOFF) + 20
#: Bound on one honest frame's round trip.
FRAME_WAIT = 5.0


async def honest(server: ServerProcess, stop: asyncio.Event, tally: Dict[str, Any]) -> None:
    """One already-open connection: frames in turn, each echoed byte-exact within FRAME_WAIT."""
    loop = asyncio.get_running_loop()
    sock = await open_raw(server.host, server.port)
    with sock:
        await asyncio.sleep(0.2)  # every honest connection is open before the flood
        while not stop.is_set():
            payload = os.urandom(1024)
            tally["sent"] += 1
            try:
                await loop.sock_sendall(sock, frame(payload))
                echoed = await asyncio.wait_for(recv_frame(sock), FRAME_WAIT)
            except (OSError, asyncio.TimeoutError) as exc:
                tally["errors"].append(f"{type(exc).__name__}: {exc}")
                return
            if echoed != payload:
                tally["errors"].append("echo differs")
                return
            tally["done"] += 1
            await asyncio.sleep(0.005)


async def wave(server: ServerProcess, count: int, tally: Dict[str, Any]) -> None:
    """Open ``count`` connections at once; once the server is out of descriptors (or
    after 1 s), hold them HOLD seconds more, then reset them all."""
    socks: List[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            socks.append(sock)
            err = sock.connect_ex((server.host, server.port))
            if err not in (0, errno.EINPROGRESS):
                break
        tally["flood"] += len(socks)
        deadline = time.monotonic() + 1.0
        while server.fds() < NOFILE - 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if server.fds() >= NOFILE - 2:
            tally["exhausted"] += 1
        await asyncio.sleep(HOLD)
    finally:
        for sock in socks:
            reset(sock)


async def flood(server: ServerProcess) -> Dict[str, Any]:
    tally: Dict[str, Any] = {"sent": 0, "done": 0, "errors": [], "flood": 0, "exhausted": 0}
    stop = asyncio.Event()
    clients = [asyncio.ensure_future(honest(server, stop, tally)) for _ in range(HONEST)]
    await asyncio.sleep(0.5)
    deadline = time.monotonic() + FLOOD_SECONDS
    try:
        while time.monotonic() < deadline:
            await wave(server, WAVE, tally)
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*clients, return_exceptions=True)
    try:
        tally["served_after"] = await served_within(server.host, server.port, 5.0)
    except AssertionError as exc:
        tally["served_after"] = str(exc)
    return tally


def reset_flood(kind: str, **kwargs: Any) -> Dict[str, Any]:
    with server_process(kind, nofile=NOFILE, kwargs=kwargs) as server:
        base = server.fds()
        result = run_bounded(flood(server), 60)
        result["settled"] = wait_until(lambda: server.fds() <= base + 2, 5)
        result["alive"] = server.alive()
        result["status"] = server.stop()
        log = server.lines
        result["tracebacks"] = sum(line.startswith("Traceback") for line in log)
        result["backoff_lines"] = sum("cannot accept" in line for line in log)
        result["log_lines"] = len(log)
        result["emfile_lines"] = sum("Too many open files" in line for line in log)
    return result


@pytest.mark.parametrize("kind", kind_params())
def test_reset_flood_under_emfile(kind: str) -> None:
    result = reset_flood(kind, backlog=4096)
    assert result["exhausted"] > 0, result  # the flood did drive the server to EMFILE
    assert not result["errors"], result
    assert result["done"] == result["sent"] and result["done"] > 0, result
    assert 0 < result["backoff_lines"] <= MAX_BACKOFF_LINES, result  # it ran out, and said so
    assert result["tracebacks"] == 0, result
    assert isinstance(result["served_after"], float), result
    assert result["alive"] and result["settled"] and result["status"] == 0, result
