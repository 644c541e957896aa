"""Datagram transports (udp, unixgram): DatagramSocket, connect and datagram servers."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Callable, Iterator, List, Tuple

import pytest

import framekit
from framekit import serializers
from framekit._sockets import peer_name
from framekit.addresses import parse_address
from framekit.codecs.presets import PRESET_ARGS
from framekit.core.datagram import DatagramCore
from framekit.core.options import MAX_UDP_DATAGRAM, MAX_UNIX_DATAGRAM

from ..conftest import MQTT_PUBLISH, needs_ipv6
from .helpers import TIMEOUT, LineCodec, LogWatcher, connect_to, running

Pair = Tuple[socket.socket, socket.socket]


@pytest.fixture(params=["udp", "unixgram"])
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def bind(scheme: str, sock_dir: str) -> str:
    """An address for a datagram server to bind."""
    return "udp://127.0.0.1:0" if scheme == "udp" else f"unixgram://{sock_dir}/server.sock"


@pytest.fixture
def pair(scheme: str, sock_dir: str) -> Iterator[Pair]:
    """``(sender, receiver)``: two bound datagram sockets, the sender connected."""
    if scheme == "udp":
        family: int = socket.AF_INET
        addresses: Tuple[Any, Any] = (("127.0.0.1", 0), ("127.0.0.1", 0))
    else:
        family = socket.AF_UNIX
        addresses = (os.path.join(sock_dir, "tx.sock"), os.path.join(sock_dir, "rx.sock"))
    tx, rx = (socket.socket(family, socket.SOCK_DGRAM) for _ in range(2))
    with tx, rx:
        for sock, address in zip((tx, rx), addresses):
            sock.bind(address)
            sock.settimeout(TIMEOUT)
        tx.connect(rx.getsockname())
        yield tx, rx


def reply_upper(frame: Any, address: Any) -> Any:
    return frame.upper()


def test_connect_and_serve(bind: str, LP: Callable[..., Any]) -> None:
    with running(bind, reply_upper, LP(4)) as server, connect_to(server, LP(4)) as conn:
        assert isinstance(conn, framekit.DatagramSocket)
        conn.send(b"hello")
        assert conn.recv() == b"HELLO"
        conn.send_many([b"a", b"b", b"c"])  # one datagram, three frames, three replies
        assert sorted(conn.recv() for _ in range(3)) == [b"A", b"B", b"C"]


def test_frame_handler_gets_the_sender(bind: str, LP: Callable[..., Any]) -> None:
    seen = []

    class Handler(framekit.FrameHandler):
        def setup(self) -> None:
            is_datagram = isinstance(self.conn, framekit.DatagramSocket)
            seen.append(("setup", self.client_address, is_datagram))

        def handle_frame(self, frame: Any, address: Any = None) -> Any:
            seen.append((frame, address))
            return None if frame == b"no reply" else b"to " + frame

        def finish(self) -> None:
            seen.append("finish")

    with running(bind, Handler, LP(4)) as server, connect_to(server, LP(4)) as conn:
        conn.send(b"no reply")
        conn.send(b"you")
        assert conn.recv() == b"to you"
        me = conn.socket.getsockname()
    assert seen == [("setup", None, True), (b"no reply", me), (b"you", me), "finish"]


def test_recvfrom_and_sendto(pair: Pair, LP: Callable[..., Any], scheme: str) -> None:
    tx, rx = pair
    sender, receiver = framekit.DatagramSocket(tx, LP(4)), framekit.DatagramSocket(rx, LP(4))
    sender.send(b"ping")
    frame, address = receiver.recvfrom()
    assert frame == b"ping"
    assert address == tx.getsockname()
    url = parse_address(f"{scheme}://x:1" if scheme == "udp" else f"{scheme}:///x")
    as_url = framekit.addresses.address_from_sockaddr(url.scheme, address)
    for target in (address, as_url, as_url.url()):  # raw, Address, URL
        receiver.sendto(b"pong", target)
        assert sender.recv() == b"pong"


def test_send_many_packs_datagrams(pair: Pair, LP: Callable[..., Any]) -> None:
    tx, rx = pair
    sender = framekit.DatagramSocket(tx, LP(4), max_datagram_size=100)
    payloads = [bytes([65 + i]) * 30 for i in range(5)]  # 34-byte frames: 2 per datagram
    assert sender.send_many(payloads) == 3
    sizes = [len(rx.recv(1000)) for _ in range(3)]
    assert sizes == [68, 68, 34]
    assert sender.send_many(payloads, rx.getsockname()) == 3  # to an address
    receiver = framekit.DatagramSocket(rx, LP(4))
    assert [receiver.recv() for _ in range(5)] == payloads
    assert receiver.buffered == 0


def test_frame_too_large_raises_at_send(pair: Pair, LP: Callable[..., Any]) -> None:
    tx, rx = pair
    sender = framekit.DatagramSocket(tx, LP(4), max_datagram_size=100)
    with pytest.raises(framekit.FrameTooLarge, match="does not fit one datagram"):
        sender.send(b"x" * 97)
    with pytest.raises(framekit.FrameTooLarge):
        sender.send_many([b"small", b"x" * 97])  # nothing at all is sent
    sender.send(b"x" * 96)
    assert len(rx.recv(1000)) == 100


def test_default_limits(pair: Pair, scheme: str) -> None:
    tx, _ = pair
    expected = MAX_UDP_DATAGRAM if scheme == "udp" else MAX_UNIX_DATAGRAM
    assert framekit.DatagramSocket(tx).max_datagram_size == expected


BAD_DATAGRAMS = {
    "truncated": lambda codec: codec.encode(b"t" * 150),  # larger than the receiver's limit
    "trailing bytes": lambda codec: codec.encode(b"ok") + b"\x00\x01",
    "length says more": lambda codec: codec.header(100) + b"only ten!!",
    "length says less": lambda codec: codec.header(2) + b"ten bytes!",
    "oversized frame": lambda codec: codec.encode(b"x" * 80),
}


@pytest.mark.parametrize("kind", list(BAD_DATAGRAMS))
def test_bad_datagram_raises_and_socket_goes_on(
    kind: str, pair: Pair, LP: Callable[..., Any]
) -> None:
    tx, rx = pair
    codec = LP(4)
    tx.send(BAD_DATAGRAMS[kind](codec))
    tx.send(codec.encode_many([b"good", b"frames"]))
    receiver = framekit.DatagramSocket(rx, LP(4, max_frame_size=60), max_datagram_size=100)
    with pytest.raises(framekit.CorruptedFrame) as info:
        receiver.recv()
    assert info.value.address == tx.getsockname()
    assert info.value.frames == []  # the whole datagram is dropped
    if kind == "truncated":
        assert "larger than max_datagram_size" in str(info.value)
    assert receiver.recv() == b"good"
    assert receiver.recv() == b"frames"


def test_empty_datagram_carries_no_frame(pair: Pair, LP: Callable[..., Any]) -> None:
    tx, rx = pair
    tx.send(b"")
    tx.send(LP(4).encode(b"next"))
    assert framekit.DatagramSocket(rx, LP(4)).recv() == b"next"


def test_server_survives_bad_datagrams_and_handler_errors(
    bind: str, LP: Callable[..., Any], logs: LogWatcher
) -> None:
    def handler(frame: Any, address: Any) -> Any:
        if frame == b"boom":
            raise RuntimeError("handler broke")
        return frame

    with running(bind, handler, LP(4)) as server, connect_to(server, LP(4)) as conn:
        conn.socket.send(b"\x00\x00\x00\x09garbage")
        assert "malformed" in logs.wait_for("dropping a datagram").getMessage()
        conn.send(b"boom")
        logs.wait_for("handler failed", level=40)
        conn.send(b"fine")
        assert conn.recv() == b"fine"


def test_datagram_serializer(bind: str, LP: Callable[..., Any], logs: LogWatcher) -> None:
    json = serializers.JSON

    class Handler(framekit.FrameHandler):
        def handle_frame(self, frame: Any, address: Any = None) -> Any:
            return {"echo": frame}

    server = framekit.serve(bind, Handler, LP(4), serializer=json).start()
    with server, connect_to(server, LP(4), serializer=json) as conn:
        conn.send([1, "two"])
        assert conn.recv() == {"echo": [1, "two"]}
        conn.socket.send(LP(4).encode(b"{bad json"))
        logs.wait_for("dropping a datagram")
        conn.send(None)
        assert conn.recv() == {"echo": None}


def test_unbound_unix_sender_gets_no_reply(sock_dir: str, logs: LogWatcher) -> None:
    path = f"{sock_dir}/s.sock"
    anonymous = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with running(f"unixgram://{path}", reply_upper), anonymous:
        anonymous.sendto(framekit.LengthPrefixed().encode(b"hi"), path)
        logs.wait_for("cannot reply")


def test_shutdown_is_prompt_with_an_idle_datagram_server(bind: str) -> None:
    server = framekit.serve(bind, reply_upper).start()
    server.shutdown()
    assert server.socket.fileno() == -1
    assert not server._thread.is_alive()  # type: ignore[union-attr]


@needs_ipv6
def test_udp_over_ipv6(LP: Callable[..., Any]) -> None:
    with running("udp://[::1]:0", reply_upper, LP(2)) as server:
        assert server.address.startswith("udp://[::1]:")
        with connect_to(server, LP(2)) as conn:
            conn.send(b"six")
            assert conn.recv() == b"SIX"


def test_iteration(pair: Pair) -> None:
    tx, rx = pair
    framekit.DatagramSocket(tx).send_many([b"1", b"2"])
    frames = iter(framekit.DatagramSocket(rx))
    assert [next(frames), next(frames)] == [b"1", b"2"]


def test_rejects_a_stream_socket() -> None:
    with socket.socket() as sock, pytest.raises(ValueError, match="datagram socket"):
        framekit.DatagramSocket(sock)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(ValueError):
        framekit.DatagramSocket(sock, max_datagram_size=0)


def test_any_codec_implementing_the_interface(bind: str) -> None:
    with running(bind, reply_upper, LineCodec()) as server, connect_to(server, LineCodec()) as conn:
        conn.send_many([b"one", b"two"])
        assert sorted([conn.recv(), conn.recv()]) == [b"ONE", b"TWO"]
        conn.socket.send(b"unterminated")  # a malformed datagram in this framing
        conn.send(b"three")
        assert conn.recv() == b"THREE"


def test_mqtt_packets_with_prefix(pair: Pair, LP: Callable[..., Any]) -> None:
    tx, rx = pair
    codec = LP(**PRESET_ARGS["mqtt"])
    sender = framekit.DatagramSocket(tx, codec, max_datagram_size=12)
    receiver = framekit.DatagramSocket(rx, codec)
    sender.send(b"", prefix=b"\xc0")  # PINGREQ
    assert rx.recv(100) == b"\xc0\x00"
    sender.sendto(b"\x00\x03a/bhey", rx.getsockname(), prefix=b"\x30")  # PUBLISH a/b "hey"
    assert receiver.recv() == MQTT_PUBLISH
    # 10 + 2 bytes fit one 12-byte datagram, the last 2 need another
    assert sender.send_many([b"\x00\x03a/bhey", b"", b""], prefix=b"\x30") == 2
    assert [receiver.recv() for _ in range(3)] == [MQTT_PUBLISH, b"\x30\x00", b"\x30\x00"]
    assert sender.send_many([b""], rx.getsockname(), prefix=b"\xc0") == 1
    assert receiver.recv() == b"\xc0\x00"


def test_prefix_for_a_codec_without_it(pair: Pair) -> None:
    """None calls the codec as before; a prefix is the codec's own TypeError."""
    tx, rx = pair
    sender = framekit.DatagramSocket(tx, LineCodec())
    sender.send(b"plain", prefix=None)
    sender.send_many([b"one", b"two"], prefix=None)
    assert [rx.recv(100) for _ in range(2)] == [b"plain\n", b"one\ntwo\n"]
    with pytest.raises(TypeError, match="prefix"):
        sender.send(b"x", prefix=b"Q")
    with pytest.raises(TypeError, match="prefix"):
        sender.sendto(b"x", rx.getsockname(), prefix=b"Q")
    with pytest.raises(TypeError, match="prefix"):
        sender.send_many([b"x"], prefix=b"Q")


# --- regressions -------------------------------------------------------------


def test_a_unixgram_peer_that_does_not_read_stalls_nobody(sock_dir: str, logs: LogWatcher) -> None:
    """Replies to a peer whose queue is full are dropped, not waited for."""
    path = f"{sock_dir}/s.sock"
    request = framekit.LengthPrefixed().encode(b"x" * 1000)
    lazy = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with running(f"unixgram://{path}", lambda frame, address: frame) as server, lazy:
        lazy.bind("")  # an address to reply to, where nobody reads
        lazy.settimeout(TIMEOUT)
        for _ in range(60):  # far more than its queue holds (max_dgram_qlen)
            lazy.sendto(request, path)
        record = logs.wait_for("dropping a reply to")
        assert peer_name("unixgram", lazy.getsockname()) in record.getMessage()
        with framekit.connect(server.address, timeout=1.0) as good:
            started = time.monotonic()
            good.send(b"hi")
            assert good.recv() == b"hi"
            assert time.monotonic() - started < 0.5


def test_empty_datagram_flood_does_not_block_shutdown() -> None:
    server = framekit.serve("udp://127.0.0.1:0", lambda frame, address: frame).start()
    target = server.socket.getsockname()
    stop = threading.Event()

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while not stop.is_set():
                sender.sendto(b"", target)
                time.sleep(0.005)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        time.sleep(0.2)
        started = time.monotonic()
        server.shutdown(timeout=2.0)
        assert time.monotonic() - started < 1.0
        assert not server._thread.is_alive()  # type: ignore[union-attr]
    finally:
        stop.set()
        flooder.join(TIMEOUT)


def test_read_datagram_may_queue_no_frame(pair: Pair, LP: Callable[..., Any]) -> None:
    tx, rx = pair
    dsock = framekit.DatagramSocket(rx, LP(4))
    tx.send(b"")
    tx.send(LP(4).encode_many([b"a", b"b"]))
    assert dsock.read_datagram() == 0
    assert dsock.buffered == 0
    assert dsock.read_datagram() == 2
    assert [dsock.recv(), dsock.recv()] == [b"a", b"b"]


class Py39Timeout(OSError):
    """``socket.timeout`` as Python 3.9 has it: not ``TimeoutError``."""


def test_python39_socket_timeout_is_a_quiet_wake_up(
    monkeypatch: pytest.MonkeyPatch, logs: LogWatcher
) -> None:
    monkeypatch.setattr(socket, "timeout", Py39Timeout)
    real = DatagramCore.receive_datagram
    calls: List[int] = []

    def receive_datagram(self: Any, data: Any, address: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise Py39Timeout("timed out")
        return real(self, data, address)

    monkeypatch.setattr(DatagramCore, "receive_datagram", receive_datagram)
    with running("udp://127.0.0.1:0", reply_upper) as server, connect_to(server) as conn:
        conn.send(b"lost")
        conn.send(b"fine")
        assert conn.recv() == b"FINE"
    assert not logs.find("receive failed")
