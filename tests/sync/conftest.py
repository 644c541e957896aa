"""Fixtures for the blocking transport tests: socket pairs and log capture."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Iterator, Tuple

import pytest

from .helpers import LogWatcher, tcp_pair, unix_pair


@pytest.fixture
def logs() -> Iterator[LogWatcher]:
    """Records of the ``framekit`` logger, all levels."""
    logger = logging.getLogger("framekit")
    watcher = LogWatcher()
    old_level = logger.level
    logger.addHandler(watcher)
    logger.setLevel(logging.DEBUG)
    try:
        yield watcher
    finally:
        logger.removeHandler(watcher)
        logger.setLevel(old_level)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every server thread a test started is gone when it ends (shutdown joins them)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t.name
        for t in threading.enumerate()
        if t not in before and t.name.startswith("framekit-") and t.is_alive()
    ]
    assert not leaked, f"threads still running: {leaked}"


@pytest.fixture(params=["tcp", "unix"])
def stream_pair(request: pytest.FixtureRequest) -> Iterator[Tuple[socket.socket, socket.socket]]:
    """A connected pair of stream sockets: TCP over loopback, or Unix."""
    a, b = tcp_pair() if request.param == "tcp" else unix_pair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()
