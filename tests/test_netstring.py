"""framekit.Netstring: djb's ``<len>:<data>,`` framing."""

from __future__ import annotations

import os
import tracemalloc
from typing import Any, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framekit
from framekit import CorruptedFrame, FrameTooLarge, IncompleteFrame

from .codec_helpers import buffer_events, feed_events, frames_of, split
from .conftest import TEXT_BACKENDS, TEXT_PY

pytestmark = pytest.mark.parametrize("text", TEXT_BACKENDS)

SETTINGS = settings(
    max_examples=int(os.environ.get("FRAMEKIT_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def kinds(events: List[Tuple[Any, ...]]) -> List[Tuple[Any, ...]]:
    """Events without error messages (a message quotes the bytes seen so far),
    up to the first ``CorruptedFrame`` (later chunks only repeat it)."""
    out = [e[:2] for e in events]
    if ("error", "CorruptedFrame") in out:
        del out[out.index(("error", "CorruptedFrame")) + 1 :]
    return out


# -- the codec ------------------------------------------------------------------


def test_encode(text: Any) -> None:
    codec = text.Netstring()
    assert codec.encode(b"hello world!") == b"12:hello world!,"
    assert codec.encode(b"") == b"0:,"
    assert codec.encode(memoryview(b"abc")) == b"3:abc,"
    assert codec.encode_many([b"a", b"", bytearray(b"bc")]) == b"1:a,0:,2:bc,"
    payload = bytearray(b"zero copy")
    prefix, body, comma = codec.encode_parts(payload)
    assert (prefix, comma) == (b"9:", b",") and body is payload
    assert codec.header(1234) == b"1234:"
    assert repr(text.Netstring(max_frame_size=99)) == "Netstring(max_frame_size=99)"


@pytest.mark.parametrize("bad", [0, -1, 1 << 63])
def test_bad_max_frame_size(text: Any, bad: int) -> None:
    with pytest.raises(ValueError):
        text.Netstring(max_frame_size=bad)
    with pytest.raises(TypeError):
        text.Netstring(max_frame_size="10")  # type: ignore[arg-type]


# -- decoding -----------------------------------------------------------------


def test_decode(text: Any) -> None:
    decoder = text.Netstring().decoder()
    assert decoder.feed(b"5:hello,0:,3:a") == [b"hello", b""]
    assert decoder.pending == 3
    assert decoder.feed(b"bc,1") == [b"abc"]
    assert decoder.pending == 1
    assert decoder.feed(b"0:0123456789,") == [b"0123456789"]
    decoder.eof()


def test_every_split_point(text: Any) -> None:
    codec = text.Netstring(max_frame_size=12)
    payloads = [b"a", b"", b"x:y,z" * 2, b"123456789012"]
    wire = codec.encode_many(payloads)
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            events = feed_events(codec.decoder(), [wire[:i], wire[i:j], wire[j:]])
            assert events == [("frame", p) for p in payloads], (i, j)


@pytest.mark.parametrize(
    ("wire", "pending", "expected"),
    [(b"12", 2, None), (b"12:", 3, 16), (b"12:hello", 8, 16), (b"3:abc", 5, 6)],
)
def test_eof_inside_a_netstring(text: Any, wire: bytes, pending: int, expected: Any) -> None:
    decoder = text.Netstring().decoder()
    decoder.feed(wire)
    with pytest.raises(IncompleteFrame) as info:
        decoder.eof()
    assert info.value.pending == pending
    assert info.value.expected == expected


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"01:a,", "leading zero"),
        (b"00:,", "leading zero"),
        (b"01", "leading zero"),
        (b"+1:a,", "not decimal digits"),
        (b" 1:a,", "not decimal digits"),
        (b"1_0:", "not decimal digits"),
        (b"-1:", "not decimal digits"),
        (b"\xd9\xa1:a,", "not decimal digits"),  # Arabic-Indic one: not ASCII
        (b"x", "not decimal digits"),
        (b":", "empty"),
        (b"3:abc;", "not followed by ','"),
        (b"3:abcd,", "not followed by ','"),
        (b"0:;", "not followed by ','"),
    ],
)
def test_malformed_netstrings_break_the_decoder(text: Any, wire: bytes, reason: str) -> None:
    decoder = text.Netstring().decoder()
    with pytest.raises(CorruptedFrame, match=reason) as info:
        decoder.feed(b"2:ok," + wire)
    assert info.value.frames == [b"ok"]
    assert decoder.pending == 0
    with pytest.raises(CorruptedFrame, match="unusable"):
        decoder.feed(b"2:ok,")
    with pytest.raises(CorruptedFrame, match="unusable"):
        decoder.buffer_updated(0)


def test_malformed_prefix_rejected_at_its_first_bad_byte(text: Any) -> None:
    decoder = text.Netstring().decoder()
    assert decoder.feed(b"1") == []
    with pytest.raises(CorruptedFrame):
        decoder.feed(b"2x" + b"9" * 100_000)
    assert decoder.pending == 0


# -- oversized netstrings --------------------------------------------------------


def test_too_large_is_skipped_and_decoding_resumes(text: Any) -> None:
    decoder = text.Netstring(max_frame_size=10).decoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"2:ok,11:" + b"x" * 11 + b",1:a,2:bc,")
    assert info.value.frames == [b"ok"]
    assert info.value.frame_length == 11 and info.value.max_frame_size == 10
    assert decoder.pending == 10  # what follows, not the rejected frame
    assert decoder.feed(b"") == [b"a", b"bc"]


def test_two_oversized_frames_in_one_chunk_lose_nothing_after_them(text: Any) -> None:
    decoder = text.Netstring(max_frame_size=10).decoder()
    big = text.Netstring().encode(b"x" * 11)
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"1:a," + big + big + b"1:b,")
    assert info.value.frames == [b"a"]
    # The second error comes from the bytes kept behind the first; the new
    # bytes wait behind it in turn.
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"1:c,")
    assert info.value.frames == []
    assert decoder.feed(b"") == [b"b", b"c"]


def test_skipped_frame_must_still_end_with_a_comma(text: Any) -> None:
    decoder = text.Netstring(max_frame_size=10).decoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"11:" + b"x" * 5)
    assert decoder.feed(b"x" * 6) == []
    with pytest.raises(CorruptedFrame, match="no ','"):
        decoder.feed(b";")


def test_too_many_digits_rejected_before_reading_further(text: Any) -> None:
    # max 100 has 3 digits: a 4th digit makes the length at least 1000.
    decoder = text.Netstring(max_frame_size=100).decoder()
    assert decoder.feed(b"2:ok,999") == [b"ok"]
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"9")
    assert info.value.frame_length == 9999
    assert decoder.pending == 0
    # The rest of the prefix and the data are dropped, then decoding resumes.
    assert decoder.feed(b"0:" + b"z" * 99_990) == []
    assert decoder.pending == 0
    assert decoder.feed(b",2:ok,") == [b"ok"]


def test_length_of_more_than_20_digits_is_corrupt(text: Any) -> None:
    decoder = text.Netstring(max_frame_size=100).decoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"1" * 4)
    with pytest.raises(CorruptedFrame, match="more than 20 digits"):
        decoder.feed(b"1" * 17)


def test_oversized_netstring_is_never_buffered(text: Any) -> None:
    decoder = text.Netstring(max_frame_size=1024).decoder()
    chunk = b"y" * 65536
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"%d:" % (64 * len(chunk)))
    tracemalloc.start()
    try:
        for _ in range(64):  # a 4 MiB netstring
            assert decoder.feed(chunk) == []
            assert decoder.pending == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024
    assert decoder.feed(b",4:next,") == [b"next"]


def test_buffering_is_bounded_by_max_frame_size(text: Any) -> None:
    maximum = 50
    decoder = text.Netstring(max_frame_size=maximum).decoder()
    stream = text.Netstring().encode_many([b"p" * n for n in (0, 1, 49, 50, 51, 10)])
    errors = 0
    for byte in stream:
        try:
            decoder.feed(bytes([byte]))
        except FrameTooLarge:
            errors += 1
        assert decoder.pending <= maximum + len(b"50:")
    assert errors == 1


# -- properties -----------------------------------------------------------------


@SETTINGS
@given(
    payloads=st.lists(st.binary(max_size=40), max_size=10),
    cuts=st.lists(st.integers(0, 600), max_size=12),
)
def test_round_trip(text: Any, payloads: List[bytes], cuts: List[int]) -> None:
    codec = text.Netstring(max_frame_size=40)
    wire = codec.encode_many(payloads)
    assert wire == b"".join(codec.encode(p) for p in payloads)
    assert wire == b"".join(b"".join(codec.encode_parts(p)) for p in payloads)
    chunks = split(wire, cuts)
    assert frames_of(feed_events(codec.decoder(), chunks)) == payloads
    assert frames_of(buffer_events(codec.decoder(), chunks)) == payloads


@st.composite
def damaged_streams(draw: st.DrawFn) -> bytes:
    """Netstrings, some oversized, with a few bytes changed, dropped or inserted."""
    payloads = draw(st.lists(st.binary(max_size=30), max_size=8))
    wire = bytearray(TEXT_PY.Netstring().encode_many(payloads))
    for _ in range(draw(st.integers(0, 2))):
        if not wire:
            break
        i = draw(st.integers(0, len(wire) - 1))
        byte = draw(st.sampled_from(b"0123456789:,x"))
        action = draw(st.sampled_from(["set", "drop", "insert"]))
        if action == "set":
            wire[i] = byte
        elif action == "drop":
            del wire[i]
        else:
            wire.insert(i, byte)
    return bytes(wire)


@SETTINGS
@given(stream=damaged_streams(), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_any_split_decodes_like_one_chunk(text: Any, stream: bytes, cuts: List[int]) -> None:
    codec = text.Netstring(max_frame_size=20)
    whole = kinds(feed_events(codec.decoder(), [stream]))
    chunks = split(stream, cuts)
    assert kinds(feed_events(codec.decoder(), chunks)) == whole
    assert kinds(buffer_events(codec.decoder(), chunks)) == whole
    # Bytes sent whole and well-formed come out whole: every frame decoded is
    # one of the netstrings that can be parsed out of the stream.
    for frame in frames_of(feed_events(codec.decoder(), chunks)):
        assert b"%d:%b," % (len(frame), frame) in stream


def test_exported(text: Any) -> None:
    assert framekit.Netstring in (getattr(b.values[0], "Netstring", None) for b in TEXT_BACKENDS)
    assert isinstance(text.Netstring(), framekit.Codec)
    assert isinstance(text.Netstring().decoder(), framekit.Decoder)
