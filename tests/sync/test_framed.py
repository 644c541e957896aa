"""FramedSocket over real stream sockets (TCP loopback and Unix), on both backends."""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, List, Tuple

import pytest

import framekit
from framekit import serializers
from framekit.codecs.presets import PRESET_ARGS
from framekit.core.options import VECTORED_MIN_SIZE
from framekit.sync.connection import FramedSocket

from ..conftest import MQTT_PUBLISH, PG_QUERY
from .helpers import LineCodec, connect_to, join, running, start_thread, tcp_pair, unix_pair

Pair = Tuple[socket.socket, socket.socket]


def test_send_and_recv(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    a, b = stream_pair
    sender, receiver = FramedSocket(a, LP(4)), FramedSocket(b, LP(4))
    sender.send(b"hello")
    sender.send(bytearray(b"world"))
    sender.send(memoryview(b"!"))
    sender.send(b"")
    assert [receiver.recv() for _ in range(4)] == [b"hello", b"world", b"!", b""]
    assert receiver.codec is not None and receiver.socket is b


def test_default_codec_is_4_byte_length_prefix(stream_pair: Pair) -> None:
    a, b = stream_pair
    FramedSocket(a).send(b"abc")
    assert b.recv(7) == b"\x00\x00\x00\x03abc"


def test_iteration_stops_at_clean_eof(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    a, b = stream_pair
    FramedSocket(a, LP(2)).send_many([b"1", b"22", b"333"])
    a.close()
    receiver = FramedSocket(b, LP(2))
    assert list(receiver) == [b"1", b"22", b"333"]
    with pytest.raises(framekit.ConnectionClosed):
        receiver.recv()
    with pytest.raises(ConnectionError):  # ConnectionClosed is a ConnectionError, again
        receiver.recv()
    assert list(receiver) == []


def test_one_recv_serves_many_frames(LP: Callable[..., Any]) -> None:
    a, b = unix_pair()
    counting = CountingSocket(b)
    with a, counting:
        frames = [os.urandom(i % 50) for i in range(2000)]
        FramedSocket(a, LP(4)).send_many(frames)
        a.close()
        receiver = FramedSocket(counting, LP(4))
        got = [receiver.recv() for _ in range(1000)]
        got += list(receiver)
        assert got == frames
        assert 2 <= counting.reads <= 3  # all of it, then EOF


def test_mixing_recv_and_iteration_loses_nothing(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    a, b = stream_pair
    frames = [b"%d" % i for i in range(101)]
    FramedSocket(a, LP(1)).send_many(frames)
    a.close()
    receiver = FramedSocket(b, LP(1))
    got = [receiver.recv()]
    for frame in receiver:
        got.append(frame)
        if len(got) == 10:
            break
    got.append(receiver.recv())
    for frame in receiver:
        got.append(frame)
        got.append(receiver.recv())  # recv() inside the loop takes the next frame
    assert got == frames


def test_sender_writing_one_byte_at_a_time(LP: Callable[..., Any]) -> None:
    """Each byte is a separate send; the receiver sees whole frames only."""
    a, b = unix_pair()
    with a, b:
        codec = LP(4)
        wire = codec.encode_many([b"first", b"", b"third frame"])
        receiver = FramedSocket(b, codec)
        b.setblocking(False)
        got: List[bytes] = []
        for i in range(len(wire)):
            a.send(wire[i : i + 1])
            try:
                got.append(receiver.recv())
            except BlockingIOError:  # nothing lost: the next byte continues the frame
                continue
        assert got == [b"first", b"", b"third frame"]


def test_tcp_sender_writing_one_byte_at_a_time(LP: Callable[..., Any]) -> None:
    a, b = tcp_pair()
    with a, b:
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        codec = LP(2)
        frames = [os.urandom(n) for n in (0, 1, 7, 300)]
        wire = codec.encode_many(frames)

        def dribble() -> None:
            for i in range(len(wire)):
                a.sendall(wire[i : i + 1])
            a.shutdown(socket.SHUT_WR)

        thread = start_thread(dribble)
        assert list(FramedSocket(b, codec)) == frames
        join(thread)


def test_one_mib_frames(LP: Callable[..., Any]) -> None:
    a, b = tcp_pair()
    with a, b:
        frames = [os.urandom(1 << 20), b"small", os.urandom((1 << 20) + 3)]
        sender = FramedSocket(a, LP(4))
        thread = start_thread(lambda: [sender.send(f) for f in frames])
        receiver = FramedSocket(b, LP(4))
        assert [receiver.recv() for _ in frames] == frames
        join(thread)


def test_timeout_then_successful_recv(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    a, b = stream_pair
    codec = LP(4)
    wire = codec.encode(b"split across a timeout") + codec.encode(b"next")
    receiver = FramedSocket(b, codec)
    a.sendall(wire[:9])
    b.settimeout(0.05)
    with pytest.raises(socket.timeout):
        receiver.recv()
    b.settimeout(5)
    a.sendall(wire[9:])
    assert receiver.recv() == b"split across a timeout"
    assert receiver.recv() == b"next"


def test_eof_mid_frame_raises_incomplete_frame(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    a, b = stream_pair
    codec = LP(4)
    a.sendall(codec.encode(b"whole") + codec.encode(b"0123456789")[:7])
    a.close()
    receiver = FramedSocket(b, codec)
    assert receiver.recv() == b"whole"
    with pytest.raises(framekit.IncompleteFrame) as info:
        receiver.recv()
    assert info.value.missing == 7
    assert "7 bytes cut off" in str(info.value)
    with pytest.raises(framekit.ConnectionClosed):
        receiver.recv()


def test_half_close(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    """The peer shuts down its sending side; the reply still travels the other way."""
    a, b = stream_pair
    client, server = FramedSocket(a, LP(4)), FramedSocket(b, LP(4))
    client.send_many([b"a", b"b", b"c"])
    a.shutdown(socket.SHUT_WR)
    received = list(server)
    server.send(b"got %d" % len(received))
    assert received == [b"a", b"b", b"c"]
    assert client.recv() == b"got 3"


def test_frames_before_an_oversized_frame_are_delivered(
    stream_pair: Pair, LP: Callable[..., Any]
) -> None:
    a, b = stream_pair
    big = LP(4)  # the sender may send what the receiver refuses
    a.sendall(big.encode_many([b"one", b"two", b"x" * 200, b"three"]))
    receiver = FramedSocket(b, LP(4, max_frame_size=100))
    assert receiver.recv() == b"one"
    assert receiver.recv() == b"two"
    with pytest.raises(framekit.FrameTooLarge) as info:
        receiver.recv()
    assert info.value.frames == []  # delivered already, not to be delivered twice
    # The frame behind the bad one is decoded although the peer sends nothing more.
    assert receiver.recv() == b"three"


def test_corrupted_stream_stays_refused(LP: Callable[..., Any]) -> None:
    a, b = unix_pair()
    with a, b:
        codec = LP(8)
        a.sendall(codec.encode(b"good") + b"\xff" * 8 + codec.encode(b"after"))
        receiver = FramedSocket(b, codec)
        assert [frame for frame in _until_error(receiver)] == [b"good"]
        with pytest.raises(framekit.CorruptedFrame, match="negative length"):
            receiver.recv()
        with pytest.raises(framekit.CorruptedFrame):
            receiver.recv()


def _until_error(fs: FramedSocket) -> List[bytes]:
    frames = []
    for _ in range(10):
        try:
            frames.append(fs.recv())
        except framekit.FramingError:
            break
    else:
        pytest.fail("no error raised")
    return frames


def test_error_is_raised_from_iteration_after_its_frames(LP: Callable[..., Any]) -> None:
    a, b = unix_pair()
    with a, b:
        a.sendall(LP(4).encode_many([b"a", b"b", b"c" * 50]))
        receiver = FramedSocket(b, LP(4, max_frame_size=20))
        got = []
        with pytest.raises(framekit.FrameTooLarge):
            for frame in receiver:
                got.append(frame)
        assert got == [b"a", b"b"]


def test_serializer_round_trip_and_bad_frame(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    a, b = stream_pair
    sender = FramedSocket(a, LP(4), serializer=serializers.JSON)
    receiver = FramedSocket(b, LP(4), serializer=serializers.JSON)
    sender.send({"n": 1, "s": "é"})
    a.sendall(LP(4).encode(b"{not json"))
    sender.send_many([[1, 2], None])
    assert receiver.recv() == {"n": 1, "s": "é"}
    with pytest.raises(framekit.SerializationError) as info:
        receiver.recv()
    assert info.value.frame == b"{not json"
    assert receiver.recv() == [1, 2]  # the connection is still usable
    a.close()
    assert list(receiver) == [None]


def test_serializer_failure_on_send(stream_pair: Pair) -> None:
    a, _ = stream_pair
    with pytest.raises(framekit.SerializationError):
        FramedSocket(a, serializer=serializers.JSON).send(object())


def test_any_codec_implementing_the_interface(stream_pair: Pair) -> None:
    a, b = stream_pair
    FramedSocket(a, LineCodec()).send_many([b"first line", b"second"])
    a.sendall(b"partial")
    a.close()
    receiver = FramedSocket(b, LineCodec())
    assert receiver.recv() == b"first line"
    assert receiver.recv() == b"second"
    with pytest.raises(framekit.IncompleteFrame):
        receiver.recv()


class CountingSocket(socket.socket):
    """A real socket that records its send calls, and can send less than asked."""

    def __init__(self, sock: socket.socket, partial: int = 0) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.calls: List[Tuple[str, Any]] = []
        self.partial = partial
        self.reads = 0

    def recv_into(self, buffer: Any, *args: Any) -> int:
        self.reads += 1
        return super().recv_into(buffer, *args)

    def sendall(self, data: Any, *args: Any) -> None:
        self.calls.append(("sendall", data))
        super().sendall(data, *args)

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        buffers = list(buffers)
        self.calls.append(("sendmsg", buffers))
        if self.partial:  # send at most `partial` bytes, as a full socket buffer would
            joined = b"".join(bytes(x) for x in buffers)[: self.partial]
            return super().sendmsg([joined], *args)
        return super().sendmsg(buffers, *args)


def test_large_payload_is_sent_vectored_without_copy(LP: Callable[..., Any]) -> None:
    a, b = unix_pair()
    counting = CountingSocket(a)
    with counting, b:
        payload = os.urandom(VECTORED_MIN_SIZE)
        FramedSocket(counting, LP(4)).send(payload)
        [(call, buffers)] = counting.calls
        assert call == "sendmsg"
        assert buffers[1] is payload
        assert FramedSocket(b, LP(4)).recv() == payload


def test_partial_sendmsg_is_completed(LP: Callable[..., Any]) -> None:
    a, b = unix_pair()
    counting = CountingSocket(a, partial=1000)
    with counting, b:
        payload = os.urandom(3 * VECTORED_MIN_SIZE)
        receiver = FramedSocket(b, LP(4))
        FramedSocket(counting, LP(4)).send(payload)
        assert len(counting.calls) > 2
        assert receiver.recv() == payload


def test_send_many_is_one_sendall(LP: Callable[..., Any]) -> None:
    a, b = unix_pair()
    counting = CountingSocket(a)
    with counting, b:
        FramedSocket(counting, LP(4)).send_many([b"x"] * 100)
        assert [call for call, _ in counting.calls] == ["sendall"]
        assert [FramedSocket(b, LP(4)).recv() for _ in range(1)] == [b"x"]


def test_sends_from_many_threads_never_interleave(LP: Callable[..., Any]) -> None:
    a, b = unix_pair()
    with a, b:
        sender = FramedSocket(a, LP(4))
        payloads = [bytes([i]) * (VECTORED_MIN_SIZE + i) for i in range(4)]

        def blast(payload: bytes) -> None:
            for _ in range(20):
                sender.send(payload)

        threads = [start_thread(blast, p) for p in payloads]
        receiver = FramedSocket(b, LP(4))
        got = [receiver.recv() for _ in range(80)]
        for thread in threads:
            join(thread)
        assert sorted(got) == sorted(payloads * 20)


def test_rejects_a_datagram_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(ValueError):
        FramedSocket(sock)


def test_close_and_context_manager(stream_pair: Pair) -> None:
    a, _ = stream_pair
    with FramedSocket(a) as fs:
        assert "FramedSocket" in repr(fs)
    assert a.fileno() == -1
    fs.close()  # again: no error


# -- prefix=: protocols with bytes before the length field ------------------------------


def test_postgres_messages_with_prefix(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    a, b = stream_pair
    codec = LP(**PRESET_ARGS["postgres"])
    sender, receiver = FramedSocket(a, codec), FramedSocket(b, codec)
    sender.send(b"SELECT 1\x00", prefix=b"Q")
    assert b.recv(100) == PG_QUERY  # the very bytes a PostgreSQL client sends
    big = os.urandom(VECTORED_MIN_SIZE + 1)  # framed by encode_parts, sent vectored
    sender.send(big, prefix=b"d")
    sender.send_many([b"", b"SELECT 1\x00"], prefix=b"Q")
    assert receiver.recv() == b"d" + (len(big) + 4).to_bytes(4, "big") + big
    assert [receiver.recv() for _ in range(2)] == [b"Q\x00\x00\x00\x04", PG_QUERY]
    with pytest.raises(ValueError, match="prefix"):
        sender.send(b"SELECT 1\x00")  # the codec's own error: the preset needs its type byte


def test_mqtt_packets_with_prefix_through_a_server(LP: Callable[..., Any]) -> None:
    codec = LP(**PRESET_ARGS["mqtt"])

    def broker(conn: FramedSocket) -> None:
        for packet in conn:  # small packets: a 1-byte remaining length
            kind, body = packet[:1], packet[2:]
            if kind == b"\xc0":  # PINGREQ -> PINGRESP
                conn.send(b"", prefix=b"\xd0")
            else:  # PUBLISH: back to the sender, QoS 0
                conn.send_many([body], prefix=kind)

    with running("tcp://127.0.0.1:0", broker, codec) as server, connect_to(server, codec) as conn:
        conn.send(b"", prefix=b"\xc0")  # PINGREQ
        conn.send_many([b"\x00\x03a/bhey", b"\x00\x01c"], prefix=b"\x30")  # 2 PUBLISH
        assert [conn.recv() for _ in range(3)] == [b"\xd0\x00", MQTT_PUBLISH, b"0\x03\x00\x01c"]


def test_prefix_with_a_serializer(stream_pair: Pair, LP: Callable[..., Any]) -> None:
    a, b = stream_pair
    codec = LP(**PRESET_ARGS["grpc"])
    FramedSocket(a, codec, serializer=serializers.JSON).send([1], prefix=b"\x00")
    assert FramedSocket(b, codec).recv() == b"\x00\x00\x00\x00\x03[1]"


def test_prefix_for_a_codec_without_it(stream_pair: Pair) -> None:
    """None calls the codec as before; a prefix is the codec's own TypeError."""
    a, b = stream_pair
    sender = FramedSocket(a, LineCodec())
    sender.send(b"plain", prefix=None)
    sender.send_many([b"one", b"two"], prefix=None)
    assert b.recv(100) == b"plain\none\ntwo\n"
    with pytest.raises(TypeError, match="prefix"):
        sender.send(b"x", prefix=b"Q")
    with pytest.raises(TypeError, match="prefix"):
        sender.send(b"x" * VECTORED_MIN_SIZE, prefix=b"Q")
    with pytest.raises(TypeError, match="prefix"):
        sender.send_many([b"x"], prefix=b"Q")
