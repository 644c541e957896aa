"""Named :class:`~framekit.LengthPrefixed` codecs for real protocols.

Design notes
------------
A preset is nothing but a set of ``LengthPrefixed`` arguments, written down once
with the reference it comes from.  The arguments live in :data:`PRESET_ARGS`
(plain, read-only mappings) and the constants are built from them with the
selected backend, so the tests build the very same configuration with either
backend class and check it against bytes written or read by an independent
implementation of each protocol.

Which bytes the decoder returns follows what a receiver needs.  Where the
header carries information (MQTT's packet type and flags, Postgres' message
type, gRPC's compressed flag) the whole frame is kept (``strip=0``) and the
caller reads it from ``frame[0]``; when encoding, that byte is the ``prefix``
argument: ``POSTGRES.encode(b"SELECT 1\\0", prefix=b"Q")``.  Where the header
is only a length (protobuf, Thrift, Kafka) it is stripped.

``max_frame_size`` counts the whole frame, header included.  Each preset sets it
to the largest header plus the payload limit that the protocol or its reference
implementation enforces by default, so a frame that peer would accept is never
refused here, and nothing much larger is ever buffered.  Lower it for a service
that expects small messages: ``get_preset("mqtt", max_frame_size=65536)``.

Presets
-------
Each constant is its name upper-cased, with ``_`` for ``-``.

=====================  ===============================================  ==============
name                   wire layout                                      max_frame_size
=====================  ===============================================  ==============
protobuf-delimited     varint size (unsigned LEB128, at most 5 bytes),  64 MiB + 4
                       then the message; size stripped
mqtt                   1 byte packet type and flags, then the           268435455 + 5
                       Remaining Length as a Variable Byte Integer
                       (at most 4 bytes), then the rest; header kept
postgres               1 byte message type, then an Int32 length that   1 GiB - 1
                       counts itself but not the type byte, then the
                       body; header kept
postgres-startup       Int32 length that counts itself, then the body   10000 + 4
                       (protocol version, parameters); header kept
thrift-framed          4-byte big-endian frame size, then the frame;    16384000 + 4
                       size stripped
kafka                  4-byte big-endian size, then the request or      100 MiB + 4
                       response; size stripped
grpc                   1 byte Compressed-Flag, then a 4-byte            4 MiB + 5
                       big-endian Message-Length, then the message;
                       header kept
=====================  ===============================================  ==============

References:

* protobuf: Java ``MessageLite.writeDelimitedTo`` / ``Parser.parseDelimitedFrom``
  (Python ``google.protobuf.proto.serialize_length_prefixed``); the size is a
  varint32, so 5 bytes at most.  64 MiB was ``CodedInputStream``'s default size
  limit.
* MQTT 3.1.1 section 2.2 (Fixed header) and 2.2.3 (Remaining Length); MQTT 5.0
  section 2.1.1 and 1.5.5 (Variable Byte Integer).  268,435,455 is the largest
  Remaining Length four bytes can hold.
* PostgreSQL documentation, chapter "Frontend/Backend Protocol", sections
  "Message Formats" and "Messaging Overview"; ``pq_getmessage`` in ``src/backend/libpq/pqcomm.c``
  refuses lengths above ``PQ_LARGE_MESSAGE_LIMIT`` (``MaxAllocSize - 1``), and
  ``ProcessStartupPacket`` a startup body above ``MAX_STARTUP_PACKET_LENGTH``
  (10000).
* Thrift: ``TFramedTransport`` (Java ``org.apache.thrift.transport.layered``,
  Python ``thrift.transport.TTransport``); 16384000 is
  ``TConfiguration.DEFAULT_MAX_FRAME_SIZE``.
* Kafka: "A Guide To The Kafka Protocol", section "Protocol Primitive Types" /
  "Requests and Responses" (``RequestOrResponse => Size (RequestMessage |
  ResponseMessage)``, ``Size => int32``); 100 MiB is the broker's
  ``socket.request.max.bytes`` default.
* gRPC: ``doc/PROTOCOL-HTTP2.md``, "Length-Prefixed-Message"; 4 MiB is the
  default maximum receive message size (``GRPC_DEFAULT_MAX_RECV_MESSAGE_LENGTH``).

Limits
------
* Postgres: the first message of a connection (StartupMessage, SSLRequest,
  GSSENCRequest or CancelRequest) has no type byte: decode it with
  ``POSTGRES_STARTUP``, then switch to ``POSTGRES``.  The server's one-byte
  answer to SSLRequest (``S`` or ``N``) is not framed at all.  A startup body
  shorter than its 4-byte protocol version is returned, not refused: check it.  A length field
  below 4 is a ``CorruptedFrame``, as the server's "invalid message length".
* MQTT: a fifth Remaining Length byte is a ``CorruptedFrame`` (the spec's
  Malformed Packet).  The decoder accepts non-minimal encodings (``0x80 0x00``
  for 0), which MQTT 5.0 forbids; the encoder always writes the minimum.
  ``max_frame_size`` can only be reached by a 4-byte Remaining Length, so the
  preset refuses nothing that a 4-byte field can announce.
* gRPC: the compressed flag is part of the prefix: pass ``prefix=b"\\x01"`` to
  encode a compressed message and read ``frame[0]`` when decoding; framekit
  neither compresses nor decompresses.  gRPC carries these messages inside an
  HTTP/2 stream: this preset frames the stream's DATA bytes, it does not speak
  HTTP/2.
* Kafka and Thrift sizes are signed int32: a negative size reads here as a
  length of 2 GiB or more and is refused as ``FrameTooLarge`` (the Java
  implementations close the connection; a transport should too).
* protobuf: a size varint longer than 5 bytes is a ``CorruptedFrame``; Java's
  ``readRawVarint32`` tolerates up to 10, but no protobuf writer emits them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Dict, Mapping

from .backend import LengthPrefixed

__all__ = [
    "GRPC",
    "KAFKA",
    "MQTT",
    "POSTGRES",
    "POSTGRES_STARTUP",
    "PRESETS",
    "PRESET_ARGS",
    "PROTOBUF_DELIMITED",
    "THRIFT_FRAMED",
    "get_preset",
]

_MiB = 1024 * 1024


def _args(**kwargs: Any) -> Mapping[str, Any]:
    return MappingProxyType(kwargs)


#: ``LengthPrefixed`` keyword arguments of every preset, by CLI name.  Build a
#: preset with another backend class with ``cls(**PRESET_ARGS[name])``.
PRESET_ARGS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "protobuf-delimited": _args(
            length_size="varint", varint_max_bytes=5, max_frame_size=64 * _MiB + 4
        ),
        "mqtt": _args(
            length_size="varint",
            length_offset=1,
            strip=0,
            varint_max_bytes=4,
            max_frame_size=268_435_455 + 1 + 4,
        ),
        "postgres": _args(
            length_size=4,
            length_offset=1,
            length_adjustment=-4,
            strip=0,
            # PQ_LARGE_MESSAGE_LIMIT = MaxAllocSize - 1 bounds the length field,
            # which counts itself; plus the type byte.
            max_frame_size=1 + (0x3FFFFFFF - 1),
        ),
        "postgres-startup": _args(
            length_size=4, length_adjustment=-4, strip=0, max_frame_size=4 + 10000
        ),
        "thrift-framed": _args(length_size=4, max_frame_size=4 + 16_384_000),
        "kafka": _args(length_size=4, max_frame_size=4 + 100 * _MiB),
        "grpc": _args(length_size=4, length_offset=1, strip=0, max_frame_size=5 + 4 * _MiB),
    }
)

#: Varint size, then a protobuf message (``writeDelimitedTo``).
PROTOBUF_DELIMITED = LengthPrefixed(**PRESET_ARGS["protobuf-delimited"])
#: MQTT control packets (3.1.1 and 5.0), fixed header kept.
MQTT = LengthPrefixed(**PRESET_ARGS["mqtt"])
#: PostgreSQL messages after the startup message, type byte and length kept.
POSTGRES = LengthPrefixed(**PRESET_ARGS["postgres"])
#: The PostgreSQL startup-phase message that has no type byte, length kept.
POSTGRES_STARTUP = LengthPrefixed(**PRESET_ARGS["postgres-startup"])
#: Thrift ``TFramedTransport`` frames.
THRIFT_FRAMED = LengthPrefixed(**PRESET_ARGS["thrift-framed"])
#: Kafka requests and responses.
KAFKA = LengthPrefixed(**PRESET_ARGS["kafka"])
#: gRPC Length-Prefixed-Messages, compressed flag and length kept.
GRPC = LengthPrefixed(**PRESET_ARGS["grpc"])

#: Every preset by CLI name (lower case, dashes).
PRESETS: Dict[str, LengthPrefixed] = {
    "protobuf-delimited": PROTOBUF_DELIMITED,
    "mqtt": MQTT,
    "postgres": POSTGRES,
    "postgres-startup": POSTGRES_STARTUP,
    "thrift-framed": THRIFT_FRAMED,
    "kafka": KAFKA,
    "grpc": GRPC,
}


def get_preset(name: str, **overrides: Any) -> LengthPrefixed:
    """Return the preset called ``name``, optionally with some arguments changed.

    Args:
        name: a key of :data:`PRESETS`; case and ``_`` for ``-`` are forgiven
            (``"THRIFT_FRAMED"`` works).
        overrides: ``LengthPrefixed`` keyword arguments that replace the
            preset's, typically a smaller ``max_frame_size``.

    Returns:
        The shared preset codec when there are no overrides, else a new one.

    Raises:
        ValueError: ``name`` is not a preset (the message lists the known
            names), or an override is invalid.
        TypeError: an override is not a ``LengthPrefixed`` argument.
    """
    key = name.strip().lower().replace("_", "-")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    if not overrides:
        return PRESETS[key]
    return LengthPrefixed(**{**PRESET_ARGS[key], **overrides})
