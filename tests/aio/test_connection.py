"""framekit.asyncio connections over real sockets, on both codec backends and both loops."""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any, Callable, List, Tuple

import pytest

import framekit
import framekit.asyncio as fa
from framekit.codecs.presets import PRESET_ARGS
from framekit.core.options import VECTORED_MIN_SIZE as VECTORED_SEND_MIN
from framekit.serializers import JSON

from ..conftest import MQTT_PUBLISH
from .conftest import Family, Runner
from .helpers import WAIT, Lines, close_writer, echo, raw_connect, recv_all, reset, wait_until

pytestmark = pytest.mark.network

MiB = 1 << 20


# -- every family -----------------------------------------------------------------


def test_echo_every_family(run: Runner, LP: Callable[..., Any], family: Family) -> None:
    codec = LP(4)

    async def main() -> None:
        async with await fa.serve(family.address, echo, codec, ssl=family.server_ssl) as server:
            assert ":0" not in server.address
            conn = await fa.connect(server.address, codec, ssl=family.client_ssl)
            assert isinstance(conn, fa.Connection)
            async with conn:
                await conn.send(b"hello")
                assert await conn.recv() == b"hello"
                await conn.send_many([b"", b"a", bytearray(b"bc"), memoryview(b"def")])
                assert await recv_all(conn, 4) == [b"", b"a", b"bc", b"def"]
                big = os.urandom(MiB)
                await conn.send(big)  # vectored: [header, payload]
                await conn.send(memoryview(big)[1:])
                assert await recv_all(conn, 2) == [big, big[1:]]
            assert conn.closed

    run(main())


def test_async_for_until_clean_eof(run: Runner, LP: Callable[..., Any], family: Family) -> None:
    codec = LP(2)

    async def send_and_close(conn: Any) -> None:
        await conn.send_many([b"%d" % i for i in range(100)])

    async def main() -> None:
        server = await fa.serve(family.address, send_and_close, codec, ssl=family.server_ssl)
        async with server, await fa.connect(server.address, codec, ssl=family.client_ssl) as conn:
            got = []
            async for frame in conn:
                got.append(frame)
                if len(got) == 10:
                    break  # loses nothing:
            got.append(await conn.recv())
            got += [frame async for frame in conn]
            assert got == [b"%d" % i for i in range(100)]
            for _ in range(2):  # and it stays closed
                with pytest.raises(framekit.ConnectionClosed):
                    await conn.recv()

    run(main())


def test_one_byte_writes(run: Runner, LP: Callable[..., Any], family: Family) -> None:
    """The peer writes one byte at a time; every frame still arrives whole."""
    codec = LP(2)
    payloads = [b"", b"x", b"hello world", os.urandom(300)]
    wire = codec.encode_many(payloads)

    async def main() -> None:
        received: asyncio.Future[List[bytes]] = asyncio.get_running_loop().create_future()

        async def collect(conn: Any) -> None:
            received.set_result([frame async for frame in conn])

        async with await fa.serve(family.address, collect, codec, ssl=family.server_ssl) as server:
            _, writer = await raw_connect(server.address, family.client_ssl)
            for i in range(len(wire)):
                writer.write(wire[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)
            if family.name == "tls":
                await close_writer(writer)
            else:
                writer.write_eof()
            assert await asyncio.wait_for(received, WAIT) == payloads
            await close_writer(writer)

    run(main())


def test_large_frames_both_ways(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(4, max_frame_size=4 * MiB)
    frames = [os.urandom(MiB) for _ in range(4)] + [os.urandom(3 * MiB)]

    async def main() -> None:
        server = await fa.serve("tcp://127.0.0.1:0", echo, codec)
        async with server, await fa.connect(server.address, codec) as conn:
            sender = asyncio.ensure_future(conn.send_many(frames))
            assert await recv_all(conn, len(frames)) == frames
            await sender

    run(main())


# -- bad input: every case the codec rejects ---------------------------------------

A = b"first"
B = b"second"


# name -> (codec arguments, wire(LP) -> bytes, closes, expected events)
BAD_INPUT: dict = {
    "too-large": (
        ((2,), {"max_frame_size": 16}),
        lambda LP: LP(2).encode_many([A, b"x" * 100, B]),
        True,
        ["first", "FrameTooLarge", "second", "closed"],
    ),
    "too-large-not-fail-fast": (
        ((2,), {"max_frame_size": 16, "fail_fast": False}),
        lambda LP: LP(2).encode_many([A, b"x" * 100, B]),
        True,
        ["first", "FrameTooLarge", "second", "closed"],
    ),
    "too-large-cut-off-at-eof": (
        ((2,), {"max_frame_size": 16, "fail_fast": False}),
        lambda LP: LP(2).encode(A) + LP(2).encode(b"x" * 100)[:30],
        True,
        ["first", "FrameTooLarge", "closed"],
    ),
    "huge-announced-length": (
        ((8,), {}),
        lambda LP: LP(8).encode(A) + (1 << 62).to_bytes(8, "big") + b"xx",
        True,
        ["first", "FrameTooLarge", "closed"],
    ),
    "negative-length": (
        ((8,), {}),
        lambda LP: LP(8).encode(A) + (-5).to_bytes(8, "big", signed=True) + LP(8).encode(B),
        False,
        ["first", "CorruptedFrame", "CorruptedFrame"],
    ),
    "length-below-header": (
        ((2,), {"length_adjustment": -5}),
        lambda LP: LP(2, length_adjustment=-5).encode(b"first") + b"\x00\x03" + b"second",
        False,
        ["first", "CorruptedFrame", "CorruptedFrame"],
    ),
    "varint-too-long": (
        (("varint",), {"varint_max_bytes": 2}),
        lambda LP: LP("varint").encode(A) + b"\x80\x80\x80\x01" + LP("varint").encode(B),
        False,
        ["first", "CorruptedFrame", "CorruptedFrame"],
    ),
    "varint-above-2**63": (
        (("varint",), {}),
        lambda LP: LP("varint").encode(A) + b"\xff" * 9 + b"\x01" + LP("varint").encode(B),
        False,
        ["first", "CorruptedFrame", "CorruptedFrame"],
    ),
    "strip-beyond-frame": (
        ((1,), {"strip": 4}),
        lambda LP: LP(1).encode_many([b"...first", b"ab", b"...second"]),
        True,
        ["first", "CorruptedFrame", "second", "closed"],
    ),
    "cut-in-payload": (
        ((4,), {}),
        lambda LP: LP(4).encode(A) + LP(4).encode(B)[:-2],
        True,
        ["first", "IncompleteFrame:2", "closed"],
    ),
    "cut-in-header": (
        ((4,), {}),
        lambda LP: LP(4).encode(A) + b"\x00\x00",
        True,
        ["first", "IncompleteFrame:None", "closed"],
    ),
}


async def _events(conn: Any) -> List[str]:
    """What ``recv()`` gives, one word per call, until the stream closes or sticks."""
    events: List[str] = []
    for _ in range(10):
        try:
            frame = await asyncio.wait_for(conn.recv(), WAIT)
        except framekit.ConnectionClosed:
            events.append("closed")
            return events
        except framekit.FramingError as exc:
            assert exc.frames == []  # they were delivered first, not carried again
            word = type(exc).__name__
            if isinstance(exc, framekit.IncompleteFrame):
                word += f":{exc.missing}"
            events.append(word)
            if events[-2:] == ["CorruptedFrame", "CorruptedFrame"]:
                return events  # stuck for good
        else:
            events.append(frame.decode())
    raise AssertionError(f"no end after {events}")


@pytest.mark.parametrize("split", ["whole", "bytewise"])
@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input(run: Runner, LP: Callable[..., Any], case: str, split: str) -> None:
    (args, kwargs), make_wire, closes, expected = BAD_INPUT[case]
    codec = LP(*args, **kwargs)
    wire = make_wire(LP)

    async def main() -> None:
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            chunks = [wire] if split == "whole" else [wire[i : i + 1] for i in range(len(wire))]
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            if closes:
                writer.write_eof()
            else:  # a stuck stream can still be answered
                reply.set_result(await reader.readexactly(len(codec.encode(b"bye"))))
            await close_writer(writer)

        raw = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = raw.sockets[0].getsockname()[1]
        async with raw, await fa.connect(f"tcp://127.0.0.1:{port}", codec) as conn:
            assert await _events(conn) == expected
            if not closes:
                await conn.send(b"bye")
                assert await asyncio.wait_for(reply, WAIT) == codec.encode(b"bye")

    run(main())


# -- end of stream, resets, closing -------------------------------------------------


def test_reset_then_closed(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(4)

    async def main() -> None:
        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(codec.encode(A))
            await reader.readexactly(len(codec.encode(b"ack")))
            reset(writer)

        raw = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = raw.sockets[0].getsockname()[1]
        async with raw, await fa.connect(("127.0.0.1", port), codec) as conn:
            assert await asyncio.wait_for(conn.recv(), WAIT) == A
            await conn.send(b"ack")
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(conn.recv(), WAIT)
            with pytest.raises(framekit.ConnectionClosed):
                await conn.recv()
            with pytest.raises(ConnectionError):
                await conn.send(b"more")

    run(main())


def test_half_close(run: Runner, LP: Callable[..., Any]) -> None:
    """The client writes EOF after its frames and still reads the reply."""
    codec = LP(4)

    async def count(conn: Any) -> None:
        frames = [frame async for frame in conn]
        await conn.send(b"%d" % len(frames))

    async def main() -> None:
        server = await fa.serve("tcp://127.0.0.1:0", count, codec)
        async with server, await fa.connect(server.address, codec) as conn:
            await conn.send_many([A, B, A])
            conn.write_eof()
            assert await asyncio.wait_for(conn.recv(), WAIT) == b"3"
            with pytest.raises(framekit.ConnectionClosed):
                await asyncio.wait_for(conn.recv(), WAIT)

    run(main())


def test_close_wakes_recv_and_refuses_sends(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(4)

    async def idle(conn: Any) -> None:
        await conn.wait_closed()

    async def main() -> None:
        async with await fa.serve("tcp://127.0.0.1:0", idle, codec) as server:
            conn = await fa.connect(server.address, codec)
            waiting = asyncio.ensure_future(conn.recv())
            await asyncio.sleep(0)
            assert not conn.closed
            await conn.close()
            with pytest.raises(framekit.ConnectionClosed):
                await asyncio.wait_for(waiting, WAIT)
            with pytest.raises(framekit.ConnectionClosed):
                await conn.recv()
            with pytest.raises(framekit.ConnectionClosed):
                await conn.send(b"x")
            assert [frame async for frame in conn] == []
            assert conn.closed
            await conn.close()  # twice is fine
            await conn.wait_closed()

    run(main())


# -- cancellation and concurrency ---------------------------------------------------


def test_cancelled_recv_loses_nothing(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(4)

    async def main() -> None:
        go = asyncio.Queue()  # type: asyncio.Queue[bytes]

        async def on_demand(conn: Any) -> None:
            while True:
                await conn.send(await go.get())

        server = await fa.serve("tcp://127.0.0.1:0", on_demand, codec)
        async with server, await fa.connect(server.address, codec) as conn:
            pending = asyncio.ensure_future(conn.recv())
            await asyncio.sleep(0.01)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            go.put_nowait(A)
            assert await asyncio.wait_for(conn.recv(), WAIT) == A
            # A timeout is a cancellation too.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.recv(), 0.01)
            go.put_nowait(B)
            assert await asyncio.wait_for(conn.recv(), WAIT) == B

    run(main())


def test_second_concurrent_recv_is_refused(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(4)

    async def main() -> None:
        server = await fa.serve("tcp://127.0.0.1:0", echo, codec)
        async with server, await fa.connect(server.address, codec) as conn:
            first = asyncio.ensure_future(conn.recv())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="already waiting"):
                await conn.recv()
            await conn.send(A)
            assert await asyncio.wait_for(first, WAIT) == A

    run(main())


# -- serializers and other codecs ---------------------------------------------------


def test_serializer(run: Runner, LP: Callable[..., Any], family: Family) -> None:
    codec = LP(4)

    async def main() -> None:
        async with await fa.serve(
            family.address, echo, codec, ssl=family.server_ssl
        ) as server:  # the server echoes raw frames
            conn = await fa.connect(server.address, codec, ssl=family.client_ssl, serializer=JSON)
            async with conn:
                await conn.send({"n": 1, "s": "é"})
                assert await conn.recv() == {"n": 1, "s": "é"}
                await conn.send_many([[1], [2]])
                conn.serializer = None
                await conn.send(b"{not json")
                conn.serializer = JSON
                await conn.send("after")
                assert await conn.recv() == [1]
                assert await conn.recv() == [2]
                with pytest.raises(framekit.SerializationError) as info:
                    await conn.recv()
                assert info.value.frame == b"{not json"
                assert await conn.recv() == "after"  # still usable
                with pytest.raises(framekit.SerializationError):
                    await conn.send({1, 2})  # sets are not JSON

    run(main())


def test_any_codec(run: Runner) -> None:
    """A codec written only against framekit.codecs.interface (newline-terminated lines)."""

    async def main() -> None:
        server = await fa.serve("tcp://127.0.0.1:0", echo, Lines())
        async with server, await fa.connect(server.address, Lines()) as conn:
            await conn.send(b"one")
            await conn.send_many([b"two", b"", b"three"])
            assert await recv_all(conn, 4) == [b"one", b"two", b"", b"three"]
            with pytest.raises(ValueError, match="newline"):
                await conn.send(b"a\nb")

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"whole\ncut")
            writer.write_eof()

        raw = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = raw.sockets[0].getsockname()[1]
        async with raw, await fa.connect(f"tcp://127.0.0.1:{port}", Lines()) as conn:
            assert await asyncio.wait_for(conn.recv(), WAIT) == b"whole"
            with pytest.raises(framekit.IncompleteFrame):
                await asyncio.wait_for(conn.recv(), WAIT)

    run(main())


# -- flow control on the sending side -----------------------------------------------


def test_send_waits_for_a_slow_peer(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(4)
    frame = b"x" * (64 * 1024)
    total = 512  # 32 MiB: more than loopback's kernel buffers and the receiver's queue hold

    async def main() -> None:
        start = asyncio.Event()
        received: List[int] = []

        async def slow(conn: Any) -> None:
            await start.wait()
            async for got in conn:
                received.append(len(got))

        async with await fa.serve(
            "tcp://127.0.0.1:0", slow, codec, max_queued_bytes=256 * 1024
        ) as server:
            conn = await fa.connect(server.address, codec)
            assert isinstance(conn, fa.Connection)
            conn.transport.set_write_buffer_limits(high=128 * 1024)
            peak = 0
            sent = 0

            async def sender() -> None:
                nonlocal peak, sent
                for _ in range(total):
                    await conn.send(frame)
                    sent += 1
                    peak = max(peak, conn.transport.get_write_buffer_size())
                await conn.close()

            task = asyncio.ensure_future(sender())
            await wait_until(lambda: conn._protocol.flow.paused, "the transport paused writing")
            assert not task.done() and sent < total  # the sender is held back
            start.set()
            await asyncio.wait_for(task, WAIT * 2)
            await wait_until(lambda: len(received) == total, "every frame arrived")
            assert peak <= 128 * 1024 + len(frame) + 4

    run(main())


# -- connection errors and bad arguments --------------------------------------------


def test_connect_errors(
    run: Runner, sock_dir: str, tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ssl, _ = tls_contexts

    async def main() -> None:
        raw = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = raw.sockets[0].getsockname()[1]
        raw.close()
        await raw.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await fa.connect(f"tcp://127.0.0.1:{port}")
        with pytest.raises(FileNotFoundError):
            await fa.connect(f"unix://{sock_dir}/missing.sock")
        async with await fa.serve("tls://localhost:0", echo, ssl=server_ssl) as server:
            with pytest.raises(ssl.SSLCertVerificationError):
                await fa.connect(server.address)  # the default context does not trust the test CA

    run(main())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: fa.connect("ftp://x:1"), ValueError, "unknown scheme"),
        (lambda: fa.connect("tcp://127.0.0.1:1", ssl=True), TypeError, "SSLContext"),
        (
            lambda: fa.connect("udp://127.0.0.1:1", ssl=ssl.create_default_context()),
            ValueError,
            "datagrams",
        ),
        (lambda: fa.connect("tcp://127.0.0.1:1", codec=object()), TypeError, "Codec"),
        (lambda: fa.connect("tcp://127.0.0.1:1", serializer=1), TypeError, "dumps"),
        (lambda: fa.connect("tcp://127.0.0.1:1", max_queued_frames=0), ValueError, "at least 1"),
        (lambda: fa.connect("tcp://127.0.0.1:1", max_datagram_size=9), ValueError, "datagram"),
        (lambda: fa.serve("tls://127.0.0.1:0", echo), ValueError, "needs ssl="),
        (lambda: fa.serve("tcp://127.0.0.1:0", None), TypeError, "async function"),
        (lambda: fa.serve("tcp://127.0.0.1:0", echo, max_connections=0), ValueError, "at least 1"),
        (lambda: fa.open_datagram(), ValueError, "local address, a remote address"),
        (lambda: fa.open_datagram("tcp://127.0.0.1:0"), ValueError, "udp:// or unixgram://"),
        (lambda: fa.open_datagram("udp://127.0.0.1:0", "unixgram:@x"), ValueError, "differ"),
    ],
)
def test_bad_arguments(run: Runner, call: Callable[[], Any], error: type, match: str) -> None:
    async def main() -> None:
        with pytest.raises(error, match=match):
            await call()

    run(main())


# -- prefix=: protocols with bytes before the length field ------------------------------


def test_postgres_messages_with_prefix(run: Runner, LP: Callable[..., Any], family: Family) -> None:
    codec = LP(**PRESET_ARGS["postgres"])
    big = os.urandom(VECTORED_SEND_MIN + 1)  # framed by encode_parts, written vectored

    async def backend(conn: Any) -> None:
        async for message in conn:
            if message[:1] == b"Q":  # a Query: CommandComplete, then ReadyForQuery (idle)
                await conn.send_many([b"SELECT 1\x00"], prefix=b"C")
                await conn.send(b"I", prefix=b"Z")
            else:  # CopyData: back as it came
                await conn.send(message[5:], prefix=message[:1])

    async def main() -> None:
        server = await fa.serve(family.address, backend, codec, ssl=family.server_ssl)
        async with server, await fa.connect(server.address, codec, ssl=family.client_ssl) as conn:
            await conn.send(b"SELECT 1\x00", prefix=b"Q")
            assert await recv_all(conn, 2) == [
                b"C\x00\x00\x00\x0dSELECT 1\x00",
                b"Z\x00\x00\x00\x05I",
            ]
            await conn.send(big, prefix=b"d")
            assert await recv_all(conn, 1) == [b"d" + (len(big) + 4).to_bytes(4, "big") + big]
            with pytest.raises(ValueError, match="prefix"):
                await conn.send(b"SELECT 1\x00")  # the codec's own error: it needs the type byte

    run(main())


def test_prefix_on_the_wire(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(**PRESET_ARGS["mqtt"])

    async def main() -> None:
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.set_result(await reader.read())
            writer.close()

        raw = await asyncio.start_server(collect, "127.0.0.1", 0)
        port = raw.sockets[0].getsockname()[1]
        async with raw, await fa.connect(f"tcp://127.0.0.1:{port}", codec) as conn:
            await conn.send(b"\x00\x03a/bhey", prefix=b"\x30")
            await conn.send_many([b"", b""], prefix=b"\xc0")
            await conn.send(b"\x00\x03a/bhey", prefix=b"\x30")
        assert (
            await asyncio.wait_for(received, WAIT) == MQTT_PUBLISH + b"\xc0\x00" * 2 + MQTT_PUBLISH
        )

    run(main())


def test_prefix_for_a_codec_without_it(run: Runner) -> None:
    """None calls the codec as before; a prefix is the codec's own TypeError."""

    async def main() -> None:
        server = await fa.serve("tcp://127.0.0.1:0", echo, Lines())
        async with server, await fa.connect(server.address, Lines()) as conn:
            await conn.send(b"plain", prefix=None)
            await conn.send_many([b"one"], prefix=None)
            assert await recv_all(conn, 2) == [b"plain", b"one"]
            with pytest.raises(TypeError, match="prefix"):
                await conn.send(b"x", prefix=b"Q")
            with pytest.raises(TypeError, match="prefix"):
                await conn.send(b"x" * VECTORED_SEND_MIN, prefix=b"Q")
            with pytest.raises(TypeError, match="prefix"):
                await conn.send_many([b"x"], prefix=b"Q")

    run(main())


@pytest.mark.parametrize("kind", ["bytearray", "memoryview"])
def test_a_send_buffer_may_be_reused_once_send_returns(
    run: Runner, LP: Callable[..., Any], kind: str
) -> None:
    """uvloop (and Python 3.12+) keep a reference to what writelines() could not
    write at once: a large mutable payload must be copied, or refilling it after
    send() returned changes the frame on the wire."""
    codec = LP(4)

    async def main() -> None:
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def sink(conn: Any) -> None:
            async for frame in conn:
                await got.put(frame)

        server = await fa.serve("tcp://127.0.0.1:0", sink, codec)
        async with server, await fa.connect(server.address, codec) as conn:
            for size in (VECTORED_SEND_MIN, 4 * MiB):
                buf = bytearray(b"A" * size)
                await conn.send(buf if kind == "bytearray" else memoryview(buf))
                buf[:] = b"B" * size  # reuse the buffer
                frame = await asyncio.wait_for(got.get(), WAIT)
                assert frame.count(b"B") == 0, size
                assert frame == b"A" * size

    run(main())
