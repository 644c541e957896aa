"""Fixtures for the anyio transport tests: every test runs on anyio's asyncio and trio backends."""

from __future__ import annotations

import itertools
import os
import ssl
from typing import Any, Awaitable, Callable, Iterator, Optional, Tuple

import anyio
import pytest

from ..conftest import ipv6_available

#: Seconds any one test may take before it is cancelled.
TEST_TIMEOUT = 20.0

Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


@pytest.fixture(params=["asyncio", "trio"])
def io_backend(request: pytest.FixtureRequest) -> str:
    """anyio's backend under test."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def run(io_backend: str) -> Runner:
    """``run(main)``: run a test's ``async def main()`` on the backend, bounded in time."""

    def runner(main: Callable[[], Awaitable[Any]]) -> Any:
        async def bounded() -> Any:
            with anyio.fail_after(TEST_TIMEOUT):
                return await main()

        return anyio.run(bounded, backend=io_backend)

    return runner


_names = itertools.count()


def abstract_name(scheme: str = "unix") -> str:
    """A fresh abstract-namespace address, unique to this process."""
    return f"{scheme}:@framekit-anyio-{os.getpid()}-{next(_names)}"


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


@pytest.fixture(params=["tcp", "tcp6", "unix", "abstract", "tls"])
def family(request: pytest.FixtureRequest, sock_dir: str) -> Iterator[Family]:
    """Each stream address family: TCP over IPv4 and IPv6, Unix path and abstract name, TLS."""
    name = request.param
    if name == "tcp":
        yield Family(name, "tcp://127.0.0.1:0")
    elif name == "tcp6":
        if not ipv6_available():
            pytest.skip("::1 is not available here")
        yield Family(name, "tcp://[::1]:0")
    elif name == "unix":
        yield Family(name, f"unix://{sock_dir}/s.sock")
    elif name == "abstract":
        yield Family(name, abstract_name())
    else:
        yield Family(name, "tls://localhost:0", request.getfixturevalue("tls_contexts"))
