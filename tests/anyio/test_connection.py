"""framekit.anyio connections over real sockets, on both codec backends and both anyio backends."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from typing import Any, Callable, List

import anyio
import pytest

import framekit
import framekit.anyio as fan
from framekit.codecs.presets import PRESET_ARGS
from framekit.serializers import JSON

from ..conftest import MQTT_PUBLISH
from .conftest import Family, Runner
from .helpers import WAIT, echo, raw_connect, recv_all

pytestmark = pytest.mark.network

MiB = 1 << 20


def test_echo_every_family(run: Runner, LP: Callable[..., Any], family: Family) -> None:
    codec = LP(4)

    async def main() -> None:
        server = await fan.serve(family.address, echo, codec, ssl=family.server_ssl)
        async with server:
            assert ":0" not in server.address
            conn = await fan.connect(server.address, codec, ssl=family.client_ssl)
            assert isinstance(conn, fan.Connection)
            async with conn:
                await conn.send(b"hello")
                assert await conn.recv() == b"hello"
                await conn.send_many([b"", b"a", bytearray(b"bc"), memoryview(b"def")])
                assert await recv_all(conn, 4) == [b"", b"a", b"bc", b"def"]
                big = os.urandom(MiB)
                # One at a time: the server reads only when its handler asks, so
                # two MiB sent before reading the first echo would fill both
                # ways' socket buffers (a Unix socket holds ~200 KiB).
                await conn.send(big)  # written on its own, without a copy
                assert await conn.recv() == big
                await conn.send(memoryview(big)[1:])
                assert await conn.recv() == big[1:]
                if not family.name.startswith("tls"):
                    assert conn.remote_address is not None
            assert conn.closed

    run(main)


def test_async_for_until_clean_end(run: Runner, LP: Callable[..., Any], family: Family) -> None:
    codec = LP(2)

    async def send_and_return(conn: Any) -> None:
        await conn.send_many([b"%d" % i for i in range(100)])

    async def main() -> None:
        server = await fan.serve(family.address, send_and_return, codec, ssl=family.server_ssl)
        async with server, await fan.connect(server.address, codec, ssl=family.client_ssl) as conn:
            got = [frame async for frame in conn]
            assert got == [b"%d" % i for i in range(100)]
            with pytest.raises(framekit.ConnectionClosed):
                await conn.recv()
            with pytest.raises(framekit.ConnectionClosed):
                await conn.recv()  # and again

    run(main)


def test_a_cut_frame_is_incomplete_and_frames_before_bad_bytes_come_first(run: Runner) -> None:
    """The core's guarantees reach anyio's callers: frames first, then the error."""
    codec = framekit.LengthPrefixed(4, max_frame_size=100)
    frames = codec.encode_many([b"one", b"two"])

    async def main() -> None:
        seen: List[Any] = []
        done = anyio.Event()

        async def record(conn: Any) -> None:
            try:
                while True:
                    try:
                        seen.append(await conn.recv())
                    except framekit.FrameTooLarge as exc:
                        seen.append(type(exc).__name__)
            except framekit.FramingError as exc:
                seen.append(type(exc).__name__)
            finally:
                done.set()

        async with await fan.serve("tcp://127.0.0.1:0", record, codec) as server:
            raw = await raw_connect(server.address)
            # two frames, an oversized one (skipped), one more, then half a frame
            oversized = b"\x00\x00\x01\x00" + b"y" * 256
            await raw.send(frames + oversized + codec.encode(b"after") + b"\x00\x00\x00\x09half")
            await raw.aclose()
            with anyio.fail_after(WAIT):
                await done.wait()
        assert seen == [b"one", b"two", "FrameTooLarge", b"after", "IncompleteFrame"]

    run(main)


def test_serializer_and_prefix(run: Runner, LP: Callable[..., Any]) -> None:
    mqtt = LP(**PRESET_ARGS["mqtt"])

    async def handler(conn: Any) -> None:
        obj = await conn.recv()
        await conn.send({"echo": obj})

    async def mqtt_echo(conn: Any) -> None:
        message = await conn.recv()  # the whole message: type byte, length, body
        await conn.send(message[2:], prefix=message[:1])

    async def main() -> None:
        server = await fan.serve("tcp://127.0.0.1:0", handler, serializer=JSON)
        async with server, await fan.connect(server.address, serializer=JSON) as conn:
            await conn.send([1, "two"])
            assert await conn.recv() == {"echo": [1, "two"]}
            conn.serializer = None
            with pytest.raises(TypeError, match="cannot send a str"):
                await conn.send("text")
        server = await fan.serve("tcp://127.0.0.1:0", mqtt_echo, mqtt)
        async with server, await fan.connect(server.address, mqtt) as conn:
            await conn.send(MQTT_PUBLISH[2:], prefix=MQTT_PUBLISH[:1])
            assert await conn.recv() == MQTT_PUBLISH

    run(main)


def test_switch_codec(run: Runner) -> None:
    """A length-prefixed greeting, then lines (the decoders here switch when they
    hold nothing; a codec with ``detach`` may switch mid-batch, see the core tests)."""

    async def greet_then_lines(conn: Any) -> None:
        await conn.recv()
        conn.switch_codec(framekit.Delimited())
        await conn.send(b"ok")
        async for line in conn:
            await conn.send(line.upper())

    async def main() -> None:
        async with await fan.serve("tcp://127.0.0.1:0", greet_then_lines) as server:
            raw = await raw_connect(server.address)
            await raw.send(framekit.LengthPrefixed().encode(b"hi"))
            got = b""
            with anyio.fail_after(WAIT):
                while got != b"ok\n":
                    got += await raw.receive()
                await raw.send(b"one\ntwo\n")
                while got != b"ok\nONE\nTWO\n":
                    got += await raw.receive()
            await raw.aclose()

    run(main)


def test_idle_timeout_raises_and_loses_nothing(run: Runner) -> None:
    async def slow(conn: Any) -> None:
        await conn.recv()
        await anyio.sleep(0.5)
        await conn.send(b"late")

    async def main() -> None:
        server = await fan.serve("tcp://127.0.0.1:0", slow)
        async with server, await fan.connect(server.address, idle_timeout=0.1) as conn:
            await conn.send(b"go")
            with pytest.raises(TimeoutError, match="idle_timeout"):
                await conn.recv()
            for _ in range(20):  # the connection goes on: the reply still comes
                try:
                    assert await conn.recv() == b"late"
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("the late reply never came")

    run(main)


def test_frame_timeout_closes_a_trickling_client(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        server = await fan.serve("tcp://127.0.0.1:0", echo, frame_timeout=0.2)
        async with server:
            raw = await raw_connect(server.address)
            await raw.send(b"\x00\x00\x00\x10abc")  # a frame begun, never finished
            with anyio.fail_after(WAIT), pytest.raises(anyio.EndOfStream):
                await raw.receive()  # the server closed it
            await raw.aclose()
            # and a good client is still served
            async with await fan.connect(server.address) as conn:
                await conn.send(b"ok")
                assert await conn.recv() == b"ok"
        assert "frame_timeout" in caplog.text

    run(main)


def test_connect_errors_name_the_address(run: Runner, sock_dir: str) -> None:
    async def main() -> None:
        with socket_bound() as port, pytest.raises(ConnectionRefusedError, match=f":{port}"):
            await fan.connect(f"tcp://127.0.0.1:{port}")
        with pytest.raises(FileNotFoundError, match="no such socket file"):
            await fan.connect(f"unix://{sock_dir}/nobody.sock")

    run(main)


def socket_bound() -> Any:
    """A port that is bound but not listening: connecting to it is refused."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def bound() -> Any:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            yield s.getsockname()[1]

    return bound()


def test_tls_is_verified_by_default(run: Runner, tls_contexts: Any) -> None:
    server_ssl, client_ssl = tls_contexts

    async def main() -> None:
        async with await fan.serve("tls://localhost:0", echo, ssl=server_ssl) as server:
            with pytest.raises(ssl.SSLCertVerificationError, match="not trusted"):
                await fan.connect(server.address)  # no ssl=: the default context
            async with await fan.connect(server.address, ssl=client_ssl) as conn:
                await conn.send(b"trusted")
                assert await conn.recv() == b"trusted"

    run(main)


def test_import_framekit_does_not_import_anyio() -> None:
    code = (
        "import sys, framekit, framekit.asyncio; "
        "assert 'anyio' not in sys.modules and 'trio' not in sys.modules, "
        "[m for m in sys.modules if m.startswith(('anyio', 'trio'))]; "
        "import framekit.anyio; assert 'anyio' in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_exports() -> None:
    assert sorted(fan.__all__) == sorted(
        [
            "AsyncFrameStream",
            "CLOSE_TIMEOUT",
            "Connection",
            "DatagramEndpoint",
            "Handler",
            "Server",
            "connect",
            "open_datagram",
            "serve",
        ]
    )
    for name in fan.__all__:
        assert getattr(fan, name) is not None
