"""Slowloris: sockets that sit idle or trickle a frame must not lock legitimate clients out.

Issue 12 measured that, with ``max_connections=50``, 50 sockets locked every
legitimate client out of all three servers, whether they sat idle or
trickled a frame a byte at a time: nothing ever timed a peer out.  Here 50
sockets of one kind take every slot and 50 of the other kind are turned away
(they are there all the same, as they would be in an attack); the slot
holders must be dropped by ``idle_timeout`` (the idle ones) or
``frame_timeout`` (the trickling ones: a byte every 100 ms keeps them from
ever being idle), so a legitimate client is served within the configured
timeout plus one second.

The same attack on ``framekit serve`` with no options: on its defaults the
command must serve the legitimate client within its own timeouts plus one
second, hold the attackers within its own connection cap (one thread each),
and have finite idle and frame timeouts, so that no attacker holds a thread
for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import pytest

from .helpers import (
    Hostiles,
    ServerProcess,
    kind_params,
    run_bounded,
    served_within,
    server_process,
    wait_until,
)

#: idle_timeout and frame_timeout of the servers under attack, in seconds.
TIMEOUT = 2.0
SLOTS = 50

pytestmark = pytest.mark.slow


async def _open_all(hostiles: Hostiles, kind: str, count: int) -> None:
    """Start ``count`` attackers of ``kind`` and wait until their sockets are connected."""
    opened = len(hostiles.socks)
    hostiles.start(getattr(hostiles, kind), count)
    for _ in range(200):
        if len(hostiles.socks) - opened >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {len(hostiles.socks) - opened} of {count} {kind} sockets opened")


async def slowloris(server: ServerProcess, holders: str, others: str, timeout: float) -> float:
    """50 ``holders`` take the slots, 50 ``others`` come after; the time a legit client waited."""
    hostiles = Hostiles(server.host, server.port)
    try:
        await _open_all(hostiles, holders, SLOTS)
        await asyncio.sleep(0.3)  # let the server admit them: they take every slot
        await _open_all(hostiles, others, SLOTS)
        return await served_within(server.host, server.port, timeout)
    finally:
        await hostiles.close()


@pytest.mark.parametrize("holders", ["idle", "trickle"])
@pytest.mark.parametrize("kind", kind_params())
def test_slowloris(kind: str, holders: str) -> None:
    kwargs = {"max_connections": SLOTS, "idle_timeout": TIMEOUT, "frame_timeout": TIMEOUT}
    others = "trickle" if holders == "idle" else "idle"
    with server_process(kind, kwargs=kwargs) as server:
        waited = run_bounded(slowloris(server, holders, others, TIMEOUT + 1), 30)
        assert waited <= TIMEOUT + 1
        assert server.alive()
        # Every attacker is gone (the test closed the turned-away ones' sockets too).
        assert wait_until(lambda: server.stats()["active"] == 0, 5), server.stats()
        assert server.stop() == 0


def command_defaults() -> Dict[str, Any]:
    """What ``framekit serve ADDRESS`` gets for the defences when no option is given
    (None: that defence is off; "no option": the command has no such option)."""
    from framekit.apps.cli import build_parser

    args = build_parser().parse_args(["serve", "tcp://127.0.0.1:0"])
    names = ("max_connections", "idle_timeout", "frame_timeout")
    return {name: getattr(args, name, "no option") for name in names}


def test_serve_command_on_its_defaults() -> None:
    defaults = command_defaults()
    timeouts = [defaults[name] for name in ("idle_timeout", "frame_timeout")]
    timeout = max([t for t in timeouts if isinstance(t, (int, float))], default=0.0)
    server = ServerProcess(command=["serve", "tcp://127.0.0.1:0"])
    try:
        base = server.threads()
        threads: Dict[str, int] = {}

        async def attack() -> float:
            hostiles = Hostiles(server.host, server.port)
            try:
                await _open_all(hostiles, "idle", SLOTS)
                await _open_all(hostiles, "trickle", SLOTS)
                await asyncio.sleep(0.5)
                threads["attacked"] = server.threads()
                return await served_within(server.host, server.port, timeout + 1)
            finally:
                await hostiles.close()

        waited = run_bounded(attack(), timeout + 30)
        assert waited <= timeout + 1
        cap = defaults["max_connections"]
        assert isinstance(cap, int), (
            f"no default connection cap: {2 * SLOTS} slowloris sockets held "
            f"{threads['attacked'] - base} threads ({threads['attacked']} in all); {defaults}"
        )
        assert threads["attacked"] <= base + cap, (threads, base, defaults)
        assert all(isinstance(t, (int, float)) for t in timeouts), (
            f"an idle or trickling socket is held for ever: {defaults}"
        )
        assert server.stop() == 0
    finally:
        server.kill()
