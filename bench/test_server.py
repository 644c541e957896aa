"""Request/response echo servers under load: 100 connections x 16 frames in flight, 10 x 64,
and 100 x 1 (ping-pong), 64 B payloads, from a compiled load generator that checks every echo:
framekit's blocking and asyncio servers (default loop and uvloop), each written per frame and
with batches (``recv_batch``/``send_many``), framekit.anyio on asyncio and trio, asyncio
``readexactly``,
Twisted's ``Int32StringReceiver``, Netty 4.1 (when Java and libnetty-java are installed), and
a raw C echo without framing (the floor); then ``framekit serve --workers 1`` against ``2``.

A row's time is its seconds per frame (the load generator measures its own rate); its
latencies are in ``extra_info``.  The comparisons come from
:mod:`framekit.apps.benchmarks.catalogue`; see conftest.py.
"""

from __future__ import annotations

from typing import Any, Callable

KIND = "server"


def test_server(measure: Callable[[Any], None], case: Any) -> None:
    measure(case)
