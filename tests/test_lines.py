"""framekit.Lines: Netty's LineBasedFrameDecoder, on both backends."""

from __future__ import annotations

import os
import tracemalloc
from typing import Any, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framekit
from framekit import FrameTooLarge, IncompleteFrame

from .codec_helpers import buffer_events, feed_events, frames_of, split
from .conftest import TEXT_BACKENDS

pytestmark = pytest.mark.parametrize("text", TEXT_BACKENDS)

SETTINGS = settings(
    max_examples=int(os.environ.get("FRAMEKIT_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def model(stream: bytes, maximum: int, keep: bool) -> List[Tuple[Any, ...]]:
    """What decoding ``stream`` must give, written the obvious way, on the whole stream."""
    events: List[Tuple[Any, ...]] = []
    pos = 0
    while (i := stream.find(b"\n", pos)) >= 0:
        stop = i - 1 if i > pos and stream[i - 1] == 13 else i
        if stop - pos > maximum:
            events.append(("error", "FrameTooLarge"))
        else:
            events.append(("frame", stream[pos : i + 1] if keep else stream[pos:stop]))
        pos = i + 1
    rest = stream[pos:]
    if rest:
        length = len(rest) - rest.endswith(b"\r")  # a last \r may begin the ending
        events.append(("error", "FrameTooLarge" if length > maximum else "IncompleteFrame"))
    return events


def kinds(events: List[Tuple[Any, ...]]) -> List[Tuple[Any, ...]]:
    return [e[:2] for e in events]


# -- the codec ------------------------------------------------------------------


def test_defaults_and_repr(text: Any) -> None:
    codec = text.Lines()
    assert codec.max_line_length == codec.max_frame_size == 16 * 1024 * 1024
    assert (codec.keep_delimiter, codec.fail_fast, codec.newline) == (False, True, b"\n")
    assert repr(codec) == (
        "Lines(max_line_length=16777216, keep_delimiter=False, fail_fast=True, newline=b'\\n')"
    )
    assert text.Lines(newline=bytearray(b"\r\n")).newline == b"\r\n"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_line_length": 0}, ValueError),
        ({"max_line_length": 1.5}, TypeError),
        ({"keep_delimiter": 1}, TypeError),
        ({"fail_fast": None}, TypeError),
        ({"newline": b"\r"}, ValueError),
        ({"newline": "\n"}, TypeError),
    ],
)
def test_bad_arguments(text: Any, kwargs: Any, error: type) -> None:
    with pytest.raises(error):
        text.Lines(**kwargs)
    with pytest.raises(TypeError):
        text.Lines(5)


def test_encode(text: Any) -> None:
    codec = text.Lines()
    assert codec.encode(b"hello") == b"hello\n"
    assert codec.encode(memoryview(b"a\rb")) == b"a\rb\n"  # a \r inside is data
    assert codec.encode_many([b"a", b"", bytearray(b"b")]) == b"a\n\nb\n"
    assert codec.encode_many([]) == b""
    payload = bytearray(b"zero copy")
    parts = codec.encode_parts(payload)
    assert parts[0] is payload and parts[1] == b"\n"
    crlf = text.Lines(newline=b"\r\n")
    assert crlf.encode_many([b"a", b"b\r"]) == b"a\r\nb\r\r\n"
    assert crlf.decoder().feed(crlf.encode(b"b\r")) == [b"b\r"]


@pytest.mark.parametrize(
    ("newline", "payload"), [(b"\n", b"two\nlines"), (b"\r\n", b"a\n"), (b"\n", b"ends\r")]
)
def test_encode_refuses_what_cannot_round_trip(text: Any, newline: bytes, payload: bytes) -> None:
    codec = text.Lines(newline=newline)
    with pytest.raises(ValueError, match="cannot be framed"):
        codec.encode(payload)
    with pytest.raises(ValueError):
        codec.encode_many([b"ok", payload])
    with pytest.raises(ValueError):
        codec.encode_parts(payload)


def test_encode_refuses_a_line_above_the_maximum(text: Any) -> None:
    codec = text.Lines(max_line_length=4)
    assert codec.encode(b"1234") == b"1234\n"
    for encode in (codec.encode, codec.encode_parts, lambda p: codec.encode_many([b"ok", p])):
        with pytest.raises(FrameTooLarge, match="max_line_length 4") as info:
            encode(b"12345")
        assert (info.value.frame_length, info.value.max_frame_size) == (5, 4)


# -- Netty's LineBasedFrameDecoderTest ----------------------------------------------


def test_decode_with_strip(text: Any) -> None:
    decoder = text.Lines(max_line_length=8192, fail_fast=False).decoder()
    assert decoder.feed(b"first\r\nsecond\nthird") == [b"first", b"second"]
    with pytest.raises(IncompleteFrame):
        decoder.eof()


def test_decode_without_strip(text: Any) -> None:
    decoder = text.Lines(max_line_length=8192, keep_delimiter=True).decoder()
    assert decoder.feed(b"first\r\nsecond\nthird") == [b"first\r\n", b"second\n"]


def test_too_long_line_1(text: Any) -> None:
    decoder = text.Lines(max_line_length=16, keep_delimiter=True, fail_fast=False).decoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"12345678901234567890\r\nfirst\nsecond")
    assert info.value.frame_length == 20 and info.value.frames == []
    assert decoder.feed(b"") == [b"first\n"]


def test_too_long_line_2(text: Any) -> None:
    decoder = text.Lines(max_line_length=16, keep_delimiter=True, fail_fast=False).decoder()
    assert decoder.feed(b"12345678901234567") == []  # fail_fast=False: not yet
    assert decoder.pending == 0  # but it is not kept
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"890\r\nfirst\r\n")
    assert str(info.value) == "line of 20 bytes exceeds max_line_length 16; discarded"
    assert decoder.feed(b"") == [b"first\r\n"]
    decoder.eof()


def test_too_long_line_with_fail_fast(text: Any) -> None:
    decoder = text.Lines(max_line_length=16, keep_delimiter=True).decoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"12345678901234567")
    assert info.value.frame_length == 17 and "at least 17 bytes" in str(info.value)
    assert decoder.feed(b"890") == []
    assert decoder.feed(b"123\r\nfirst\r\n") == [b"first\r\n"]
    decoder.eof()


def test_decode_splits_correctly(text: Any) -> None:
    decoder = text.Lines(keep_delimiter=True).decoder()
    assert decoder.feed(b"line\r\n.\r\n") == [b"line\r\n", b".\r\n"]


# -- line endings ---------------------------------------------------------------------


def test_a_lone_cr_is_data(text: Any) -> None:
    decoder = text.Lines().decoder()
    assert decoder.feed(b"a\rb\n\r\r\n\r") == [b"a\rb", b"\r"]
    assert decoder.pending == 1
    assert decoder.feed(b"x\n") == [b"\rx"]


@pytest.mark.parametrize("keep", [False, True])
def test_cr_at_the_end_of_a_read_then_lf(text: Any, keep: bool) -> None:
    decoder = text.Lines(keep_delimiter=keep).decoder()
    assert decoder.feed(b"abc\r") == []
    assert decoder.feed(b"\ndef\r") == [b"abc\r\n" if keep else b"abc"]
    assert decoder.feed(b"\r") == []
    assert decoder.feed(b"\n") == [b"def\r\r\n" if keep else b"def\r"]


def test_a_cr_before_a_line_is_not_its_ending(text: Any) -> None:
    decoder = text.Lines().decoder()
    assert decoder.feed(b"a\r\n\nb\n") == [b"a", b"", b"b"]


def test_the_maximum_counts_the_line_without_its_ending(text: Any) -> None:
    decoder = text.Lines(max_line_length=3).decoder()
    assert decoder.feed(b"abc\r\nabc\n") == [b"abc", b"abc"]
    # Split before the \n: Netty refuses this one (it counts the \r); framekit does not.
    assert decoder.feed(b"abc\r") == []
    assert decoder.pending == 4
    assert decoder.feed(b"\n") == [b"abc"]
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"abc\r\r")  # now certainly 4 bytes or more
    assert info.value.frame_length == 4


# -- oversized lines --------------------------------------------------------------


def test_frames_around_an_oversized_line(text: Any) -> None:
    decoder = text.Lines(max_line_length=3).decoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"a\nbb\r\ntoolong\r\nccc\nd")
    assert info.value.frames == [b"a", b"bb"]
    assert info.value.frame_length == 7 and info.value.max_frame_size == 3
    assert decoder.pending == 5  # ccc\nd: not decoded yet
    assert decoder.feed(b"") == [b"ccc"]
    assert decoder.feed(b"\n") == [b"d"]


@pytest.mark.parametrize("fail_fast", [True, False])
def test_fail_fast_says_when(text: Any, fail_fast: bool) -> None:
    decoder = text.Lines(max_line_length=4, fail_fast=fail_fast).decoder()
    assert decoder.feed(b"ok\n1234") == [b"ok"]
    if fail_fast:
        with pytest.raises(FrameTooLarge, match="at least 5 bytes"):
            decoder.feed(b"5")
        assert decoder.feed(b"6789\r") == []
        assert decoder.feed(b"\nnext\n") == [b"next"]
    else:
        assert decoder.feed(b"5") == []
        assert decoder.feed(b"6789\r") == []
        with pytest.raises(FrameTooLarge) as info:
            decoder.feed(b"\nnext\n")
        assert info.value.frame_length == 9  # exact: the \r\n is not counted
        assert decoder.feed(b"") == [b"next"]
    decoder.eof()


def test_eof_inside_an_oversized_line(text: Any) -> None:
    decoder = text.Lines(max_line_length=2, fail_fast=False).decoder()
    assert decoder.feed(b"12345") == []
    with pytest.raises(FrameTooLarge, match="at least 5 bytes"):
        decoder.eof()
    decoder.eof()  # owed once
    quick = text.Lines(max_line_length=2).decoder()
    with pytest.raises(FrameTooLarge):
        quick.feed(b"12345")
    quick.eof()  # already said


def test_eof_with_a_partial_line(text: Any) -> None:
    decoder = text.Lines().decoder()
    decoder.feed(b"ok\npartial\r")
    with pytest.raises(IncompleteFrame) as info:
        decoder.eof()
    assert info.value.pending == 8 and info.value.expected is None
    assert "without a newline" in str(info.value)


def test_an_endless_line_is_never_buffered(text: Any) -> None:
    chunk = b"x" * 65536
    decoder = text.Lines(max_line_length=1024).decoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed(chunk)
    tracemalloc.start()
    try:
        for _ in range(64):  # a 4 MiB line
            assert decoder.feed(chunk) == []
            assert decoder.pending == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024
    assert decoder.feed(b"\r\nnext\n") == [b"next"]


def test_pending_stays_bounded_byte_by_byte(text: Any) -> None:
    maximum = 16
    decoder = text.Lines(max_line_length=maximum).decoder()
    errors = 0
    for byte in (b"ab\r" * 40 + b"\r\n") * 3:
        try:
            decoder.feed(bytes([byte]))
        except FrameTooLarge:
            errors += 1
        assert decoder.pending <= maximum + 1
    assert errors == 3


def test_frames_are_bytes_whatever_the_input(text: Any) -> None:
    decoder = text.Lines().decoder()
    frames = decoder.feed(memoryview(b"a\nb\n")) + decoder.feed(bytearray(b"c\n"))
    buf = decoder.get_buffer()
    buf[:2] = b"d\n"
    frames += decoder.buffer_updated(2)
    assert frames == [b"a", b"b", b"c", b"d"]
    assert all(type(f) is bytes for f in frames)


# -- properties -----------------------------------------------------------------


@SETTINGS
@given(
    pieces=st.lists(
        st.one_of(
            st.sampled_from([b"\n", b"\r\n", b"\r"]),
            st.lists(st.sampled_from(b"x\r\n"), max_size=12).map(bytes),
        ),
        max_size=30,
    ),
    maximum=st.integers(1, 12),
    keep=st.booleans(),
    fail_fast=st.booleans(),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
def test_any_stream_any_split_matches_the_model(
    text: Any, pieces: List[bytes], maximum: int, keep: bool, fail_fast: bool, cuts: List[int]
) -> None:
    stream = b"".join(pieces)
    codec = text.Lines(max_line_length=maximum, keep_delimiter=keep, fail_fast=fail_fast)
    expected = model(stream, maximum, keep)
    chunks = split(stream, cuts)
    assert kinds(feed_events(codec.decoder(), chunks)) == expected
    assert kinds(buffer_events(codec.decoder(), chunks)) == expected


@SETTINGS
@given(
    payloads=st.lists(st.binary(max_size=40), max_size=10),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    keep=st.booleans(),
    cuts=st.lists(st.integers(0, 600), max_size=12),
)
def test_round_trip(
    text: Any, payloads: List[bytes], newline: bytes, keep: bool, cuts: List[int]
) -> None:
    codec = text.Lines(max_line_length=40, keep_delimiter=keep, newline=newline)
    payloads = [p.replace(b"\n", b"").rstrip(b"\r") for p in payloads]
    wire = codec.encode_many(payloads)
    assert wire == b"".join(b"".join(map(bytes, codec.encode_parts(p))) for p in payloads)
    want = [p + newline if keep else p for p in payloads]
    chunks = split(wire, cuts)
    assert frames_of(feed_events(codec.decoder(), chunks)) == want
    assert frames_of(buffer_events(codec.decoder(), chunks)) == want


def test_exported(text: Any) -> None:
    assert framekit.Lines in (getattr(b.values[0], "Lines", None) for b in TEXT_BACKENDS)
    assert isinstance(text.Lines(), framekit.Codec)
    assert isinstance(text.Lines().decoder(), framekit.Decoder)
