"""Every transport x every codec x a serializer: one short exchange per combination.

Transports (blocking, asyncio, and anyio on each of its backends, asyncio and
trio) x schemes (tcp, tls, unix, udp, unixgram) x
codecs (LengthPrefixed of both backends, Delimited, Netstring, and SLIP, a
codec this file defines on the public bases) with ``serializer=JSON``.  Each
exchange sends an object, a raw frame that is not JSON, and another object to
an echo server: the objects come back equal, the bad frame comes back as a
``SerializationError`` carrying it, and the connection goes on.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from typing import Any, Callable, List, Optional, Tuple

import pytest

import framekit
from framekit import CodecBase, DecoderBase, IncompleteFrame, SerializationError
from framekit.serializers import JSON

from .toy_transport import ToyConnection

TIMEOUT = 5.0
SCHEMES = ["tcp", "tls", "unix", "udp", "unixgram"]
FIRST = {"n": 1, "text": "héllo ✓", "list": [1, 2.5, None, True]}
SECOND = ["second", {"empty": {}}]
#: Not JSON, and full of bytes SLIP must escape.
BAD = b"\xc0\xdb\xdc not json \xdb\xdd\xc0"

# -- a codec of this file's own: SLIP (RFC 1055) --------------------------------

END, ESC, ESC_END, ESC_ESC = b"\xc0", b"\xdb", b"\xdb\xdc", b"\xdb\xdd"


class Slip(CodecBase):
    """Frames end with 0xC0; 0xC0 and 0xDB inside a frame are escaped."""

    def encode(self, payload: Any) -> bytes:
        return bytes(payload).replace(ESC, ESC_ESC).replace(END, ESC_END) + END

    def decoder(self) -> SlipDecoder:
        return SlipDecoder()


class SlipDecoder(DecoderBase):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.pending = 0

    def feed(self, data: Any) -> List[bytes]:
        self.buffer += data
        *frames, rest = bytes(self.buffer).split(END)
        self.buffer = bytearray(rest)
        self.pending = len(rest)
        return [f.replace(ESC_END, END).replace(ESC_ESC, ESC) for f in frames]

    def eof(self) -> None:
        if self.pending:
            raise IncompleteFrame("stream ended inside a SLIP frame", pending=self.pending)


OTHER_CODECS = {
    "lines": lambda: framekit.Delimited(),
    "netstring": lambda: framekit.Netstring(),
    "slip": Slip,
}

# -- the exchange ---------------------------------------------------------------

Contexts = Tuple[Optional[ssl.SSLContext], Optional[ssl.SSLContext]]


def address_of(scheme: str, sock_dir: str) -> str:
    if scheme in ("unix", "unixgram"):
        return f"{scheme}://{sock_dir}/{scheme}.sock"
    return f"{scheme}://127.0.0.1:0"


def echo_stream(conn: Any) -> None:
    for frame in conn:
        conn.send(frame)


def echo_datagram(frame: bytes, address: Any) -> bytes:
    return frame


def blocking_exchange(address: str, codec: Any, contexts: Contexts) -> List[Any]:
    """Run the exchange with framekit.serve/connect; return what came back."""
    server_ssl, client_ssl = contexts
    datagram = address.startswith(("udp", "unixgram"))
    handler = echo_datagram if datagram else echo_stream
    with framekit.serve(address, handler, codec, ssl=server_ssl) as server:
        server.start()
        with framekit.connect(
            server.address, codec, timeout=TIMEOUT, ssl=client_ssl, serializer=JSON
        ) as conn:
            got: List[Any] = []
            conn.send(FIRST)
            got.append(conn.recv())
            conn.serializer = None  # the raw bad frame goes out as it is
            conn.send(BAD)
            conn.serializer = JSON
            with pytest.raises(SerializationError) as info:
                conn.recv()
            got.append(info.value.frame)
            conn.send(SECOND)
            got.append(conn.recv())
    return got


async def echo_connection(conn: Any) -> None:
    async for frame in conn:
        await conn.send(frame)


async def echo_endpoint(endpoint: Any) -> None:
    while True:
        frame, address = await endpoint.recvfrom()
        await endpoint.sendto(frame, address)


async def _asyncio_exchange(address: str, codec: Any, contexts: Contexts) -> List[Any]:
    import framekit.asyncio

    server_ssl, client_ssl = contexts
    datagram = address.startswith(("udp", "unixgram"))
    handler = echo_endpoint if datagram else echo_connection
    server = await framekit.asyncio.serve(address, handler, codec, ssl=server_ssl)
    try:
        conn = await framekit.asyncio.connect(
            server.address, codec, ssl=client_ssl, serializer=JSON
        )
        async with conn:
            got: List[Any] = []
            await conn.send(FIRST)
            got.append(await conn.recv())
            conn.serializer = None  # the raw bad frame goes out as it is
            await conn.send(BAD)
            conn.serializer = JSON
            with pytest.raises(SerializationError) as info:
                await conn.recv()
            got.append(info.value.frame)
            await conn.send(SECOND)
            got.append(await conn.recv())
    finally:
        server.close()
        await server.wait_closed()
    return got


def asyncio_exchange(address: str, codec: Any, contexts: Contexts) -> List[Any]:
    """Run the exchange with framekit.asyncio.serve/connect; return what came back."""
    return asyncio.run(asyncio.wait_for(_asyncio_exchange(address, codec, contexts), TIMEOUT))


async def _anyio_exchange(address: str, codec: Any, contexts: Contexts) -> List[Any]:
    import anyio

    import framekit.anyio

    server_ssl, client_ssl = contexts
    datagram = address.startswith(("udp", "unixgram"))
    handler = echo_endpoint if datagram else echo_connection
    got: List[Any] = []
    with anyio.fail_after(TIMEOUT):
        server = await framekit.anyio.serve(address, handler, codec, ssl=server_ssl)
        async with server:
            conn = await framekit.anyio.connect(
                server.address, codec, ssl=client_ssl, serializer=JSON
            )
            async with conn:
                await conn.send(FIRST)
                got.append(await conn.recv())
                conn.serializer = None  # the raw bad frame goes out as it is
                await conn.send(BAD)
                conn.serializer = JSON
                with pytest.raises(SerializationError) as info:
                    await conn.recv()
                got.append(info.value.frame)
                await conn.send(SECOND)
                got.append(await conn.recv())
    return got


def anyio_exchange(backend: str) -> Callable[[str, Any, Contexts], List[Any]]:
    """Run the exchange with framekit.anyio.serve/connect on anyio's ``backend``."""

    def exchange(address: str, codec: Any, contexts: Contexts) -> List[Any]:
        import anyio

        result: List[Any] = anyio.run(_anyio_exchange, address, codec, contexts, backend=backend)
        return result

    return exchange


def toy_exchange(codec: Any) -> List[Any]:
    """The exchange over the toy transport of tests/toy_transport.py (a socketpair)."""
    a, b = socket.socketpair()

    def echo() -> None:
        with ToyConnection(b, codec) as conn:
            for frame in conn:
                conn.send(frame)

    server = threading.Thread(target=echo, daemon=True)
    server.start()
    a.settimeout(TIMEOUT)
    with ToyConnection(a, codec, serializer=JSON) as conn:
        got: List[Any] = []
        conn.send(FIRST)
        got.append(conn.recv())
        conn.serializer = None
        conn.send(BAD)
        conn.serializer = JSON
        with pytest.raises(SerializationError) as info:
            conn.recv()
        got.append(info.value.frame)
        conn.send(SECOND)
        got.append(conn.recv())
    server.join(TIMEOUT)
    assert not server.is_alive()
    return got


EXCHANGES = {
    "blocking": blocking_exchange,
    "asyncio": asyncio_exchange,
    "anyio-asyncio": anyio_exchange("asyncio"),
    "anyio-trio": anyio_exchange("trio"),
}


def run(mode: str, scheme: str, codec: Any, sock_dir: str, request: pytest.FixtureRequest) -> None:
    contexts: Contexts = (None, None)
    if scheme == "tls":
        contexts = request.getfixturevalue("tls_contexts")
    exchange: Callable[[str, Any, Contexts], List[Any]] = EXCHANGES[mode]
    assert exchange(address_of(scheme, sock_dir), codec, contexts) == [FIRST, BAD, SECOND]


# -- the matrix -----------------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("mode", sorted(EXCHANGES))
def test_length_prefixed(
    mode: str,
    scheme: str,
    LP: Callable[..., Any],
    sock_dir: str,
    request: pytest.FixtureRequest,
) -> None:
    run(mode, scheme, LP(4), sock_dir, request)


@pytest.mark.network
@pytest.mark.parametrize("codec", sorted(OTHER_CODECS))
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("mode", sorted(EXCHANGES))
def test_other_codecs(
    mode: str, scheme: str, codec: str, sock_dir: str, request: pytest.FixtureRequest
) -> None:
    run(mode, scheme, OTHER_CODECS[codec](), sock_dir, request)


@pytest.mark.network
def test_toy_transport_length_prefixed(LP: Callable[..., Any]) -> None:
    assert toy_exchange(LP(4)) == [FIRST, BAD, SECOND]


@pytest.mark.network
@pytest.mark.parametrize("codec", sorted(OTHER_CODECS))
def test_toy_transport_other_codecs(codec: str) -> None:
    assert toy_exchange(OTHER_CODECS[codec]()) == [FIRST, BAD, SECOND]


def test_toy_transport_is_small() -> None:
    """A new transport is a small file: the toy proves it (docs/architecture.md)."""
    path = os.path.join(os.path.dirname(__file__), "toy_transport.py")
    with open(path) as source:
        assert len(source.readlines()) < 80


def test_slip_round_trip() -> None:
    """The test's own codec is right before it is used to judge the transports."""
    codec = Slip()
    payloads = [b"", BAD, b"plain", END * 3, ESC * 3, ESC_END]
    wire = codec.encode_many(payloads)
    decoder = codec.decoder()
    frames = [f for i in range(len(wire)) for f in decoder.feed(wire[i : i + 1])]
    assert frames == payloads
    decoder.eof()
