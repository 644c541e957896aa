"""Servers of every stream transport in a thread, and raw-socket frame helpers, for the
batch tests (tests/test_batches.py, tests/test_batches_attack.py)."""

from __future__ import annotations

import asyncio
import importlib
import queue
import socket
import struct
import threading
import time
from typing import Any, Callable, List, Optional

import pytest

import framekit
import framekit.asyncio

#: Seconds any wait of these helpers may take.
TIMEOUT = 5.0
TRANSPORTS = ["blocking", "asyncio", "uvloop", "anyio-asyncio", "anyio-trio"]


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def read_frames(
    sock: socket.socket, count: Optional[int] = None, timeout: float = TIMEOUT
) -> List[bytes]:
    """``count`` frames, or every frame until the peer closes (``count`` None)."""
    sock.settimeout(timeout)
    data = bytearray()
    out: List[bytes] = []
    while count is None or len(out) < count:
        while len(data) >= 4 and len(data) >= 4 + struct.unpack(">I", data[:4])[0]:
            n = struct.unpack(">I", data[:4])[0]
            out.append(bytes(data[4 : 4 + n]))
            del data[: 4 + n]
            if count is not None and len(out) == count:
                return out
        more = sock.recv(1 << 16)
        if not more:
            if count is None and not data:
                return out
            raise ConnectionError(f"closed after {len(out)} frames")
        data += more
    return out


def check_transport(transport: str) -> None:
    if transport == "uvloop":
        pytest.importorskip("uvloop")
    if transport.startswith("anyio"):
        pytest.importorskip("anyio")
        if transport.endswith("trio"):
            pytest.importorskip("trio")


def connect(address: str) -> socket.socket:
    """A raw socket connected to a ``tcp://`` or ``unix://`` server address."""
    rest = address.split("://", 1)[1]
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(rest)
        return sock
    host, port = rest.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run_async(kind: str, main: Callable[[], Any]) -> Any:
    """Run ``main()`` on the default asyncio loop or uvloop."""
    if kind == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def sleeper(transport: str) -> Callable[[float], Any]:
    """The handler's ``await sleep(seconds)`` for that transport."""
    if transport.startswith("anyio"):
        import anyio

        return anyio.sleep  # type: ignore[no-any-return]
    return asyncio.sleep


class Running:
    """A server of one transport running in a thread (``handler`` is a sync function
    for ``blocking``, else ``async def``)."""

    def __init__(
        self,
        transport: str,
        handler: Callable[[Any], Any],
        codec: Any,
        address: str = "tcp://127.0.0.1:0",
        **options: Any,
    ) -> None:
        self.transport = transport
        self.server: Any = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if transport == "blocking":
            self.server = framekit.serve(address, handler, codec, **options)
            self.server.start()
            self.address = self.server.address
            return
        addresses: queue.Queue[str] = queue.Queue()
        stop = self._stop

        if transport.startswith("anyio"):
            import anyio

            fan = importlib.import_module("framekit.anyio")

            async def main_anyio() -> None:
                async with await fan.serve(address, handler, codec, **options) as server:
                    self.server = server
                    addresses.put(server.address)
                    while not stop.is_set():
                        await anyio.sleep(0.01)

            backend = transport.split("-")[1]
            self._thread = threading.Thread(target=lambda: anyio.run(main_anyio, backend=backend))
        else:

            async def main_asyncio() -> None:
                server = await framekit.asyncio.serve(address, handler, codec, **options)
                self.server = server
                addresses.put(server.address)
                while not stop.is_set():
                    await asyncio.sleep(0.01)
                server.close()
                await server.wait_closed()

            self._thread = threading.Thread(target=lambda: run_async(transport, main_asyncio))
        self._thread.start()
        self.address = addresses.get(timeout=TIMEOUT)

    def connect(self) -> socket.socket:
        return connect(self.address)

    def budget_used(self) -> int:
        """The server's memory budget in use, once the connections are gone."""
        budget = self.server._budget
        deadline = time.monotonic() + TIMEOUT
        while budget.used and time.monotonic() < deadline:
            time.sleep(0.01)
        return int(budget.used)

    def close(self) -> None:
        if self._thread is None:
            self.server.shutdown()
            return
        self._stop.set()
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
