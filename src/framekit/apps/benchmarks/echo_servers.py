"""The server benchmark's contestants: echo servers of 4-byte big-endian length-prefixed frames.

Design notes
------------
Each server is written the way its documentation teaches, answers every frame
with the same frame, and runs in a process of its own
(``python -m framekit.apps.benchmarks.echo_servers NAME``) that the benchmark
pins to one CPU.  The process binds a free port on 127.0.0.1, prints its
address (``tcp://127.0.0.1:PORT``) as its first line on stdout, and serves
until it is killed or its stdin closes (so a server whose benchmark died does
not outlive it).

A contestant is one function that takes ``ready`` and serves forever, having
called ``ready(address)`` once it listens; :func:`echo_server` registers a
plain function, :func:`async_echo_server` a coroutine function, registered
twice: on asyncio's default loop (``NAME``) and on uvloop (``NAME-uvloop``).
Adding a variant (a batching handler, another library) is one decorated
function here; :mod:`.servers` lists every registered server in the
benchmark, in the order they are defined.

The broken server (``broken``, not listed) echoes a wrong byte now and then:
the tests use it to prove that the load generator's verification catches it.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Dict, Optional, Tuple

from .harness import ROLE_FLOOR, ROLE_FRAMEKIT, ROLE_PEER

__all__ = ["HOST", "SERVERS", "EchoServer", "async_echo_server", "echo_server"]

#: Where every server listens.
HOST = "127.0.0.1"
#: The largest frame any server accepts (the benchmark sends 64 B).
MAX_FRAME = 1 << 20

Ready = Callable[[str], None]


@dataclass(frozen=True)
class EchoServer:
    """One echo server contestant.

    Attributes:
        name: its id (``--filter`` matches it), and its argument on the command line.
        label: what the table shows.
        role: a ``ROLE_*`` constant of :mod:`.harness`.
        main: ``main(ready)``: listen, call ``ready(address)``, serve forever.
        needs: importable things it requires (``"module"`` or ``"module:attr"``).
        listed: whether the benchmark runs it (the broken server is not).
    """

    name: str
    label: str
    role: str
    main: Callable[[Ready], None]
    needs: Tuple[str, ...] = ()
    listed: bool = True


#: Every server, by name, in the order they are defined here.
SERVERS: Dict[str, EchoServer] = {}


def echo_server(
    name: str, label: str, role: str, *, needs: Tuple[str, ...] = (), listed: bool = True
) -> Callable[[Callable[[Ready], None]], Callable[[Ready], None]]:
    """Register ``main(ready)`` as the server ``name``."""

    def register(main: Callable[[Ready], None]) -> Callable[[Ready], None]:
        SERVERS[name] = EchoServer(name, label, role, main, needs, listed)
        return main

    return register


AsyncMain = Callable[[Ready], Coroutine[Any, Any, None]]


def async_echo_server(
    name: str, label: str, role: str, *, needs: Tuple[str, ...] = ()
) -> Callable[[AsyncMain], AsyncMain]:
    """Register ``async main(ready)`` twice: as ``name`` on asyncio's own loop, and as
    ``name-uvloop`` on uvloop."""

    def register(main: AsyncMain) -> AsyncMain:
        def on_asyncio(ready: Ready) -> None:
            asyncio.run(main(ready))

        def on_uvloop(ready: Ready) -> None:
            loop = importlib.import_module("uvloop").new_event_loop()
            try:
                loop.run_until_complete(main(ready))
            finally:
                loop.close()

        SERVERS[name] = EchoServer(name, label, role, on_asyncio, needs)
        SERVERS[f"{name}-uvloop"] = EchoServer(
            f"{name}-uvloop", f"{label} (uvloop)", role, on_uvloop, (*needs, "uvloop")
        )
        return main

    return register


_header = struct.Struct(">I")


# --- framekit -----------------------------------------------------------------------


@echo_server("blocking", "framekit blocking serve()", ROLE_FRAMEKIT, needs=("framekit._speedups",))
def framekit_blocking(ready: Ready) -> None:
    import framekit

    def handler(conn: Any) -> None:
        for frame in conn:
            conn.send(frame)

    with framekit.serve(f"tcp://{HOST}:0", handler, framekit.LengthPrefixed(4)) as server:
        ready(server.address)
        server.serve_forever()


@async_echo_server("asyncio", "framekit asyncio", ROLE_FRAMEKIT, needs=("framekit._speedups",))
async def framekit_asyncio(ready: Ready) -> None:
    import framekit
    import framekit.asyncio

    async def handler(conn: Any) -> None:
        async for frame in conn:
            await conn.send(frame)

    server = await framekit.asyncio.serve(f"tcp://{HOST}:0", handler, framekit.LengthPrefixed(4))
    ready(server.address)
    await server.serve_forever()


@echo_server(
    "blocking-batches",
    "framekit blocking serve(), batches",
    ROLE_FRAMEKIT,
    needs=("framekit._speedups",),
)
def framekit_blocking_batches(ready: Ready) -> None:
    import framekit

    def handler(conn: Any) -> None:
        for batch in conn.batches():
            conn.send_many(batch)

    with framekit.serve(f"tcp://{HOST}:0", handler, framekit.LengthPrefixed(4)) as server:
        ready(server.address)
        server.serve_forever()


@async_echo_server(
    "asyncio-batches",
    "framekit asyncio, batches",
    ROLE_FRAMEKIT,
    needs=("framekit._speedups",),
)
async def framekit_asyncio_batches(ready: Ready) -> None:
    import framekit
    import framekit.asyncio

    async def handler(conn: Any) -> None:
        async for batch in conn.batches():
            await conn.send_many(batch)

    server = await framekit.asyncio.serve(f"tcp://{HOST}:0", handler, framekit.LengthPrefixed(4))
    ready(server.address)
    await server.serve_forever()


def _framekit_anyio(backend: str) -> Callable[[Ready], None]:
    def main(ready: Ready) -> None:
        import anyio

        import framekit
        import framekit.anyio

        async def handler(conn: Any) -> None:
            async for frame in conn:
                await conn.send(frame)

        async def serve() -> None:
            server = await framekit.anyio.serve(
                f"tcp://{HOST}:0", handler, framekit.LengthPrefixed(4)
            )
            async with server:
                ready(server.address)
                await anyio.sleep_forever()

        anyio.run(serve, backend=backend)

    return main


for _backend, _needs in (("asyncio", ("anyio",)), ("trio", ("anyio", "trio"))):
    echo_server(
        f"anyio-{_backend}",
        f"framekit anyio ({_backend})",
        ROLE_FRAMEKIT,
        needs=("framekit._speedups", *_needs),
    )(_framekit_anyio(_backend))


# --- peers --------------------------------------------------------------------------


@async_echo_server("readexactly", "asyncio readexactly", ROLE_PEER)
async def asyncio_readexactly(ready: Ready) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(4)
                payload = await reader.readexactly(_header.unpack(header)[0])
                writer.write(_header.pack(len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    ready(f"tcp://{HOST}:{server.sockets[0].getsockname()[1]}")
    await server.serve_forever()


@echo_server("twisted", "Twisted Int32StringReceiver", ROLE_PEER, needs=("twisted",))
def twisted_int32(ready: Ready) -> None:
    # Any-typed: Twisted is an optional peer, typed where it is installed and not elsewhere.
    reactor: Any = importlib.import_module("twisted.internet.reactor")
    factory: Any = importlib.import_module("twisted.internet.protocol").Factory
    basic: Any = importlib.import_module("twisted.protocols.basic")

    class Echo(basic.Int32StringReceiver):  # type: ignore[misc]
        MAX_LENGTH = MAX_FRAME

        def connectionMade(self) -> None:
            # As every other contestant does (framekit, asyncio, Netty by default).
            self.transport.setTcpNoDelay(True)

        def stringReceived(self, data: bytes) -> None:
            self.sendString(data)

    port = reactor.listenTCP(0, factory.forProtocol(Echo), interface=HOST)
    ready(f"tcp://{HOST}:{port.getHost().port}")
    reactor.run(installSignalHandlers=False)


# --- the floor and the broken server ----------------------------------------------------


@echo_server(
    "floor",
    "floor: raw C epoll echo (no framing)",
    ROLE_FLOOR,
    needs=("framekit.apps.benchmarks._loadgen",),
)
def raw_floor(ready: Ready) -> None:
    from ._loadgen import echo_floor

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(1024)
        sock.setblocking(False)
        ready(f"tcp://{HOST}:{sock.getsockname()[1]}")
        echo_floor(sock.fileno())


#: The broken server gets one frame in this many wrong.
BROKEN_EVERY = 13


@echo_server("broken", "broken echo (test only)", ROLE_PEER, listed=False)
def broken(ready: Ready) -> None:
    import framekit

    def handler(conn: Any) -> None:
        for i, frame in enumerate(conn, 1):
            if i % BROKEN_EVERY == 0 and frame:
                frame = frame[:-1] + bytes([frame[-1] ^ 1])
            conn.send(frame)

    with framekit.serve(f"tcp://{HOST}:0", handler, framekit.LengthPrefixed(4)) as server:
        ready(server.address)
        server.serve_forever()


# --- the process ----------------------------------------------------------------------


def _exit_when_stdin_closes() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main(argv: Optional[list[str]] = None) -> None:
    """Run the server named by the first argument until killed or stdin closes."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in SERVERS:
        sys.exit(f"usage: echo_servers NAME, one of {', '.join(SERVERS)}")
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()

    def ready(address: str) -> None:
        sys.stdout.write(address + "\n")
        sys.stdout.flush()

    SERVERS[args[0]].main(ready)


if __name__ == "__main__":
    main()
