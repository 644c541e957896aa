"""Fixtures for the asyncio transport tests: every test runs on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import itertools
import os
import ssl
from typing import Any, Awaitable, Callable, Iterator, Optional, Tuple

import pytest

from ..conftest import ipv6_available

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a Linux/macOS test extra
    uvloop = None

#: Seconds any one test may take before its coroutine is cancelled.
TEST_TIMEOUT = 20.0

LOOP_FACTORIES = [
    pytest.param(asyncio.new_event_loop, id="asyncio"),
    pytest.param(
        getattr(uvloop, "new_event_loop", None),
        id="uvloop",
        marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed"),
    ),
]

Runner = Callable[[Awaitable[Any]], Any]


def run_on(loop_factory: Callable[[], asyncio.AbstractEventLoop], coro: Awaitable[Any]) -> Any:
    """Run ``coro`` on a new loop from ``loop_factory``, bounded by TEST_TIMEOUT."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, TEST_TIMEOUT)

    if hasattr(asyncio, "Runner"):  # Python 3.11+
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(bounded())
    loop = loop_factory()  # pragma: no cover - Python < 3.11
    try:
        return loop.run_until_complete(bounded())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(params=LOOP_FACTORIES)
def run(request: pytest.FixtureRequest) -> Runner:
    """``run(coro)``: run a test's coroutine on the loop under test (asyncio, uvloop)."""
    factory = request.param

    def runner(coro: Awaitable[Any]) -> Any:
        return run_on(factory, coro)

    return runner


_names = itertools.count()


def abstract_name(scheme: str = "unix") -> str:
    """A fresh abstract-namespace address, unique to this process."""
    return f"{scheme}:@framekit-aio-{os.getpid()}-{next(_names)}"


class Family:
    """One stream address family: where to serve, and the TLS contexts if any."""

    def __init__(
        self,
        name: str,
        address: str,
        contexts: Tuple[Optional[ssl.SSLContext], Optional[ssl.SSLContext]] = (None, None),
    ) -> None:
        self.name = name
        self.address = address
        self.server_ssl, self.client_ssl = contexts

    def __repr__(self) -> str:
        return f"Family({self.name}, {self.address})"


STREAM_FAMILIES = ["tcp", "tcp6", "unix", "abstract", "tls"]


def make_family(name: str, sock_dir: str, request: pytest.FixtureRequest) -> Family:
    if name == "tcp":
        return Family(name, "tcp://127.0.0.1:0")
    if name == "tcp6":
        if not ipv6_available():
            pytest.skip("::1 is not available here")
        return Family(name, "tcp://[::1]:0")
    if name == "unix":
        return Family(name, f"unix://{sock_dir}/s.sock")
    if name == "abstract":
        return Family(name, abstract_name())
    assert name == "tls"
    return Family(name, "tls://localhost:0", request.getfixturevalue("tls_contexts"))


@pytest.fixture(params=STREAM_FAMILIES)
def family(request: pytest.FixtureRequest, sock_dir: str) -> Iterator[Family]:
    """Each stream address family in turn: TCP over IPv4 and IPv6, Unix path,
    Unix abstract name, TLS."""
    yield make_family(request.param, sock_dir, request)
