"""framekit.asyncio servers: many clients, isolation, bounds, closing, Unix socket files."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from typing import Any, Callable, List, Tuple

import pytest

import framekit
import framekit.asyncio as fa

from ..conftest import LIVE_UNIX_SOCKETS, live_unix_socket
from .conftest import Family, Runner, abstract_name
from .helpers import (
    WAIT,
    close_writer,
    echo,
    echo_datagrams,
    raw_connect,
    recv_all,
    reset,
    wait_until,
)

pytestmark = pytest.mark.network


def test_100_concurrent_clients(run: Runner, LP: Callable[..., Any], family: Family) -> None:
    codec = LP(4)

    async def client(address: str, n: int) -> List[bytes]:
        conn = await fa.connect(address, codec, ssl=family.client_ssl)
        async with conn:
            frames = [b"client %d frame %d" % (n, i) for i in range(5)]
            await conn.send_many(frames[:2])
            for frame in frames[2:]:
                await conn.send(frame)
            return await recv_all(conn, len(frames))

    async def main() -> None:
        async with await fa.serve(family.address, echo, codec, ssl=family.server_ssl) as server:
            results = await asyncio.gather(*(client(server.address, n) for n in range(100)))
            for n, got in enumerate(results):
                assert got == [b"client %d frame %d" % (n, i) for i in range(5)]
            await wait_until(lambda: not server.connections, "every handler finished")

    run(main())


def test_server_address_is_a_url_with_the_real_port(run: Runner, family: Family) -> None:
    async def main() -> None:
        async with await fa.serve(family.address, echo, ssl=family.server_ssl) as server:
            addr = framekit.addresses.parse_address(server.address)
            requested = framekit.addresses.parse_address(family.address)
            assert addr.scheme == requested.scheme
            if addr.is_unix:
                assert addr.path == requested.path
            else:
                assert addr.host == requested.host and addr.port != 0
            assert repr(server).startswith(f"<framekit.asyncio.Server {server.address}")

    run(main())


# -- isolation: a bad client or a failing handler closes only its own connection -----


def _bad_clients(codec: Any) -> List[Tuple[str, bytes, str]]:
    """(name, bytes sent after one good frame, how it ends: eof, reset or open)."""
    return [
        # header(max_frame_size=) builds a frame the codec itself refuses to encode.
        ("oversized", codec.header(100, max_frame_size=1 << 20) + b"x" * 100, "open"),
        ("corrupted", b"\xff" * 8, "open"),
        ("cut off", codec.encode(b"cut off")[:5], "eof"),
        ("reset mid-frame", codec.encode(b"reset")[:5], "reset"),
        ("handler bug", codec.encode(b"boom"), "open"),
    ]


def test_bad_clients_lose_only_their_connection(
    run: Runner, LP: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    codec = LP(8, max_frame_size=64)
    caplog.set_level(logging.DEBUG, logger="framekit")

    async def picky_echo(conn: Any) -> None:
        async for frame in conn:
            if frame == b"boom":
                raise RuntimeError("the handler broke")
            await conn.send(frame)

    async def good_client(address: str) -> None:
        async with await fa.connect(address, codec) as conn:
            await conn.send(b"still there?")
            assert await asyncio.wait_for(conn.recv(), WAIT) == b"still there?"

    async def main() -> None:
        async with await fa.serve("tcp://127.0.0.1:0", picky_echo, codec) as server:
            good = await fa.connect(server.address, codec)  # stays connected throughout
            async with good:
                for name, tail, end in _bad_clients(codec):
                    caplog.clear()
                    reader, writer = await raw_connect(server.address)
                    writer.write(codec.encode(b"before " + name.encode()) + tail)
                    # The frame that came before the bad bytes is handled first.
                    echoed = await asyncio.wait_for(
                        reader.readexactly(len(codec.encode(b"before " + name.encode()))), WAIT
                    )
                    assert echoed.endswith(b"before " + name.encode())
                    if end == "eof":
                        writer.write_eof()
                    elif end == "reset":
                        reset(writer)
                    if end != "reset":  # the server closes that connection
                        assert await asyncio.wait_for(reader.read(), WAIT) == b""
                        await close_writer(writer)
                    await wait_until(lambda: len(server.connections) == 1, f"{name} is gone")
                    await good_client(server.address)
                    await good.send(name.encode())
                    assert await asyncio.wait_for(good.recv(), WAIT) == name.encode()
                    records = [r for r in caplog.records if r.name == "framekit"]
                    # A reset is the network's doing: INFO; bad input: WARNING.
                    least = logging.INFO if end == "reset" else logging.WARNING
                    assert any(r.levelno >= least for r in records), name
                    if name == "handler bug":
                        (record,) = [r for r in records if r.levelno == logging.ERROR]
                        assert record.exc_info and "the handler broke" in str(record.exc_info[1])
                    else:
                        assert all(r.levelno < logging.ERROR for r in records), name

    run(main())


def test_failed_tls_handshake_is_isolated(
    run: Runner, tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ssl, client_ssl = tls_contexts

    async def main() -> None:
        async with await fa.serve("tls://localhost:0", echo, ssl=server_ssl) as server:
            plain = framekit.addresses.parse_address(server.address)
            reader, writer = await asyncio.open_connection(plain.host, plain.port)
            writer.write(b"this is not a TLS client hello\r\n" * 4)
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
            await close_writer(writer)
            async with await fa.connect(server.address, ssl=client_ssl) as conn:
                await conn.send(b"fine")
                assert await asyncio.wait_for(conn.recv(), WAIT) == b"fine"

    run(main())


# -- max_connections ---------------------------------------------------------------------


def test_max_connections(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="framekit")

    async def main() -> None:
        async with await fa.serve("tcp://127.0.0.1:0", echo, max_connections=2) as server:
            first = await fa.connect(server.address)
            second = await fa.connect(server.address)
            for conn in (first, second):
                await conn.send(b"in")
                assert await asyncio.wait_for(conn.recv(), WAIT) == b"in"
            async with await fa.connect(server.address) as third:
                with pytest.raises(framekit.ConnectionClosed):
                    await asyncio.wait_for(third.recv(), WAIT)
            assert "max_connections (2) reached" in caplog.text
            await first.close()
            await wait_until(lambda: len(server.connections) == 1, "the first one is gone")
            async with await fa.connect(server.address) as fourth:
                await fourth.send(b"in too")
                assert await asyncio.wait_for(fourth.recv(), WAIT) == b"in too"
            await second.close()

    run(main())


# -- closing -------------------------------------------------------------------------------


def test_close_closes_every_client(run: Runner, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s.sock")

    async def stuck(conn: Any) -> None:
        first = await conn.recv()
        await conn.send(first)
        if first == b"sleep":
            await asyncio.sleep(3600)  # only a cancellation ends this
        async for frame in conn:
            await conn.send(frame)

    async def main() -> None:
        server = await fa.serve(f"unix://{path}", stuck)
        clients = []
        for what in (b"sleep", b"read", b"read"):
            conn = await fa.connect(server.address)
            await conn.send(what)
            assert await asyncio.wait_for(conn.recv(), WAIT) == what
            clients.append(conn)
        assert len(server.connections) == 3 and server.is_serving()
        server.close()
        server.close()  # twice is fine
        assert not server.is_serving()
        await asyncio.wait_for(server.wait_closed(), WAIT)
        assert server.connections == []
        assert not os.path.exists(path)
        for conn in clients:
            with pytest.raises(framekit.ConnectionClosed):
                await asyncio.wait_for(conn.recv(), WAIT)
            await conn.close()
        with pytest.raises(FileNotFoundError):
            await fa.connect(server.address)

    run(main())


def test_serve_forever(run: Runner) -> None:
    async def main() -> None:
        server = await fa.serve("tcp://127.0.0.1:0", echo)
        forever = asyncio.ensure_future(server.serve_forever())
        async with await fa.connect(server.address) as conn:
            await conn.send(b"hi")
            assert await asyncio.wait_for(conn.recv(), WAIT) == b"hi"
            forever.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(forever, WAIT)
            assert not server.is_serving()
            with pytest.raises(framekit.ConnectionClosed):
                await asyncio.wait_for(conn.recv(), WAIT)
        with pytest.raises(ConnectionRefusedError):
            await fa.connect(server.address)

        server = await fa.serve("tcp://127.0.0.1:0", echo)
        forever = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        server.close()  # from elsewhere: serve_forever returns
        await asyncio.wait_for(forever, WAIT)

    run(main())


# -- Unix socket files ---------------------------------------------------------------------


def test_unix_socket_file_mode(run: Runner, sock_dir: str) -> None:
    async def main() -> None:
        for mode, name in ((0o600, "default"), (0o660, "group")):
            path = os.path.join(sock_dir, f"{name}.sock")
            kwargs = {} if name == "default" else {"unix_mode": mode}
            async with await fa.serve(f"unix://{path}", echo, **kwargs):
                assert os.stat(path).st_mode & 0o777 == mode
            assert not os.path.exists(path)

    run(main())


def test_unix_stale_file_is_replaced(run: Runner, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "stale.sock")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)  # a server that died without removing its file
    assert os.path.exists(path)

    async def main() -> None:
        server = await fa.serve(f"unix://{path}", echo)
        async with server, await fa.connect(server.address) as conn:
            await conn.send(b"fresh")
            assert await asyncio.wait_for(conn.recv(), WAIT) == b"fresh"

    run(main())


def test_unix_live_server_is_address_in_use(run: Runner, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "live.sock")
    other = os.path.join(sock_dir, "not-a-socket")
    with open(other, "w") as f:
        f.write("precious")

    async def main() -> None:
        async with await fa.serve(f"unix://{path}", echo) as server:
            with pytest.raises(OSError, match="address in use") as info:
                await fa.serve(f"unix://{path}", echo)
            assert info.value.errno == errno.EADDRINUSE
            async with await fa.connect(server.address) as conn:  # the first one is unharmed
                await conn.send(b"ok")
                assert await asyncio.wait_for(conn.recv(), WAIT) == b"ok"
        with pytest.raises(OSError, match="not a socket"):
            await fa.serve(f"unix://{other}", echo)
        with open(other) as f:
            assert f.read() == "precious"
        name = abstract_name()
        async with await fa.serve(name, echo):
            with pytest.raises(OSError):
                await fa.serve(name, echo)

    run(main())


@pytest.mark.parametrize("scheme", ["unix", "unixgram"])
@pytest.mark.parametrize("live", LIVE_UNIX_SOCKETS)
def test_unix_any_live_socket_is_address_in_use(
    run: Runner, sock_dir: str, scheme: str, live: str
) -> None:
    """Only a refused connect means stale: a live socket of the other type
    (EPROTOTYPE), a connected datagram socket (EPERM) or a full backlog
    (EAGAIN) keeps its file."""
    path = os.path.join(sock_dir, "s.sock")
    handler = echo if scheme == "unix" else echo_datagrams

    async def main() -> None:
        with live_unix_socket(path, live):
            inode = os.stat(path).st_ino
            with pytest.raises(OSError, match="address in use") as info:
                await fa.serve(f"{scheme}://{path}", handler)
            assert info.value.errno == errno.EADDRINUSE
            if scheme == "unixgram":
                with pytest.raises(OSError, match="address in use"):
                    await fa.open_datagram(f"{scheme}://{path}")
            assert os.stat(path).st_ino == inode

    run(main())


def test_unix_file_replaced_meanwhile_is_left_alone(run: Runner, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s.sock")

    async def main() -> None:
        server = await fa.serve(f"unix://{path}", echo)
        os.unlink(path)
        with open(path, "w") as f:  # someone else's file now
            f.write("theirs")
        server.close()
        await server.wait_closed()
        with open(path) as f:
            assert f.read() == "theirs"

    run(main())


BIG_FRAMES = framekit.LengthPrefixed(max_frame_size=64 << 20)


def test_close_aborts_connections_still_closing(run: Runner) -> None:
    """A handler gave up on a client that does not read and returned: its task
    waits in conn.close() for the buffer to drain.  Server.close() cancels that
    wait, which must abort the connection (it left it open, for good)."""
    conns: List[Any] = []

    async def give_up(conn: Any) -> None:
        conns.append(conn)
        await conn.recv()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.send(b"x" * (32 << 20)), 0.2)

    async def main() -> None:
        # A codec that may send 32 MiB frames (encode refuses frames above its maximum).
        server = await fa.serve("tcp://127.0.0.1:0", give_up, BIG_FRAMES)
        _reader, writer = await raw_connect(server.address)  # reads 128 KiB at most
        writer.write(framekit.LengthPrefixed().encode(b"go"))
        await wait_until(lambda: bool(conns) and conns[0].closed, "the handler is closing")
        conn = conns[0]
        assert not conn._protocol.lost.done()  # still flushing to the client
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)
        assert conn._protocol.lost.done()
        writer.transport.abort()

    run(main())


def test_cancelled_close_aborts(run: Runner) -> None:
    async def main() -> None:
        sent = asyncio.Event()
        conns: List[Any] = []

        async def flood(conn: Any) -> None:
            conns.append(conn)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.send(b"x" * (32 << 20)), 0.2)
            sent.set()
            await asyncio.sleep(3600)

        async with await fa.serve("tcp://127.0.0.1:0", flood, BIG_FRAMES) as server:
            _reader, writer = await raw_connect(server.address)
            await asyncio.wait_for(sent.wait(), WAIT)
            conn = conns[0]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.close(), 0.2)
            await wait_until(lambda: conn._protocol.lost.done(), "the connection was aborted")
            writer.transport.abort()

    run(main())
