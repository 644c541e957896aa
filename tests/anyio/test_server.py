"""framekit.anyio servers: structured concurrency, isolation, max_connections, TLS
handshakes, and a shutdown that leaves no task, fd or socket file behind."""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import Any, List

import anyio
import pytest

import framekit
import framekit.anyio as fan

from .conftest import Runner
from .helpers import WAIT, echo, open_fds, raw_connect, recv_all, reset, wait_until

pytestmark = pytest.mark.network


def test_a_bad_client_and_a_failing_handler_are_isolated(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="framekit")
    codec = framekit.Netstring()

    async def handler(conn: Any) -> None:
        async for frame in conn:
            if frame == b"boom":
                raise RuntimeError("the handler's own bug")
            await conn.send(frame)

    async def main() -> None:
        async with await fan.serve("tcp://127.0.0.1:0", handler, codec) as server:
            good = await fan.connect(server.address, codec)
            assert isinstance(good, fan.Connection)
            async with good:
                await good.send(b"before")
                garbage = await raw_connect(server.address)
                await garbage.send(b"3:abc,xyz not a netstring")
                bug = await fan.connect(server.address, codec)
                await bug.send(b"boom")
                rude = await raw_connect(server.address)
                await rude.send(b"5:ab")
                reset(rude)
                await rude.aclose()
                with anyio.fail_after(WAIT):
                    assert await garbage.receive() == b"3:abc,"  # frames before bad bytes
                    with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                        await garbage.receive()
                    with pytest.raises(framekit.ConnectionClosed):
                        await bug.recv()
                await garbage.aclose()
                await bug.aclose()
                await good.send(b"after")
                assert await recv_all(good, 2) == [b"before", b"after"]
        text = caplog.text
        assert "bad input: CorruptedFrame" in text
        assert "handler failed on connection from tcp://127.0.0.1:" in text
        assert "RuntimeError: the handler's own bug" in text

    run(main)


def test_max_connections(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = await fan.serve("tcp://127.0.0.1:0", echo, max_connections=2)
        async with server:
            first = await fan.connect(server.address)
            second = await fan.connect(server.address)
            for conn in (first, second):
                await conn.send(b"in")
                assert await recv_all(conn, 1) == [b"in"]
            async with await fan.connect(server.address) as third:
                with anyio.fail_after(WAIT), pytest.raises(ConnectionError):
                    await third.send(b"refused?")
                    await third.recv()
            await first.aclose()
            await wait_until(lambda: len(server.connections) == 1, "the slot is free")
            async with await fan.connect(server.address) as fourth:
                await fourth.send(b"now in")
                assert await recv_all(fourth, 1) == [b"now in"]
            await second.aclose()
        assert "max_connections (2) reached" in caplog.text

    run(main)


def test_closing_the_server_cancels_handlers_and_closes_connections(run: Runner) -> None:
    async def main() -> None:
        cancelled: List[str] = []

        async def stuck(conn: Any) -> None:
            await conn.send(b"hello")
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append("stuck")
                raise

        async def stuck_sending(conn: Any) -> None:
            try:
                while True:  # the client never reads: the write blocks, shielded
                    await conn.send(b"x" * 65536)
            except anyio.get_cancelled_exc_class():
                cancelled.append("sending")
                raise
            except (OSError, framekit.ConnectionClosed):
                cancelled.append("sending")

        clients = []
        async with await fan.serve("tcp://127.0.0.1:0", stuck) as server:
            conn = await fan.connect(server.address)
            clients.append(conn)
            assert await recv_all(conn, 1) == [b"hello"]
            other = await fan.serve("tcp://127.0.0.1:0", stuck_sending)
            async with other:
                raw = await raw_connect(other.address)
                await wait_until(lambda: other.connections, "the handler runs")
                await anyio.sleep(0.2)  # its writes fill the buffers
            assert not other.is_serving()
            await raw.aclose()
        assert sorted(cancelled) == ["sending", "stuck"]
        with anyio.fail_after(WAIT), pytest.raises(ConnectionError):
            await conn.recv()
        await conn.aclose()

    run(main)


def test_shutdown_leaves_no_task_fd_or_file(run: Runner, sock_dir: str) -> None:
    path = f"{sock_dir}/s.sock"

    async def main() -> None:
        tasks = len(anyio.get_running_tasks())
        fds = open_fds()
        async with await fan.serve(f"unix://{path}", echo) as server:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            conns = [await fan.connect(server.address) for _ in range(5)]
            for conn in conns:
                await conn.send(b"hi")
                assert await recv_all(conn, 1) == [b"hi"]
            half = await raw_connect(server.address)
            await half.send(b"\x00\x00\x00\x09half")  # a frame begun
            await wait_until(lambda: len(server.connections) == 6, "6 handlers run")
            assert len(anyio.get_running_tasks()) > tasks
        assert not os.path.exists(path)
        assert len(anyio.get_running_tasks()) == tasks
        for conn in conns:
            await conn.aclose()
        await half.aclose()
        assert open_fds() == fds

    run(main)


def test_serve_forever_until_closed_or_cancelled(run: Runner, sock_dir: str) -> None:
    async def main() -> None:
        server = await fan.serve(f"unix://{sock_dir}/a.sock", echo)
        assert not server.is_serving()
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve_forever)
            async with await fan.connect(server.address) as conn:
                await conn.send(b"served")
                assert await recv_all(conn, 1) == [b"served"]
            assert server.is_serving()
            server.close()  # serve_forever() returns
        await server.wait_closed()
        assert not os.path.exists(f"{sock_dir}/a.sock")

        server = await fan.serve(f"unix://{sock_dir}/b.sock", echo)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve_forever)
            await wait_until(server.is_serving, "serving")
            tg.cancel_scope.cancel()  # cancelling serve_forever() closes the server
        assert not server.is_serving()
        assert not os.path.exists(f"{sock_dir}/b.sock")

        server = await fan.serve(f"unix://{sock_dir}/c.sock", echo)
        await server.aclose()  # never served: released all the same
        assert not os.path.exists(f"{sock_dir}/c.sock")

    run(main)


def test_an_exception_in_the_block_is_not_wrapped(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(KeyError):
            async with await fan.serve("tcp://127.0.0.1:0", echo):
                raise KeyError("mine")

    run(main)


def test_tls_handshake_timeout(
    run: Runner, tls_contexts: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server_ssl, client_ssl = tls_contexts

    async def main() -> None:
        server = await fan.serve(
            "tls://localhost:0", echo, ssl=server_ssl, handshake_timeout=0.2, max_connections=1
        )
        async with server:
            silent = await raw_connect(server.address)  # TCP, no handshake: holds the slot
            with (
                anyio.fail_after(WAIT),
                pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)),
            ):
                await silent.receive()  # closed after the timeout
            await silent.aclose()
            await wait_until(lambda: not server.connections, "the slot is free")
            async with await fan.connect(server.address, ssl=client_ssl) as conn:
                await conn.send(b"late but served")
                assert await recv_all(conn, 1) == [b"late but served"]
        assert "the TLS handshake took more than 0.2 s" in caplog.text

    run(main)


def test_accept_backs_off_when_out_of_fds(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE from accept() is logged and retried; the server goes on serving."""

    async def main() -> None:
        server = await fan.serve("tcp://127.0.0.1:0", echo)
        listener = server._listener
        assert listener is not None
        real_accept = listener.accept
        failures = [OSError(errno.EMFILE, "Too many open files")] * 3

        async def accept() -> Any:
            if failures:
                raise failures.pop()
            return await real_accept()

        listener.accept = accept  # type: ignore[method-assign]
        async with server, await fan.connect(server.address) as conn:
            await conn.send(b"served after the back-off")
            assert await recv_all(conn, 1) == [b"served after the back-off"]
        assert caplog.text.count("cannot accept connections for now") == 3

    run(main)


def test_concurrent_senders_each_frame_whole(run: Runner) -> None:
    async def main() -> None:
        server = await fan.serve("tcp://127.0.0.1:0", echo)
        async with server, await fan.connect(server.address) as conn:

            async def sender(n: int) -> None:
                for i in range(20):
                    await conn.send(bytes([n]) * (1000 + 5000 * i))

            async with anyio.create_task_group() as tg:
                for n in range(5):
                    tg.start_soon(sender, n)
                got = await recv_all(conn, 100)
            for frame in got:
                assert frame == frame[:1] * len(frame)
            assert sorted(len(f) for f in got) == sorted([1000 + 5000 * i for i in range(20)] * 5)

    run(main)
