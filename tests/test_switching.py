"""switch_codec() on real connections: a real PostgreSQL client.

The PostgreSQL startup phase has messages without a type byte
(``POSTGRES_STARTUP``), then typed ones (``POSTGRES``).  The fake server here
sends its whole login reply before it reads the startup message, so pg8000's
startup message and its first query sit in the socket together: the server's
first read takes both, the startup codec decodes the query's bytes as
nonsense (a 1.3 GB frame), and ``switch_codec(POSTGRES)`` must still give the
query whole.  Then the server answers through the new codec (``prefix=`` is
the type byte).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any, Callable, List, Tuple

import pytest

import framekit
import framekit.asyncio as fa
from framekit.codecs import presets

TIMEOUT = 10.0
SQL = b"SELECT 7\x00"

#: (type byte, body) of the server's login reply: AuthenticationOk,
#: ParameterStatus, BackendKeyData, ReadyForQuery.
LOGIN: List[Tuple[bytes, bytes]] = [
    (b"R", struct.pack(">i", 0)),
    (b"S", b"client_encoding\x00UTF8\x00"),
    (b"K", struct.pack(">ii", 4242, 77)),
    (b"Z", b"I"),
]
#: ... and its answer to the query: RowDescription (one int4 column), DataRow,
#: CommandComplete, ReadyForQuery.
ANSWER: List[Tuple[bytes, bytes]] = [
    (b"T", struct.pack(">h", 1) + b"n\x00" + struct.pack(">ihihih", 0, 0, 23, 4, -1, 0)),
    (b"D", struct.pack(">hi", 1, 1) + b"7"),
    (b"C", b"SELECT 1\x00"),
    (b"Z", b"I"),
]


def raw(codec: Any, messages: List[Tuple[bytes, bytes]]) -> bytes:
    return b"".join(codec.encode(body, prefix=kind) for kind, body in messages)


def peek_until(sock: socket.socket, n: int) -> None:
    """Wait until ``n`` bytes wait in the socket (peeked, not read)."""
    deadline = time.monotonic() + TIMEOUT
    while len(sock.recv(n, socket.MSG_PEEK)) < n:
        assert time.monotonic() < deadline, "the client's bytes did not arrive"
        time.sleep(0.005)


#: The startup message is at least this long ("user" and protocol version), the
#: query 5 + len(SQL): wait for that much, then a little more for the rest.
AT_LEAST = 4 + 4 + len(b"user\x00fk-user\x00\x00") + 5 + len(SQL)


def run_pg8000(address: str) -> Any:
    native = pytest.importorskip("pg8000.native")
    port = int(address.rsplit(":", 1)[1])
    conn = native.Connection("fk-user", host="127.0.0.1", port=port, timeout=TIMEOUT)
    try:
        return conn.run("SELECT 7")
    finally:
        conn.close()


def check(seen: List[Any]) -> None:
    ssl_request, start, read_with_it, query, terminate = seen
    assert ssl_request == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # 8, then 80877103
    assert struct.unpack(">ii", start[:8]) == (len(start), 196608)  # protocol 3.0
    assert read_with_it >= len(start) + len(query)  # one read brought both
    assert query == b"Q" + struct.pack(">i", 4 + len(SQL)) + SQL
    assert terminate == b"X\x00\x00\x00\x04"


def test_pg8000_startup_and_query_in_one_read_blocking(LP: Callable[..., Any]) -> None:
    pytest.importorskip("pg8000.native")
    startup = LP(**presets.PRESET_ARGS["postgres-startup"])
    typed = LP(**presets.PRESET_ARGS["postgres"])
    seen: List[Any] = []

    def handler(conn: framekit.FramedSocket) -> None:
        seen.append(conn.recv())  # SSLRequest
        conn.socket.sendall(b"N" + raw(typed, LOGIN))  # no SSL (unframed), login ahead
        peek_until(conn.socket, AT_LEAST)
        time.sleep(0.05)
        before = conn.core.bytes_in
        seen.append(conn.recv())  # the startup message...
        seen.append(conn.core.bytes_in - before)  # ...and all that one read brought
        conn.switch_codec(typed)
        seen.append(conn.recv())  # the query, read by the new codec
        for kind, body in ANSWER:
            conn.send(body, prefix=kind)
        seen.append(conn.recv())  # Terminate

    with framekit.serve("tcp://127.0.0.1:0", handler, startup) as server:
        server.start()
        assert run_pg8000(server.address) == [[7]]
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    check(seen)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_pg8000_startup_and_query_in_one_read_asyncio(LP: Callable[..., Any], loop: str) -> None:
    pytest.importorskip("pg8000.native")
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    startup = LP(**presets.PRESET_ARGS["postgres-startup"])
    typed = LP(**presets.PRESET_ARGS["postgres"])
    seen: List[Any] = []

    async def handler(conn: Any) -> None:
        seen.append(await conn.recv())  # SSLRequest
        conn.transport.write(b"N" + raw(typed, LOGIN))
        before = conn.core.bytes_in
        while conn.core.bytes_in - before < AT_LEAST:  # the loop reads ahead meanwhile
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        seen.append(await conn.recv())
        seen.append(conn.core.bytes_in - before)
        conn.switch_codec(typed)
        seen.append(await conn.recv())
        for kind, body in ANSWER:
            await conn.send(body, prefix=kind)
        seen.append(await conn.recv())

    async def main() -> None:
        async with await fa.serve("tcp://127.0.0.1:0", handler, startup) as server:
            rows = await asyncio.get_running_loop().run_in_executor(
                None, run_pg8000, server.address
            )
            assert rows == [[7]]
            for _ in range(int(TIMEOUT / 0.01)):
                if len(seen) == 5:
                    break
                await asyncio.sleep(0.01)

    if loop == "uvloop":
        import uvloop

        uvloop.run(main())  # type: ignore[attr-defined]
    else:
        asyncio.run(main())
    check(seen)


# -- a line handshake, then length-prefixed frames ---------------------------------------


class Handshake(framekit.FrameHandler):
    """Answers the text line ``BINARY`` with ``OK``, then speaks length-prefixed frames."""

    def handle_frame(self, frame: Any, address: Any = None) -> Any:
        if isinstance(self.conn.codec, framekit.Lines):
            assert frame == b"BINARY"
            self.conn.send(b"OK")  # still a line
            self.conn.switch_codec(framekit.LengthPrefixed(4))
            return None
        return frame[::-1]


def pipelined_client(address: str) -> List[bytes]:
    """Sends the handshake and three frames in one write, before any reply."""
    lines, framed = framekit.Lines(), framekit.LengthPrefixed(4)
    with framekit.connect(address, lines, timeout=TIMEOUT) as conn:
        conn.socket.sendall(lines.encode(b"BINARY") + framed.encode_many([b"abc", b"\n\n", b""]))
        got = [conn.recv()]
        conn.switch_codec(framed)
        got += [conn.recv() for _ in range(3)]
        return got


def test_a_line_handshake_then_length_prefixed_frames_blocking() -> None:
    with framekit.serve("tcp://127.0.0.1:0", Handshake, framekit.Lines()) as server:
        server.start()
        assert pipelined_client(server.address) == [b"OK", b"cba", b"\n\n", b""]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_line_handshake_then_length_prefixed_frames_asyncio(loop: str) -> None:
    async def handler(conn: Any) -> None:
        assert await conn.recv() == b"BINARY"
        await conn.send(b"OK")
        conn.switch_codec(framekit.LengthPrefixed(4))
        async for frame in conn:
            await conn.send(frame[::-1])

    async def main() -> None:
        async with await fa.serve("tcp://127.0.0.1:0", handler, framekit.Lines()) as server:
            got = await asyncio.get_running_loop().run_in_executor(
                None, pipelined_client, server.address
            )
            assert got == [b"OK", b"cba", b"\n\n", b""]

    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


def test_a_codec_that_cannot_switch_says_so() -> None:
    class Plain(framekit.CodecBase):
        def encode(self, payload: Any, *, prefix: Any = b"") -> bytes:
            return bytes(payload) + b";"

        def decoder(self) -> Any:
            return PlainDecoder()

    class PlainDecoder(framekit.DecoderBase):
        pending = 0

        def feed(self, data: Any) -> List[bytes]:
            return bytes(data).split(b";")[:-1]

        def eof(self) -> None:
            pass

    a, b = socket.socketpair()
    with framekit.FramedSocket(a, Plain()) as conn, b:
        b.sendall(b"one;two;")
        assert conn.recv() == b"one"
        with pytest.raises(TypeError, match=r"cannot switch codecs: .* no detach\(\)"):
            conn.switch_codec(framekit.LengthPrefixed(4))
