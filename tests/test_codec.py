"""LengthPrefixed: Netty's semantics, errors and buffering, on both backends."""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable

import pytest

from framekit import CorruptedFrame, FrameTooLarge, FramingError, IncompleteFrame

from .codec_helpers import buffer_events, feed_events, frames_of

P = bytes.fromhex("48454C4C4F2C20574F524C44")  # "HELLO, WORLD"

# Netty's LengthFieldBasedFrameDecoder Javadoc: (offset, size, adjustment, strip).
JAVADOC = [
    ((0, 2, 0, 0), "000C", "000C"),
    ((0, 2, 0, 2), "000C", ""),
    ((0, 2, -2, 0), "000E", "000E"),
    ((2, 3, 0, 0), "CAFE00000C", "CAFE00000C"),
    ((0, 3, 2, 0), "00000CCAFE", "00000CCAFE"),
    ((1, 2, 1, 3), "CA000CFE", "FE"),
    ((1, 2, -3, 3), "CA0010FE", "FE"),
]


def javadoc_codec(LP: Callable[..., Any], args: tuple) -> Any:
    offset, size, adjustment, strip = args
    return LP(size, length_offset=offset, length_adjustment=adjustment, strip=strip)


@pytest.mark.parametrize(("args", "head", "out"), JAVADOC)
def test_javadoc_vectors_every_split(LP: Any, args: tuple, head: str, out: str) -> None:
    codec = javadoc_codec(LP, args)
    data = bytes.fromhex(head) + P
    expected = bytes.fromhex(out) + P
    # Two frames back to back, cut at every single point and at every pair of points.
    stream = data + data
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            chunks = [stream[:i], stream[i:j], stream[j:]]
            assert frames_of(feed_events(codec.decoder(), chunks)) == [expected, expected]
    # One byte at a time, through both entry points.
    ones = [stream[k : k + 1] for k in range(len(stream))]
    assert feed_events(codec.decoder(), ones) == [("frame", expected)] * 2
    assert buffer_events(codec.decoder(), ones) == [("frame", expected)] * 2


@pytest.mark.parametrize(("args", "head", "out"), JAVADOC)
def test_javadoc_vectors_encode(LP: Any, args: tuple, head: str, out: str) -> None:
    codec = javadoc_codec(LP, args)
    header = bytes.fromhex(head)
    offset, size = args[0], args[1]
    prefix, rest = header[:offset], header[offset + size :]
    assert codec.encode(rest + P, prefix=prefix) == header + P


def test_too_large_then_next_frame(LP: Any) -> None:
    data = bytes.fromhex("00000020") + b"x" * 32 + bytes.fromhex("0000000161")
    dec = LP(max_frame_size=16).decoder()
    with pytest.raises(FrameTooLarge) as info:
        dec.feed(data)
    assert info.value.frames == []
    assert info.value.frame_length == 36
    assert info.value.max_frame_size == 16
    assert "36" in str(info.value) and "16" in str(info.value)
    assert dec.feed(b"") == [b"a"]


@pytest.mark.parametrize("fail_fast", [True, False])
def test_too_large_byte_by_byte_raises_once(LP: Any, fail_fast: bool) -> None:
    data = bytes.fromhex("00000020") + b"x" * 32 + bytes.fromhex("0000000161")
    dec = LP(max_frame_size=16, fail_fast=fail_fast).decoder()
    seen = []
    for i in range(len(data)):
        try:
            seen.extend(dec.feed(data[i : i + 1]))
        except FrameTooLarge as exc:
            assert exc.frames == []
            seen.append(("error", i))
    # fail_fast: raised on the last header byte; otherwise after the last discarded byte.
    assert seen == [("error", 3 if fail_fast else 35), b"a"]
    assert dec.pending == 0
    dec.eof()


def test_too_large_keeps_earlier_frames(LP: Any) -> None:
    codec = LP(2, max_frame_size=10)
    good = codec.encode(b"ok")
    data = good + good + b"\x00\x40" + b"z" * 64 + good
    dec = codec.decoder()
    with pytest.raises(FrameTooLarge) as info:
        dec.feed(data)
    assert info.value.frames == [b"ok", b"ok"]
    assert dec.feed(b"") == [b"ok"]


def test_too_large_not_fail_fast_eof_reports_it(LP: Any) -> None:
    dec = LP(1, max_frame_size=8, fail_fast=False).decoder()
    assert dec.feed(b"\x20abc") == []
    with pytest.raises(FrameTooLarge):
        dec.eof()
    dec.eof()  # reported once


def test_huge_declared_length_allocates_nothing(LP: Any) -> None:
    dec = LP(8).decoder()  # default max: 16 MiB
    header = (1 << 62).to_bytes(8, "big")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(FrameTooLarge) as info:
            dec.feed(header + b"x" * 100)
        for _ in range(10):
            dec.feed(b"y" * 4096)  # still being discarded, never buffered
        buf = dec.get_buffer()
        n = len(buf)
        del buf
        dec.buffer_updated(n)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.frame_length == (1 << 62) + 8
    assert peak < 1024 * 1024, peak
    assert dec.pending == 0


def test_varint_huge_length_allocates_nothing(LP: Any) -> None:
    dec = LP("varint", max_frame_size=1000).decoder()
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLarge):
            dec.feed(b"\xff\xff\xff\xff\xff\xff\xff\xff\x3f")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_negative_8_byte_length_breaks_decoder(LP: Any) -> None:
    codec = LP(8)
    dec = codec.decoder()
    with pytest.raises(CorruptedFrame) as info:
        dec.feed(codec.encode(b"first") + b"\xff" * 8 + codec.encode(b"later"))
    assert info.value.frames == [b"first"]
    assert "-1" in str(info.value)
    with pytest.raises(CorruptedFrame, match="unusable"):
        dec.feed(codec.encode(b"more"))
    with pytest.raises(CorruptedFrame, match="unusable"):
        dec.get_buffer()
    assert dec.pending == 0


def test_adjusted_length_below_header_breaks_decoder(LP: Any) -> None:
    dec = LP(2, length_adjustment=-5).decoder()  # field 3 -> 3 - 5 + 2 = 0 < 2
    with pytest.raises(CorruptedFrame) as info:
        dec.feed(b"\x00\x03abc")
    assert "0" in str(info.value) and "2" in str(info.value)
    with pytest.raises(CorruptedFrame):
        dec.feed(b"\x00\x05abcde")


def test_strip_beyond_frame_skips_that_frame_only(LP: Any) -> None:
    codec = LP(1, strip=4)  # header is 1 byte; a 2-byte payload makes a 3-byte frame
    dec = codec.decoder()
    data = codec.encode(b"abcd") + codec.encode(b"ab") + codec.encode(b"wxyz")
    with pytest.raises(CorruptedFrame) as info:
        dec.feed(data)
    assert info.value.frames == [b"d"]
    assert "strip" in str(info.value)
    assert dec.feed(b"") == [b"z"]


@pytest.mark.parametrize(
    ("value", "nbytes"),
    [(0, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (2097151, 3), (2097152, 4)],
)
def test_varint_boundaries(LP: Any, value: int, nbytes: int) -> None:
    codec = LP("varint", max_frame_size=4 * 1024 * 1024)
    payload = bytes(range(256)) * (value // 256) + bytes(value % 256)
    frame = codec.encode(payload)
    assert len(frame) == nbytes + value
    assert codec.header(value) == frame[:nbytes]
    for cut in range(nbytes + 2):
        dec = codec.decoder()
        assert dec.feed(frame[:cut]) + dec.feed(frame[cut:]) == [payload]


def test_varint_max_bytes_limit(LP: Any) -> None:
    codec = LP("varint", varint_max_bytes=2)
    assert codec.encode(b"x" * 16383)[:2] == b"\xff\x7f"
    with pytest.raises(ValueError, match="at most 2 bytes"):
        codec.encode(b"x" * 16384)
    dec = codec.decoder()
    assert dec.feed(b"\x01a\x80") == [b"a"]
    with pytest.raises(CorruptedFrame, match=r"varint_max_bytes \(2"):
        dec.feed(b"\x80\x01")


def test_varint_above_2_63_is_corrupt(LP: Any) -> None:
    dec = LP("varint").decoder()
    with pytest.raises(CorruptedFrame, match="2\\*\\*63"):
        dec.feed(b"\xff" * 9 + b"\x01")
    dec = LP("varint").decoder()
    with pytest.raises(CorruptedFrame, match="2\\*\\*63"):
        dec.feed(b"\x80" * 9 + b"\x02")


def test_varint_offset_adjustment_strip(LP: Any) -> None:
    # MQTT-like: type byte, varint remaining length, header kept.
    codec = LP("varint", length_offset=1, strip=0, varint_max_bytes=4)
    frame = codec.encode(b"p" * 200, prefix=b"\x30")
    assert frame[:3] == b"\x30\xc8\x01"
    dec = codec.decoder()
    assert [bytes(f) for f in dec.feed(frame + frame)] == [frame, frame]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("byteorder", ["big", "little"])
def test_fixed_widths_roundtrip(LP: Any, size: int, byteorder: str) -> None:
    codec = LP(size, byteorder=byteorder)
    payloads = [b"", b"a", b"bc" * 40]
    wire = codec.encode_many(payloads)
    assert wire == b"".join(codec.encode(p) for p in payloads)
    assert codec.header(3) == (3).to_bytes(size, byteorder)
    assert codec.decoder().feed(wire) == payloads


def test_field_width_limits(LP: Any) -> None:
    assert LP(1).header(255) == b"\xff"
    with pytest.raises(ValueError, match="256 does not fit a 1-byte"):
        LP(1).header(256)
    big = 2**64  # above any codec's max_frame_size: the field width is what is tested
    assert LP(3).header(2**24 - 1, max_frame_size=big) == b"\xff\xff\xff"
    with pytest.raises(ValueError, match="does not fit a 3-byte"):
        LP(3).header(2**24, max_frame_size=big)
    assert LP(8).header(2**63 - 1, max_frame_size=big) == b"\x7f" + b"\xff" * 7
    with pytest.raises(ValueError, match="does not fit a 8-byte"):
        LP(8).header(2**63, max_frame_size=big)
    with pytest.raises(ValueError, match="negative"):
        LP(2, length_adjustment=5).encode(b"abc")


def test_postgres_style_length_counts_itself(LP: Any) -> None:
    codec = LP(4, length_offset=1, length_adjustment=-4, strip=0)
    frame = codec.encode(b"hello", prefix=b"Q")
    assert frame == b"Q\x00\x00\x00\x09hello"
    assert codec.decoder().feed(frame) == [frame]


def test_prefix_must_match_length_offset(LP: Any) -> None:
    codec = LP(2, length_offset=2)
    with pytest.raises(ValueError, match="exactly length_offset=2 bytes, got 0"):
        codec.encode(b"x")
    with pytest.raises(ValueError, match="got 3"):
        codec.encode_many([b"x"], prefix=b"abc")
    assert codec.header(1, prefix=bytearray(b"ab")) == b"ab\x00\x01"


def test_encode_accepts_any_buffer(LP: Any) -> None:
    codec = LP(2)
    for payload in (b"abc", bytearray(b"abc"), memoryview(b"xxabcxx")[2:5]):
        assert codec.encode(payload) == b"\x00\x03abc"
        assert codec.encode_many([payload, payload]) == b"\x00\x03abc" * 2
    header, body = codec.encode_parts(b"abc")
    assert header == b"\x00\x03" and body == b"abc"
    assert codec.encode_many([]) == b""
    assert codec.encode_many(iter([b"a"])) == b"\x00\x01a"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"length_size": 5}, "length_size"),
        ({"length_size": "varnit"}, "length_size"),
        ({"length_size": True}, "length_size"),
        ({"byteorder": "middle"}, "byteorder"),
        ({"length_offset": -1}, "length_offset"),
        ({"max_frame_size": 0}, "max_frame_size"),
        ({"max_frame_size": 3}, "smaller than the header"),
        ({"strip": -1}, "strip"),
        ({"strip": 100, "max_frame_size": 50}, "strip"),
        ({"varint_max_bytes": 11}, "varint_max_bytes"),
        ({"varint_max_bytes": 0}, "varint_max_bytes"),
        ({"length_adjustment": 2**40}, "length_adjustment"),
    ],
)
def test_invalid_arguments(LP: Any, kwargs: dict, match: str) -> None:
    kwargs = dict(kwargs)
    size = kwargs.pop("length_size", 4)
    with pytest.raises(ValueError, match=match):
        LP(size, **kwargs)


def test_invalid_argument_types(LP: Any) -> None:
    with pytest.raises(TypeError):
        LP(4, length_offset="1")
    with pytest.raises(TypeError):
        LP(4, fail_fast=1)


def test_properties_and_repr(LP: Any) -> None:
    codec = LP("varint", length_offset=1, strip=0, varint_max_bytes=4, max_frame_size=99)
    assert codec.length_size == "varint"
    assert codec.length_offset == 1
    assert codec.strip == 0
    assert codec.varint_max_bytes == 4
    assert codec.max_frame_size == 99
    assert codec.byteorder == "big"
    assert codec.fail_fast is True
    assert codec.length_adjustment == 0
    assert LP().strip is None
    assert repr(codec).startswith("LengthPrefixed('varint'")


def test_eof(LP: Any) -> None:
    codec = LP(4)
    dec = codec.decoder()
    dec.eof()  # nothing pending: silent
    assert dec.feed(codec.encode(b"whole")) == [b"whole"]
    dec.eof()
    dec.feed(codec.encode(b"0123456789")[:7])
    assert dec.pending == 7
    with pytest.raises(IncompleteFrame) as info:
        dec.eof()
    assert info.value.pending == 7
    assert info.value.expected == 14
    assert info.value.missing == 7
    assert "7 bytes cut off" in str(info.value)
    dec = codec.decoder()
    dec.feed(b"\x00\x00")
    with pytest.raises(IncompleteFrame, match="header") as info:
        dec.eof()
    assert info.value.expected is None and info.value.missing is None


def test_errors_are_value_errors(LP: Any) -> None:
    assert issubclass(FrameTooLarge, FramingError)
    assert issubclass(FramingError, ValueError)
    with pytest.raises(ValueError):
        LP(1, max_frame_size=4).decoder().feed(b"\x09")


def test_get_buffer_protocol(LP: Any) -> None:
    codec = LP(4)
    dec = codec.decoder()
    buf = dec.get_buffer()
    assert len(buf) >= 64 * 1024 and not buf.readonly
    frame = codec.encode(b"abc")
    buf[: len(frame)] = frame
    del buf
    assert dec.buffer_updated(len(frame)) == [b"abc"]
    with pytest.raises(ValueError, match="offered"):
        dec.buffer_updated(10**9)
    # A large frame: room grows as it arrives (never ahead of it by more than a
    # read), then the frame is assembled in place once enough of it is here.
    big = codec.encode(b"q" * 300_000)
    pos = 0
    frames = []
    sizes = []
    while pos < len(big):
        buf = dec.get_buffer()
        sizes.append(len(buf))
        n = min(len(buf), len(big) - pos)
        buf[:n] = big[pos : pos + n]
        del buf
        frames += dec.buffer_updated(n)
        pos += n
    assert frames == [b"q" * 300_000]
    assert max(sizes) < 300_000


def test_get_buffer_while_view_is_held(LP: Any) -> None:
    # asyncio keeps the view alive during buffer_updated; growing must not fail.
    codec = LP(4)
    dec = codec.decoder()
    big = codec.encode(b"r" * 200_000)
    held = []
    frames = []
    pos = 0
    while pos < len(big):
        buf = dec.get_buffer(1000)
        held.append(buf)
        n = min(len(buf), 1000, len(big) - pos)
        buf[:n] = big[pos : pos + n]
        pos += n
        frames += dec.buffer_updated(n)
    assert frames == [b"r" * 200_000]


def test_feed_accepts_buffers(LP: Any) -> None:
    codec = LP(2)
    wire = codec.encode_many([b"ab", b"cd"])
    for data in (wire, bytearray(wire), memoryview(wire)):
        dec = codec.decoder()
        out = dec.feed(data[:3]) + dec.feed(data[3:])
        assert out == [b"ab", b"cd"] and all(type(f) is bytes for f in out)


def test_buffer_stays_bounded(LP: Any) -> None:
    # Many frames in one big feed: the decoder buffers at most one unfinished frame.
    codec = LP(4)
    wire = codec.encode_many([b"z" * 1000] * 1000)
    dec = codec.decoder()
    assert len(dec.feed(wire[:-10])) == 999
    assert dec.pending == 1004 - 10
    assert dec.feed(wire[-10:]) == [b"z" * 1000]


def test_decoders_are_independent(LP: Any) -> None:
    codec = LP(1)
    a, b = codec.decoder(), codec.decoder()
    a.feed(b"\x03a")
    assert b.feed(b"\x01z") == [b"z"]
    assert a.feed(b"bc") == [b"abc"]


def test_bytes_left_behind_an_error_are_decoded_next(LP: Any) -> None:
    # Regression: after an error inside a frame that started in an earlier feed,
    # the rest of that feed waits in the buffer and must not confuse the next one.
    codec = LP(2, max_frame_size=6)
    dec = codec.decoder()
    assert dec.feed(b"\x00") == []
    with pytest.raises(FrameTooLarge):
        dec.feed(b"\x09" + b"x" * 9 + codec.encode(b"ab") + codec.encode(b"cd"))
    assert dec.pending == 8
    assert dec.feed(codec.encode(b"ef")) == [b"ab", b"cd", b"ef"]


# --- large frames are assembled in place ------------------------------------


def receive(dec: Any, wire: bytes, *, max_read: int = 1 << 30) -> tuple:
    """Push ``wire`` through get_buffer/buffer_updated like a recv_into loop;
    return the frames and the size of every view offered."""
    frames, sizes, pos = [], [], 0
    while pos < len(wire):
        buf = dec.get_buffer()
        sizes.append(len(buf))
        n = min(len(buf), len(wire) - pos, max_read)
        buf[:n] = wire[pos : pos + n]
        del buf
        frames += dec.buffer_updated(n)
        pos += n
    return frames, sizes


def test_large_frames_are_received_in_place(LP: Any) -> None:
    codec = LP(4)
    payloads = [bytes([i]) * 100_000 for i in range(3)] + [b"small"]
    frames, sizes = receive(codec.decoder(), codec.encode_many(payloads))
    assert frames == payloads and all(type(f) is bytes for f in frames)
    # First read: 64 KiB; the rest of frame 0 goes into a view of exactly its
    # size; between frames, a read has room for at least a frame that size.
    assert sizes[:2] == [64 * 1024, 100_000 - (64 * 1024 - 4)]
    assert sizes[2] >= 100_004
    dec = codec.decoder()
    dec.feed(codec.encode(payloads[0]))
    assert len(dec.get_buffer(300_000)) >= 300_000


def test_large_frames_fed_in_chunks(LP: Any) -> None:
    codec = LP(4, max_frame_size=8 << 20)
    payloads = [b"a" * (1 << 20), b"b" * 10, b"c" * (3 << 20), b"d" * 40_000]
    wire = codec.encode_many(payloads)
    dec = codec.decoder()
    out = []
    for i in range(0, len(wire), 65536):
        out += dec.feed(wire[i : i + 65536])
        assert dec.pending < (3 << 20) + 8
    assert out == payloads
    dec.eof()


def test_pending_and_eof_inside_a_large_frame(LP: Any) -> None:
    codec = LP(2, length_offset=1, strip=0)
    frame = codec.encode(b"p" * 50_000, prefix=b"T")
    dec = codec.decoder()
    assert dec.feed(frame[:7000]) == []  # an eighth is here: assembled in place
    assert dec.pending == 7000
    buf = dec.get_buffer()
    assert len(buf) == len(frame) - 7000
    buf[:500] = frame[7000:7500]
    del buf
    assert dec.buffer_updated(500) == []
    assert dec.pending == 7500
    with pytest.raises(IncompleteFrame) as info:
        dec.eof()
    assert (info.value.pending, info.value.expected) == (7500, len(frame))
    assert dec.feed(frame[7500:]) == [frame]


def test_announced_length_does_not_allocate_ahead(LP: Any) -> None:
    # A 12 MiB frame is allowed (max 16 MiB), but the decoder must not allocate
    # it on the strength of a 4-byte header: memory grows with what arrives.
    codec = LP(4)
    dec = codec.decoder()
    tracemalloc.start()
    try:
        dec.feed((12 << 20).to_bytes(4, "big") + b"x" * 1000)
        for _ in range(3):
            buf = dec.get_buffer()
            n = min(len(buf), 1000)
            buf[:n] = b"y" * n
            del buf
            dec.buffer_updated(n)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    assert dec.pending == 4004


def test_stale_view_of_a_finished_frame_cannot_change_it(LP: Any) -> None:
    codec = LP(4)
    payload = b"s" * 70_000
    wire = codec.encode(payload)
    dec = codec.decoder()
    assert dec.feed(wire[:10_000]) == []  # enough to assemble it in place
    view = dec.get_buffer()
    kept = view[:100]  # a slice the caller holds on to
    view[: len(wire) - 10_000] = wire[10_000:]
    (frame,) = dec.buffer_updated(len(wire) - 10_000)
    assert frame == payload
    # Misuse: writing through a view of a frame already handed over.  The
    # frame must not change (the decoder handed over a copy), and memory stays safe.
    for stale in (view, kept):
        try:
            stale[:3] = b"zzz"
        except ValueError:
            pass  # released: "operation forbidden on released memoryview object"
    assert frame == payload
    del view, kept
    with pytest.raises(ValueError, match="offered"):
        dec.buffer_updated(1)


def test_one_view_one_update(LP: Any) -> None:
    codec = LP(4)
    dec = codec.decoder()
    view = dec.get_buffer()
    header = (40_000).to_bytes(4, "big")
    view[:504] = header + b"a" * 500
    assert dec.buffer_updated(504) == []
    with pytest.raises(ValueError, match="released"):
        view[504:1004] = b"b" * 500  # more bytes into the same, spent view
    with pytest.raises(ValueError, match="offered"):
        dec.buffer_updated(500)
    del view
    assert dec.pending == 504


def test_a_header_alone_allocates_little(LP: Any) -> None:
    # 1 MiB is allowed, but 5 bytes must not make the decoder allocate it.
    codec = LP(4)
    decoders = [codec.decoder() for _ in range(20)]
    tracemalloc.start()
    try:
        for dec in decoders:
            dec.feed((1 << 20).to_bytes(4, "big") + b"x")
            buf = dec.get_buffer()
            del buf
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 200 * 1024, peak  # 64 KiB of read room each, not 1 MiB


def test_sizes_must_be_integers(LP: Any) -> None:
    codec = LP(4)
    with pytest.raises(TypeError):
        codec.header(2.9)
    with pytest.raises(TypeError):
        codec.decoder().buffer_updated(6.0)
    assert codec.header(True) == b"\x00\x00\x00\x01"  # an int all the same


def test_prefix_is_counted_in_bytes(LP: Any) -> None:
    import array

    wide = memoryview(array.array("i", [0x41424344]))  # 1 item, 4 bytes
    with pytest.raises(ValueError, match="got 4"):
        LP(4, length_offset=1).encode(b"abc", prefix=wide)
    assert LP(4, length_offset=4).encode(b"abc", prefix=wide)[4:] == b"\x00\x00\x00\x03abc"


def test_feed_voids_an_outstanding_view(LP: Any) -> None:
    codec = LP(4)
    dec = codec.decoder()
    dec.get_buffer()
    assert dec.feed(codec.encode(b"x")) == [b"x"]
    with pytest.raises(ValueError, match="offered"):
        dec.buffer_updated(5)


def test_a_small_rest_is_not_worth_a_read_of_its_own(LP: Any) -> None:
    # Through get_buffer, a large frame is assembled in place only if much of
    # it is still to come: a few missing bytes are read with what follows.
    codec = LP(4)
    wire = codec.encode(b"m" * 40_000) + codec.encode(b"n" * 10)
    dec = codec.decoder()
    buf = dec.get_buffer()
    buf[: 40_000 - 10] = wire[: 40_000 - 10]
    del buf
    assert dec.buffer_updated(40_000 - 10) == []
    buf = dec.get_buffer()
    assert len(buf) > 100
    rest = wire[40_000 - 10 :]
    buf[: len(rest)] = rest
    del buf
    assert dec.buffer_updated(len(rest)) == [b"m" * 40_000, b"n" * 10]
