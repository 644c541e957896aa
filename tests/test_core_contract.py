"""Every transport drives the connection core the same way.

A codec and a serializer defined here record every call made to them.  The
same input (good frames, a frame that does not deserialize, an oversized
frame, a good one after it, then a clean close) is sent to a server of every
transport; what the codec, its decoders and the serializer were asked, and
what the handler saw, must be the same sequence on all of them.  Read sizes
differ between transports (and between runs), so bytes given to a decoder are
compared joined, per decoder, and frames per decoder as one list.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any, Callable, Dict, List, Tuple

import pytest

import framekit
import framekit.asyncio as fa
from framekit.addresses import parse_address
from framekit.codecs.length_prefixed import LengthPrefixed as PureLengthPrefixed

TIMEOUT = 5.0
GOOD = [{"n": 1}, ["two", 2], "three"]
NOT_JSON = b"\xff not json"
AFTER = {"after": True}


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: List[Tuple[Any, ...]] = []

    def add(self, *event: Any) -> None:
        with self.lock:
            self.events.append(event)


class RecordingDecoder:
    def __init__(self, log: Log, inner: Any, number: int) -> None:
        self._log, self._inner, self._n = log, inner, number
        self._view: Any = None

    @property
    def pending(self) -> int:
        return self._inner.pending  # type: ignore[no-any-return]

    def _out(self, call: Callable[[], List[bytes]]) -> List[bytes]:
        try:
            frames = call()
        except framekit.FramingError as exc:
            self._log.add("frames", self._n, list(exc.frames))
            self._log.add("error", self._n, type(exc).__name__)
            raise
        self._log.add("frames", self._n, list(frames))
        return frames

    def feed(self, data: Any) -> List[bytes]:
        self._log.add("bytes", self._n, bytes(data))
        return self._out(lambda: self._inner.feed(data))

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        self._view = self._inner.get_buffer(sizehint)
        return self._view  # type: ignore[no-any-return]

    def buffer_updated(self, nbytes: int) -> List[bytes]:
        self._log.add("bytes", self._n, bytes(self._view[:nbytes]))
        return self._out(lambda: self._inner.buffer_updated(nbytes))

    def eof(self) -> None:
        self._log.add("eof", self._n)
        self._inner.eof()


class RecordingCodec:
    """LengthPrefixed(4, max_frame_size=100), every call recorded."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._inner = PureLengthPrefixed(4, max_frame_size=100)
        self._decoders = 0

    def decoder(self) -> RecordingDecoder:
        self._decoders += 1
        self._log.add("decoder", self._decoders)
        return RecordingDecoder(self._log, self._inner.decoder(), self._decoders)

    def encode(self, payload: Any, **kw: Any) -> bytes:
        self._log.add("encode", bytes(payload))
        return self._inner.encode(payload, **kw)

    def encode_many(self, payloads: Any, **kw: Any) -> bytes:
        payloads = list(payloads)
        self._log.add("encode_many", [bytes(p) for p in payloads])
        return self._inner.encode_many(payloads, **kw)

    def encode_parts(self, payload: Any, **kw: Any) -> Any:
        self._log.add("encode_parts", bytes(payload))
        return self._inner.encode_parts(payload, **kw)


class RecordingSerializer:
    def __init__(self, log: Log) -> None:
        self._log = log

    def dumps(self, obj: Any) -> bytes:
        self._log.add("dumps", json.dumps(obj))
        return json.dumps(obj).encode()

    def loads(self, data: bytes) -> Any:
        self._log.add("loads", bytes(data))
        return json.loads(data)


def normalise(events: List[Tuple[Any, ...]]) -> List[Tuple[Any, ...]]:
    """Join each decoder's bytes and frames (read sizes differ), keep everything else."""
    out: List[Tuple[Any, ...]] = []
    joined: Dict[int, bytes] = {}
    frames: Dict[int, List[bytes]] = {}
    for event in events:
        if event[0] == "bytes":
            joined[event[1]] = joined.get(event[1], b"") + event[2]
        elif event[0] == "frames":
            frames.setdefault(event[1], []).extend(event[2])
        else:
            out.append(event)
    out += [("all bytes", n, data) for n, data in sorted(joined.items())]
    out += [("all frames", n, f) for n, f in sorted(frames.items())]
    return out


def wire() -> bytes:
    codec = framekit.LengthPrefixed(4)
    parts = [codec.encode(json.dumps(obj).encode()) for obj in GOOD]
    parts.append(codec.encode(NOT_JSON))
    parts.append(codec.encode(b"x" * 200))  # above the recording codec's maximum
    parts.append(codec.encode(json.dumps(AFTER).encode()))
    return b"".join(parts)


def replies() -> bytes:
    codec = framekit.LengthPrefixed(4)
    return b"".join(codec.encode(json.dumps(o).encode()) for o in [*GOOD, AFTER])


def outcome_of(call: Callable[[], Any]) -> Any:
    try:
        return ("message", call())
    except (framekit.FramingError, framekit.SerializationError) as exc:
        return ("raised", type(exc).__name__)


# -- stream transports ---------------------------------------------------------------


def blocking_stream(log: Log, codec: Any, serializer: Any) -> List[Any]:
    seen: List[Any] = []
    done = threading.Event()

    def handler(conn: Any) -> None:
        try:
            while True:
                try:
                    result = outcome_of(conn.recv)
                except framekit.ConnectionClosed:
                    return
                seen.append(result)
                if result[0] == "message":
                    conn.send(result[1])
        finally:
            done.set()

    with framekit.serve("tcp://127.0.0.1:0", handler, codec, serializer=serializer) as server:
        server.start()
        with framekit.connect(server.address, timeout=TIMEOUT) as client:
            client.socket.sendall(wire())
            for _ in range(len(GOOD) + 1):
                client.recv()
            client.socket.shutdown(socket.SHUT_WR)
        assert done.wait(TIMEOUT)
    return seen


def asyncio_stream(log: Log, codec: Any, serializer: Any) -> List[Any]:
    seen: List[Any] = []

    async def main() -> None:
        done = asyncio.Event()

        async def handler(conn: Any) -> None:
            try:
                while True:
                    try:
                        result = ("message", await conn.recv())
                    except (framekit.FramingError, framekit.SerializationError) as exc:
                        result = ("raised", type(exc).__name__)
                    except framekit.ConnectionClosed:
                        return
                    seen.append(result)
                    if result[0] == "message":
                        await conn.send(result[1])
            finally:
                done.set()

        async with await fa.serve(
            "tcp://127.0.0.1:0", handler, codec, serializer=serializer
        ) as server:
            addr = parse_address(server.address)
            reader, writer = await asyncio.open_connection(addr.host, addr.port)
            writer.write(wire())
            await reader.readexactly(len(replies()))
            writer.close()
            await asyncio.wait_for(done.wait(), TIMEOUT)

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    return seen


def anyio_stream(backend: str) -> Callable[[Log, Any, Any], List[Any]]:
    """The exchange against framekit.anyio.serve on anyio's ``backend``."""

    def exchange(log: Log, codec: Any, serializer: Any) -> List[Any]:
        import anyio

        import framekit.anyio as fan

        seen: List[Any] = []

        async def main() -> None:
            done = anyio.Event()

            async def handler(conn: Any) -> None:
                try:
                    while True:
                        try:
                            result = ("message", await conn.recv())
                        except (framekit.FramingError, framekit.SerializationError) as exc:
                            result = ("raised", type(exc).__name__)
                        except framekit.ConnectionClosed:
                            return
                        seen.append(result)
                        if result[0] == "message":
                            await conn.send(result[1])
                finally:
                    done.set()

            with anyio.fail_after(TIMEOUT):
                server = await fan.serve("tcp://127.0.0.1:0", handler, codec, serializer=serializer)
                async with server:
                    addr = parse_address(server.address)
                    raw = await anyio.connect_tcp(addr.host or "", addr.port or 0)
                    await raw.send(wire())
                    expected = len(replies())
                    got = 0
                    while got < expected:
                        got += len(await raw.receive())
                    await raw.aclose()
                    await done.wait()

        anyio.run(main, backend=backend)
        return seen

    return exchange


# -- datagram transports -------------------------------------------------------------


def datagrams() -> List[bytes]:
    codec = framekit.LengthPrefixed(4)
    return [codec.encode(json.dumps(o).encode()) for o in GOOD] + [
        codec.encode(NOT_JSON),
        codec.encode(b"x" * 200),
        codec.encode(json.dumps(AFTER).encode()),
    ]


def blocking_datagram_exchange(log: Log, codec: Any, serializer: Any) -> List[Any]:
    seen: List[Any] = []
    server_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server_sock.bind(("127.0.0.1", 0))
    server_sock.settimeout(TIMEOUT)
    with (
        framekit.DatagramSocket(server_sock, codec, serializer=serializer) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        for datagram in datagrams():
            client.sendto(datagram, server_sock.getsockname())
            result = outcome_of(server.recvfrom)
            if result[0] == "message":
                seen.append(("message", result[1][0]))
                server.sendto(result[1][0], client.getsockname())
            else:
                seen.append(result)
    return seen


def asyncio_datagram_exchange(log: Log, codec: Any, serializer: Any) -> List[Any]:
    seen: List[Any] = []

    async def main() -> None:
        endpoint = await fa.open_datagram("udp://127.0.0.1:0", codec=codec, serializer=serializer)
        async with endpoint:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                for datagram in datagrams():
                    client.sendto(datagram, endpoint.local_address)
                    try:
                        message, _ = await endpoint.recvfrom()
                    except (framekit.FramingError, framekit.SerializationError) as exc:
                        seen.append(("raised", type(exc).__name__))
                        continue
                    seen.append(("message", message))
                    await endpoint.sendto(message, client.getsockname())

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    return seen


def anyio_datagram_exchange(backend: str) -> Callable[[Log, Any, Any], List[Any]]:
    """The exchange against a framekit.anyio datagram endpoint on anyio's ``backend``."""

    def exchange(log: Log, codec: Any, serializer: Any) -> List[Any]:
        import anyio

        import framekit.anyio as fan

        seen: List[Any] = []

        async def main() -> None:
            with anyio.fail_after(TIMEOUT):
                endpoint = await fan.open_datagram(
                    "udp://127.0.0.1:0", codec=codec, serializer=serializer
                )
                async with endpoint:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                        for datagram in datagrams():
                            client.sendto(datagram, endpoint.local_address)
                            try:
                                message, _ = await endpoint.recvfrom()
                            except (framekit.FramingError, framekit.SerializationError) as exc:
                                seen.append(("raised", type(exc).__name__))
                                continue
                            seen.append(("message", message))
                            await endpoint.sendto(message, client.getsockname())

        anyio.run(main, backend=backend)
        return seen

    return exchange


STREAMS = {
    "blocking": blocking_stream,
    "asyncio": asyncio_stream,
    "anyio-asyncio": anyio_stream("asyncio"),
    "anyio-trio": anyio_stream("trio"),
}
DATAGRAMS = {
    "blocking": blocking_datagram_exchange,
    "asyncio": asyncio_datagram_exchange,
    "anyio-asyncio": anyio_datagram_exchange("asyncio"),
    "anyio-trio": anyio_datagram_exchange("trio"),
}


def run(exchange: Callable[[Log, Any, Any], List[Any]]) -> Tuple[List[Any], List[Any]]:
    log = Log()
    seen = exchange(log, RecordingCodec(log), RecordingSerializer(log))
    return seen, normalise(log.events)


@pytest.mark.network
@pytest.mark.parametrize("kind", ["stream", "datagram"])
def test_every_transport_makes_the_same_calls(kind: str) -> None:
    exchanges = STREAMS if kind == "stream" else DATAGRAMS
    results = {name: run(exchange) for name, exchange in exchanges.items()}
    (first, (seen, calls)), *others = results.items()
    expected_seen = [("message", o) for o in GOOD] + [
        ("raised", "SerializationError"),
        ("raised", "FrameTooLarge" if kind == "stream" else "CorruptedFrame"),
        ("message", AFTER),
    ]
    assert seen == expected_seen, first
    assert ("loads", NOT_JSON) in calls
    for name, (other_seen, other_calls) in others:
        assert other_seen == seen, name
        assert other_calls == calls, (first, name)
