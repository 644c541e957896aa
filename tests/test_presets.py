"""framekit.codecs.presets against bytes that independent implementations write or read.

Every codec test runs on both backends: the preset is rebuilt from
``presets.PRESET_ARGS`` with the backend's ``LengthPrefixed`` class (``LP``).
The independent implementations are, where a light one is on PyPI:

* protobuf: google.protobuf (``serialize_length_prefixed`` / ``_VarintBytes``
  write, ``parse_length_prefixed`` / ``_DecodeVarint`` read);
* Thrift: ``TFramedTransport`` over a ``TMemoryBuffer``, with ``TBinaryProtocol``;
* Kafka: kafka-python's ``KafkaProtocol`` (the client's own framing);
* MQTT: paho-mqtt, a real client talking to a framekit server on loopback;
* Postgres: pg8000, a real client talking to a framekit server on loopback.

gRPC has no light pure-Python implementation (grpcio frames in its C core), so
its tests use byte vectors laid out as ``doc/PROTOCOL-HTTP2.md`` specifies,
around message bytes that google.protobuf serialized.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
import struct
import threading
from typing import Any, Callable, Iterator, List, Optional

import pytest

from framekit import presets
from framekit.errors import CorruptedFrame, FrameTooLarge

from .codec_helpers import buffer_events, feed_events, frames_of, split

TIMEOUT = 10.0
MiB = 1024 * 1024

#: The type byte each preset's frames carry in the tests (its ``prefix``).
PREFIX = {"mqtt": b"\x30", "postgres": b"Q", "grpc": b"\x00"}

#: The largest payload each protocol's reference accepts by default, written
#: down from those references (not from presets.py) so that a changed limit fails.
MAX_PAYLOAD = {
    "protobuf-delimited": 64 * MiB,  # CodedInputStream's historical size limit
    "mqtt": 268_435_455,  # MQTT 3.1.1 2.2.3: largest Remaining Length
    "postgres": 0x3FFFFFFF - 1 - 4,  # PQ_LARGE_MESSAGE_LIMIT, less the length itself
    "postgres-startup": 10000,  # MAX_STARTUP_PACKET_LENGTH
    "thrift-framed": 16_384_000,  # TConfiguration.DEFAULT_MAX_FRAME_SIZE
    "kafka": 104_857_600,  # socket.request.max.bytes
    "grpc": 4 * MiB,  # GRPC_DEFAULT_MAX_RECV_MESSAGE_LENGTH
}


def make(LP: Callable[..., Any], name: str) -> Any:
    """The preset ``name`` built with the backend under test."""
    return LP(**presets.PRESET_ARGS[name])


def decode(codec: Any, data: bytes) -> List[bytes]:
    """Decode ``data`` whole, byte by byte and through ``get_buffer``; all must agree.

    Fails on any decoding error (including ``eof()`` with bytes left over).
    """
    runs = [
        feed_events(codec.decoder(), [data]),
        feed_events(codec.decoder(), split(data, range(1, len(data)))),
        buffer_events(codec.decoder(), split(data, range(0, len(data), 7))),
    ]
    for events in runs:
        assert [e for e in events if e[0] != "frame"] == []
    assert runs[1] == runs[0] and runs[2] == runs[0]
    return frames_of(runs[0])


# --- the module itself --------------------------------------------------------


def test_presets_table() -> None:
    assert set(presets.PRESETS) == set(presets.PRESET_ARGS) == set(MAX_PAYLOAD)
    for name, codec in presets.PRESETS.items():
        assert getattr(presets, name.upper().replace("-", "_")) is codec
        assert presets.get_preset(name) is codec


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_preset_args_build_the_same_codec(LP: Callable[..., Any], name: str) -> None:
    assert repr(make(LP, name)) == repr(presets.PRESETS[name])


def test_get_preset_forgives_case_and_underscores() -> None:
    assert presets.get_preset("THRIFT_FRAMED") is presets.THRIFT_FRAMED
    assert presets.get_preset(" Protobuf-Delimited ") is presets.PROTOBUF_DELIMITED


def test_get_preset_overrides() -> None:
    small = presets.get_preset("mqtt", max_frame_size=1024)
    assert small is not presets.MQTT
    assert small.max_frame_size == 1024
    assert small.length_offset == 1 and small.strip == 0 and small.varint_max_bytes == 4
    assert presets.MQTT.max_frame_size == 268_435_460
    with pytest.raises(TypeError):
        presets.get_preset("mqtt", no_such_argument=1)


def test_get_preset_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown preset 'http'") as info:
        presets.get_preset("http")
    for name in presets.PRESETS:
        assert name in str(info.value)


# --- every preset: round trip and size limit -----------------------------------


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_round_trip(LP: Callable[..., Any], name: str) -> None:
    codec = make(LP, name)
    prefix = PREFIX.get(name, b"")
    big = (bytes(range(256)) * 80)[: MAX_PAYLOAD[name]]  # 20 KiB, or the limit
    payloads = [b"", b"a", b"b" * 127, b"c" * 128, big]
    wire = codec.encode_many(payloads, prefix=prefix)
    assert wire == b"".join(codec.encode(p, prefix=prefix) for p in payloads)
    assert wire == b"".join(b"".join(codec.encode_parts(p, prefix=prefix)) for p in payloads)
    if codec.strip == 0:  # header kept: the caller sees the type byte and length
        expected = [codec.header(len(p), prefix=prefix) + p for p in payloads]
    else:
        expected = payloads
    assert decode(codec, wire) == expected


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_largest_accepted_frame(LP: Callable[..., Any], name: str) -> None:
    """The largest payload the protocol allows is accepted; one byte more is refused."""
    codec = make(LP, name)
    prefix = PREFIX.get(name, b"")
    header = codec.header(MAX_PAYLOAD[name], prefix=prefix)
    decoder = codec.decoder()
    assert decoder.feed(header) == []
    assert decoder.pending == len(header)  # waiting for the payload
    if name == "mqtt":  # no 4-byte Remaining Length can say more
        with pytest.raises(ValueError, match="at most 4 bytes"):
            codec.header(MAX_PAYLOAD[name] + 1, prefix=prefix)
        return
    with pytest.raises(FrameTooLarge):
        codec.decoder().feed(codec.header(MAX_PAYLOAD[name] + 1, prefix=prefix))


# --- protobuf -------------------------------------------------------------------


def _protobuf_messages() -> List[Any]:
    from google.protobuf import struct_pb2, wrappers_pb2

    nested = struct_pb2.Struct()
    nested.update({"name": "framekit", "sizes": [1, 2, 3], "inner": {"ok": True}})
    return [
        wrappers_pb2.StringValue(value=""),  # serializes to b"": a 0 size
        wrappers_pb2.StringValue(value="hello"),
        nested,
        wrappers_pb2.BytesValue(value=b"\x00" * 300),  # 2-byte size
        wrappers_pb2.BytesValue(value=bytes(range(256)) * 80),  # 3-byte size
    ]


def _protobuf_write_delimited(messages: List[Any]) -> bytes:
    """What protobuf's writeDelimitedTo writes, by protobuf's own code."""
    try:
        from google.protobuf.proto import serialize_length_prefixed
    except ImportError:  # protobuf < 5: the encoder writeDelimitedTo uses
        from google.protobuf.internal.encoder import _VarintBytes

        return b"".join(_VarintBytes(m.ByteSize()) + m.SerializeToString() for m in messages)
    out = io.BytesIO()
    for message in messages:
        serialize_length_prefixed(message, out)
    return out.getvalue()


def test_protobuf_reads_what_protobuf_wrote(LP: Callable[..., Any]) -> None:
    pytest.importorskip("google.protobuf")
    messages = _protobuf_messages()
    frames = decode(make(LP, "protobuf-delimited"), _protobuf_write_delimited(messages))
    assert [type(m).FromString(f) for m, f in zip(messages, frames)] == messages
    assert len(frames) == len(messages)


def test_protobuf_parses_what_framekit_wrote(LP: Callable[..., Any]) -> None:
    pytest.importorskip("google.protobuf")
    from google.protobuf.internal.decoder import _DecodeVarint

    messages = _protobuf_messages()
    wire = make(LP, "protobuf-delimited").encode_many(m.SerializeToString() for m in messages)
    assert wire == _protobuf_write_delimited(messages)
    pos = 0
    for message in messages:  # the way parseDelimitedFrom reads: varint, then the message
        size, pos = _DecodeVarint(wire, pos)
        assert type(message).FromString(wire[pos : pos + size]) == message
        pos += size
    assert pos == len(wire)
    try:
        from google.protobuf.proto import parse_length_prefixed
    except ImportError:  # protobuf < 5
        return
    stream = io.BytesIO(wire)
    assert [parse_length_prefixed(type(m), stream) for m in messages] == messages


def test_protobuf_size_varint_is_at_most_5_bytes(LP: Callable[..., Any]) -> None:
    pytest.importorskip("google.protobuf")
    from google.protobuf.internal.decoder import _DecodeVarint

    five = b"\x85\x80\x80\x80\x00"  # 5, written in 5 bytes: legal, if never minimal
    assert _DecodeVarint(five, 0) == (5, 5)
    assert make(LP, "protobuf-delimited").decoder().feed(five + b"12345") == [b"12345"]
    with pytest.raises(CorruptedFrame):
        make(LP, "protobuf-delimited").decoder().feed(b"\x85\x80\x80\x80\x80\x00")


# --- Thrift ---------------------------------------------------------------------


def _thrift_call(proto: Any, name: str, seqid: int, arg: str) -> None:
    from thrift.Thrift import TMessageType, TType

    proto.writeMessageBegin(name, TMessageType.CALL, seqid)
    proto.writeStructBegin("args")
    proto.writeFieldBegin("arg", TType.STRING, 1)
    proto.writeString(arg)
    proto.writeFieldEnd()
    proto.writeFieldStop()
    proto.writeStructEnd()
    proto.writeMessageEnd()


def _thrift_read_call(proto: Any) -> tuple[str, int, int, str]:
    from thrift.Thrift import TType

    name, mtype, seqid = proto.readMessageBegin()
    proto.readStructBegin()
    _, ftype, fid = proto.readFieldBegin()
    assert (ftype, fid) == (TType.STRING, 1)
    arg = proto.readString()
    proto.readFieldEnd()
    assert proto.readFieldBegin()[1] == TType.STOP
    proto.readStructEnd()
    proto.readMessageEnd()
    return name, mtype, seqid, arg


THRIFT_CALLS = [("ping", ""), ("echo", "framekit"), ("upload", "x" * 20000)]


def test_thrift_reads_what_tframedtransport_wrote(LP: Callable[..., Any]) -> None:
    pytest.importorskip("thrift")
    from thrift.protocol.TBinaryProtocol import TBinaryProtocol
    from thrift.Thrift import TMessageType
    from thrift.transport.TTransport import TFramedTransport, TMemoryBuffer

    sink = TMemoryBuffer()
    framed = TFramedTransport(sink)
    proto = TBinaryProtocol(framed)
    for seqid, (name, arg) in enumerate(THRIFT_CALLS):
        _thrift_call(proto, name, seqid, arg)
        framed.flush()
    framed.flush()  # an empty frame, which Thrift readers accept

    frames = decode(make(LP, "thrift-framed"), sink.getvalue())
    assert frames[-1] == b""
    calls = [_thrift_read_call(TBinaryProtocol(TMemoryBuffer(f))) for f in frames[:-1]]
    assert calls == [(n, TMessageType.CALL, i, a) for i, (n, a) in enumerate(THRIFT_CALLS)]


def test_tframedtransport_reads_what_framekit_wrote(LP: Callable[..., Any]) -> None:
    pytest.importorskip("thrift")
    from thrift.protocol.TBinaryProtocol import TBinaryProtocol
    from thrift.Thrift import TMessageType
    from thrift.transport.TTransport import TFramedTransport, TMemoryBuffer

    payloads = []
    for seqid, (name, arg) in enumerate(THRIFT_CALLS):
        buffer = TMemoryBuffer()
        _thrift_call(TBinaryProtocol(buffer), name, seqid, arg)
        payloads.append(buffer.getvalue())
    wire = make(LP, "thrift-framed").encode_many(payloads)

    proto = TBinaryProtocol(TFramedTransport(TMemoryBuffer(wire)))
    calls = [_thrift_read_call(proto) for _ in THRIFT_CALLS]
    assert calls == [(n, TMessageType.CALL, i, a) for i, (n, a) in enumerate(THRIFT_CALLS)]


def test_thrift_frame_size_limit_agrees(LP: Callable[..., Any]) -> None:
    """framekit refuses exactly the frame sizes TFramedTransport refuses by default."""
    TTransport = pytest.importorskip("thrift.transport.TTransport")
    limit = getattr(TTransport, "DEFAULT_MAX_FRAME_SIZE", None)
    if limit is None:
        pytest.skip("this thrift has no default frame size limit")

    def thrift_refuses(size: int) -> bool:
        framed = TTransport.TFramedTransport(TTransport.TMemoryBuffer(struct.pack("!i", size)))
        try:
            framed.readFrame()
        except TTransport.TTransportException as exc:
            return exc.type in (
                TTransport.TTransportException.SIZE_LIMIT,
                TTransport.TTransportException.NEGATIVE_SIZE,
            )
        except EOFError:  # size accepted, body missing
            return False
        return False

    def framekit_refuses(size: int) -> bool:
        try:
            make(LP, "thrift-framed").decoder().feed(struct.pack("!i", size))
        except FrameTooLarge:
            return True
        return False

    for size in (0, limit, limit + 1, -1):
        assert framekit_refuses(size) == thrift_refuses(size), size


# --- Kafka ----------------------------------------------------------------------


def _kafka_client() -> Any:
    pytest.importorskip("kafka")
    from kafka.protocol.parser import KafkaProtocol

    return KafkaProtocol(client_id="framekit-test")


KAFKA_TOPICS = [["fk-topic"], [f"topic-{i:04d}-" + "t" * 200 for i in range(100)]]


def _kafka_metadata_requests(client: Any) -> List[int]:
    from kafka.protocol.metadata import MetadataRequest

    return [client.send_request(MetadataRequest[0](topics=topics)) for topics in KAFKA_TOPICS]


def test_kafka_reads_kafka_python_requests(LP: Callable[..., Any]) -> None:
    client = _kafka_client()
    ids = _kafka_metadata_requests(client)
    wire = bytes(client.send_bytes())
    codec = make(LP, "kafka")
    frames = decode(codec, wire)
    # RequestHeader v1: api_key (Metadata = 3), api_version, correlation_id, client_id.
    head = struct.pack(">h", len(b"framekit-test")) + b"framekit-test"
    assert [f[:8] for f in frames] == [struct.pack(">hhi", 3, 0, i) for i in ids]
    assert all(f[8:23] == head for f in frames)
    assert len(frames[1]) > 20000
    assert codec.encode_many(frames) == wire


def _kafka_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _kafka_metadata_response_v0(topics: List[str]) -> bytes:
    """A MetadataResponse v0 body, laid out as the Kafka protocol guide says."""
    brokers = struct.pack(">i", 1) + struct.pack(">i", 7) + _kafka_string("localhost")
    brokers += struct.pack(">i", 9092)
    body = struct.pack(">i", len(topics))
    for topic in topics:  # error_code, name, no partitions
        body += struct.pack(">h", 0) + _kafka_string(topic) + struct.pack(">i", 0)
    return brokers + body


def test_kafka_python_reads_framekit_responses(LP: Callable[..., Any]) -> None:
    client = _kafka_client()
    ids = _kafka_metadata_requests(client)
    bodies = [_kafka_metadata_response_v0(topics) for topics in KAFKA_TOPICS]
    codec = make(LP, "kafka")
    wire = b"".join(codec.encode(struct.pack(">i", i) + b) for i, b in zip(ids, bodies))
    responses = []
    for chunk in split(wire, range(0, len(wire), 1000)):  # as a socket would deliver it
        responses.extend(client.receive_bytes(chunk))
    assert [cid for cid, _ in responses] == ids
    assert [bytes(r.encode()) for _, r in responses] == bodies


# --- loopback servers for the MQTT and Postgres clients ----------------------------


@contextlib.contextmanager
def serve_once(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    """Run ``handler(conn)`` for one connection to a loopback listener, in a thread.

    Yields the port.  On exit the thread is joined; an error it raised is
    re-raised here (it explains a client-side failure better than the client).
    """
    errors: List[BaseException] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def run() -> None:
            try:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    handler(conn)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, name="preset-server")
        thread.start()
        try:
            yield listener.getsockname()[1]
        finally:
            thread.join(TIMEOUT)
            assert not thread.is_alive(), "the server thread did not finish"
            if errors:
                raise errors[0]


def read_frames(conn: socket.socket, decoder: Any, count: Optional[int]) -> List[bytes]:
    """Receive until ``count`` frames arrived (``None``: until the peer closes).

    Receives in place (``recv_into(get_buffer())``), as a transport does.
    """
    frames: List[bytes] = []
    for _ in range(10000):
        if count is not None and len(frames) >= count:
            return frames
        view = decoder.get_buffer()
        n = conn.recv_into(view)
        del view
        if n == 0:
            decoder.eof()
            assert count is None, f"closed after {len(frames)} of {count} frames"
            return frames
        frames.extend(decoder.buffer_updated(n))
    raise AssertionError("too many reads")


# --- MQTT -----------------------------------------------------------------------


def test_mqtt_spec_vectors(LP: Callable[..., Any]) -> None:
    """Fixed headers quoted from MQTT 3.1.1 (3.12 PINGREQ, 3.13 PINGRESP, 3.2
    CONNACK) and the Remaining Length table of 2.2.3."""
    codec = make(LP, "mqtt")
    assert codec.encode(b"", prefix=b"\xc0") == b"\xc0\x00"
    assert codec.encode(b"", prefix=b"\xd0") == b"\xd0\x00"
    assert codec.encode(b"\x00\x00", prefix=b"\x20") == b"\x20\x02\x00\x00"
    table = {
        0: b"\x00",
        127: b"\x7f",
        128: b"\x80\x01",
        16_383: b"\xff\x7f",
        16_384: b"\x80\x80\x01",
        2_097_151: b"\xff\xff\x7f",
        2_097_152: b"\x80\x80\x80\x01",
        268_435_455: b"\xff\xff\xff\x7f",
    }
    for size, field in table.items():
        assert codec.header(size, prefix=b"\x30") == b"\x30" + field
    assert decode(codec, b"\xc0\x00\xd0\x00\x20\x02\x00\x00") == [
        b"\xc0\x00",
        b"\xd0\x00",
        b"\x20\x02\x00\x00",
    ]


def test_mqtt_fifth_length_byte_is_malformed(LP: Callable[..., Any]) -> None:
    decoder = make(LP, "mqtt").decoder()
    with pytest.raises(CorruptedFrame) as info:
        decoder.feed(b"\xc0\x00\x30\xff\xff\xff\xff\x01")
    assert info.value.frames == [b"\xc0\x00"]


@pytest.mark.network
def test_mqtt_with_paho_client(LP: Callable[..., Any]) -> None:
    """paho-mqtt connects to a framekit server, publishes, receives a PUBLISH."""
    mqtt = pytest.importorskip("paho.mqtt.client")
    codec = make(LP, "mqtt")
    down = b"x" * 300  # a 2-byte Remaining Length towards paho
    up = bytes(range(256)) * 80  # a 3-byte one from paho
    received: List[bytes] = []

    def broker(conn: socket.socket) -> None:
        decoder = codec.decoder()
        received.extend(read_frames(conn, decoder, 1))  # CONNECT
        conn.sendall(codec.encode(b"\x00\x00", prefix=b"\x20"))  # CONNACK, accepted
        conn.sendall(codec.encode(b"\x00\x07fk/down" + down, prefix=b"\x30"))  # PUBLISH
        received.extend(read_frames(conn, decoder, None))

    events: List[Any] = []
    with serve_once(broker) as port:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="framekit-test")
        client.on_connect = lambda _c, _u, _f, reason, _p: events.append(("connack", reason))
        client.on_message = lambda _c, _u, msg: events.append((msg.topic, msg.payload))
        client.connect("127.0.0.1", port, keepalive=30)
        try:
            for _ in range(200):
                if len(events) >= 2:
                    break
                client.loop(timeout=0.05)
            client.publish("fk/up", up)
            client.publish("fk/up", b"small")
            for _ in range(200):  # flush both before DISCONNECT
                if not client.want_write():
                    break
                client.loop(timeout=0.05)
        finally:
            client.disconnect()  # sends DISCONNECT and closes the socket

    assert [e[0] for e in events] == ["connack", "fk/down"]
    assert not events[0][1].is_failure
    assert events[1][1] == down
    connect, publish, small, disconnect = received
    assert connect[0] == 0x10 and connect[2:9] == b"\x00\x04MQTT\x04"
    assert connect.endswith(b"\x00\x0dframekit-test")
    # 2 + 5 + 20480 = 20487 = 0x07 + 0x20 * 128 + 1 * 128**2: Remaining Length 87 A0 01.
    assert publish == b"\x30\x87\xa0\x01\x00\x05fk/up" + up
    assert small == b"\x30\x0c\x00\x05fk/upsmall"
    assert disconnect == b"\xe0\x00"


# --- Postgres -------------------------------------------------------------------


def test_postgres_spec_vectors(LP: Callable[..., Any]) -> None:
    """Messages laid out as in the PostgreSQL "Message Formats" section."""
    codec = make(LP, "postgres")
    query = b"Q\x00\x00\x00\x0dSELECT 1\x00"
    sync = b"S\x00\x00\x00\x04"
    terminate = b"X\x00\x00\x00\x04"
    ready = b"Z\x00\x00\x00\x05I"
    assert codec.encode(b"SELECT 1\x00", prefix=b"Q") == query
    assert codec.encode(b"", prefix=b"S") == sync
    assert decode(codec, query + sync + ready + terminate) == [query, sync, ready, terminate]
    with pytest.raises(CorruptedFrame):  # the server's "invalid message length"
        make(LP, "postgres").decoder().feed(b"Q\x00\x00\x00\x03")

    startup = make(LP, "postgres-startup")
    ssl_request = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # 80877103
    assert startup.encode(struct.pack(">i", 80877103)) == ssl_request
    assert decode(startup, ssl_request) == [ssl_request]


def _pg(codec: Any, kind: bytes, body: bytes) -> bytes:
    return codec.encode(body, prefix=kind)


@pytest.mark.network
def test_postgres_with_pg8000_client(LP: Callable[..., Any]) -> None:
    """pg8000 asks for SSL, logs in to a framekit server, runs a query, hangs up."""
    native = pytest.importorskip("pg8000.native")
    codec = make(LP, "postgres")
    startup_codec = make(LP, "postgres-startup")
    big = "v" * 100_000
    received: List[bytes] = []

    def server(conn: socket.socket) -> None:
        first = startup_codec.decoder()
        received.extend(read_frames(conn, first, 1))  # SSLRequest
        conn.sendall(b"N")  # no SSL: the one unframed message of the protocol
        received.extend(read_frames(conn, first, 1))  # StartupMessage
        assert first.pending == 0
        conn.sendall(
            _pg(codec, b"R", struct.pack(">i", 0))  # AuthenticationOk
            + _pg(codec, b"S", b"client_encoding\x00UTF8\x00")  # ParameterStatus
            + _pg(codec, b"K", struct.pack(">ii", 4242, 77))  # BackendKeyData
            + _pg(codec, b"Z", b"I")  # ReadyForQuery, idle
        )
        decoder = codec.decoder()
        received.extend(read_frames(conn, decoder, 1))  # the query
        columns = [(b"n", 23, 4), (b"t", 25, -1)]  # int4, text
        description = struct.pack(">h", len(columns)) + b"".join(
            name + b"\x00" + struct.pack(">ihihih", 0, 0, oid, size, -1, 0)
            for name, oid, size in columns
        )
        row = struct.pack(">hi", 2, 1) + b"7" + struct.pack(">i", len(big)) + big.encode()
        conn.sendall(
            _pg(codec, b"T", description)  # RowDescription
            + _pg(codec, b"D", row)  # DataRow
            + _pg(codec, b"C", b"SELECT 1\x00")  # CommandComplete
            + _pg(codec, b"Z", b"I")
        )
        received.extend(read_frames(conn, decoder, None))  # Terminate, then EOF

    with serve_once(server) as port:
        conn = native.Connection("fk-user", host="127.0.0.1", port=port, timeout=TIMEOUT)
        try:
            rows = conn.run("SELECT n, t FROM fk")
        finally:
            conn.close()

    assert rows == [[7, big]]
    ssl_request, startup, query, terminate = received
    assert ssl_request == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # 8, then 80877103
    # StartupMessage: length (counts itself), protocol 3.0, then name/value pairs.
    assert struct.unpack(">ii", startup[:8]) == (len(startup), 196608)
    assert b"user\x00fk-user\x00" in startup and startup.endswith(b"\x00\x00")
    sql = b"SELECT n, t FROM fk\x00"
    assert query == b"Q" + struct.pack(">i", 4 + len(sql)) + sql
    assert terminate == b"X\x00\x00\x00\x04"


# --- gRPC -----------------------------------------------------------------------


def test_grpc_length_prefixed_messages(LP: Callable[..., Any]) -> None:
    """Length-Prefixed-Message (doc/PROTOCOL-HTTP2.md): Compressed-Flag (1 byte),
    Message-Length (4 bytes, big endian), Message.  The message bytes come from
    google.protobuf; the canonical helloworld ``HelloRequest{name: "world"}`` has
    the same encoding as ``StringValue{value: "world"}`` (field 1, a string)."""
    wrappers_pb2 = pytest.importorskip("google.protobuf.wrappers_pb2")
    codec = make(LP, "grpc")
    hello = wrappers_pb2.StringValue(value="world").SerializeToString()
    assert hello == b"\x0a\x05world"
    plain = b"\x00\x00\x00\x00\x07\x0a\x05world"
    assert codec.encode(hello, prefix=b"\x00") == plain

    # A compressed message (grpc-encoding: gzip) carries flag 1 in the prefix.
    big = wrappers_pb2.StringValue(value="world " * 1000).SerializeToString()
    packed = gzip.compress(big)
    compressed = b"\x01" + struct.pack(">I", len(packed)) + packed
    assert codec.encode(packed, prefix=b"\x01") == compressed

    frames = decode(codec, plain + compressed + plain)
    assert frames == [plain, compressed, plain]
    flag, body = frames[1][0], frames[1][5:]
    assert flag == 1 and gzip.decompress(body) == big
    assert wrappers_pb2.StringValue.FromString(frames[0][5:]).value == "world"
