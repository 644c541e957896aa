"""framekit.Delimited: line framing with Netty's DelimiterBasedFrameDecoder semantics."""

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

#: Delimiters worth testing: one byte, two, and self-overlapping ones.
DELIMITERS = [b"\n", b"\r\n", b"\x00", b"--", b"aa", b"aba", b"\r\n\r\n"]


def model(stream: bytes, delim: bytes, maximum: int, keep: bool) -> List[Tuple[Any, ...]]:
    """What decoding ``stream`` must give, written the obvious way, on the whole stream."""
    events: List[Tuple[Any, ...]] = []
    pos = 0
    while True:
        i = stream.find(delim, pos)
        if i < 0:
            break
        line = stream[pos:i]
        if len(line) > maximum:
            events.append(("error", "FrameTooLarge"))
        else:
            events.append(("frame", line + delim if keep else line))
        pos = i + len(delim)
    rest = stream[pos:]
    if rest:
        # The last bytes might still begin a delimiter: not part of the line yet.
        maybe = max(k for k in range(len(delim)) if rest.endswith(delim[:k]))
        if len(rest) - maybe > maximum:
            events.append(("error", "FrameTooLarge"))
        else:
            events.append(("error", "IncompleteFrame"))
    return events


def kinds(events: List[Tuple[Any, ...]]) -> List[Tuple[Any, ...]]:
    """Events without error messages (a message may say "at least" n bytes)."""
    return [e[:2] for e in events]


# -- the codec ------------------------------------------------------------------


def test_defaults_and_repr(text: Any) -> None:
    codec = text.Delimited()
    assert codec.delimiter == b"\n"
    assert codec.max_frame_size == 16 * 1024 * 1024
    assert codec.keep_delimiter is False
    assert repr(codec) == "Delimited(b'\\n', max_frame_size=16777216, keep_delimiter=False)"
    assert text.Delimited(bytearray(b"\r\n")).delimiter == b"\r\n"


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((b"",), {}, ValueError),
        (("\n",), {}, TypeError),
        ((b"\n",), {"max_frame_size": 0}, ValueError),
        ((b"\n",), {"max_frame_size": 1.5}, TypeError),
        ((b"\n",), {"keep_delimiter": 1}, TypeError),
    ],
)
def test_bad_arguments(text: Any, args: Any, kwargs: Any, error: type) -> None:
    with pytest.raises(error):
        text.Delimited(*args, **kwargs)


def test_encode(text: Any) -> None:
    codec = text.Delimited(b"\r\n")
    assert codec.encode(b"hello") == b"hello\r\n"
    assert codec.encode(bytearray(b"a\rb\n")) == b"a\rb\n\r\n"
    assert type(codec.encode(memoryview(b"x"))) is bytes
    assert codec.encode_many([b"a", b"", b"b"]) == b"a\r\n\r\nb\r\n"
    assert codec.encode_many(iter([])) == b""
    payload = bytearray(b"zero copy")
    parts = codec.encode_parts(payload)
    assert parts[0] is payload and parts[1] == b"\r\n"


@pytest.mark.parametrize(
    ("delim", "payload"),
    [
        (b"\n", b"two\nlines"),
        (b"\r\n", b"a\r\nb"),
        (b"\r\n", b"\r\n"),
        (b"aa", b"xa"),  # b"xa" + b"aa" finds the delimiter one byte early
        (b"aba", b"xab"),
        (b"\r\n\r\n", b"\r\n"),  # a payload shorter than the delimiter's overlap
        (b"abab", b"ab"),
    ],
)
def test_encode_rejects_what_cannot_round_trip(text: Any, delim: bytes, payload: bytes) -> None:
    codec = text.Delimited(delim)
    with pytest.raises(ValueError, match="contains the delimiter"):
        codec.encode(payload)
    with pytest.raises(ValueError):
        codec.encode_many([b"ok", payload])
    with pytest.raises(ValueError):
        codec.encode_parts(memoryview(payload))


# -- decoding -----------------------------------------------------------------


def test_lines(text: Any) -> None:
    decoder = text.Delimited().decoder()
    assert decoder.feed(b"one\ntwo\nthr") == [b"one", b"two"]
    assert decoder.pending == 3
    assert decoder.feed(b"ee\n\n") == [b"three", b""]
    assert decoder.pending == 0
    decoder.eof()


def test_keep_delimiter(text: Any) -> None:
    decoder = text.Delimited(b"\r\n", keep_delimiter=True).decoder()
    assert decoder.feed(b"a\r\nb\r") == [b"a\r\n"]
    assert decoder.feed(b"\nc") == [b"b\r\n"]
    assert decoder.feed(bytearray(b"\r\n")) == [b"c\r\n"]


@pytest.mark.parametrize("delim", DELIMITERS)
def test_every_split_point(text: Any, delim: bytes) -> None:
    codec = text.Delimited(delim, max_frame_size=8)
    payloads = [b"x", b"", b"yz" * 4, b"\r", b"a", b"b"]
    payloads = [p for p in payloads if _ok(codec, p)]
    wire = codec.encode_many(payloads)
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            events = feed_events(codec.decoder(), [wire[:i], wire[i:j], wire[j:]])
            assert events == [("frame", p) for p in payloads], (i, j)


def _ok(codec: Any, payload: bytes) -> bool:
    try:
        codec.encode(payload)
    except ValueError:
        return False
    return True


def test_frames_are_bytes_whatever_the_input(text: Any) -> None:
    decoder = text.Delimited().decoder()
    frames = decoder.feed(memoryview(b"a\nb\n")) + decoder.feed(bytearray(b"c\n"))
    buf = decoder.get_buffer()
    buf[:2] = b"d\n"
    frames += decoder.buffer_updated(2)
    assert frames == [b"a", b"b", b"c", b"d"]
    assert all(type(f) is bytes for f in frames)


def test_eof_with_a_partial_line(text: Any) -> None:
    decoder = text.Delimited(b"\r\n").decoder()
    decoder.feed(b"ok\r\npartial\r")
    with pytest.raises(IncompleteFrame) as info:
        decoder.eof()
    assert info.value.pending == 8
    assert info.value.expected is None and info.value.missing is None


def test_buffer_updated_checks_nbytes(text: Any) -> None:
    decoder = text.Delimited().decoder()
    view = decoder.get_buffer(10)
    assert len(view) >= 10
    with pytest.raises(ValueError, match="only"):
        decoder.buffer_updated(len(view) + 1)


# -- oversized lines -------------------------------------------------------------


def test_line_of_exactly_max_frame_size(text: Any) -> None:
    decoder = text.Delimited(max_frame_size=5).decoder()
    assert decoder.feed(b"12345\n") == [b"12345"]
    for byte in b"abcde":
        assert decoder.feed(bytes([byte])) == []
    assert decoder.feed(b"\n") == [b"abcde"]


def test_oversized_line_in_one_chunk_keeps_the_frames_around_it(text: Any) -> None:
    decoder = text.Delimited(max_frame_size=3).decoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"a\nbb\ntoolong\nccc\nd")
    assert info.value.frames == [b"a", b"bb"]
    assert info.value.frame_length == 7 and info.value.max_frame_size == 3
    assert decoder.feed(b"") == [b"ccc"]
    assert decoder.feed(b"\n") == [b"d"]


def test_two_oversized_lines_in_one_chunk_lose_nothing_after_them(text: Any) -> None:
    decoder = text.Delimited(max_frame_size=3).decoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"a\ntoolong\nlonger\nb\n")
    assert info.value.frames == [b"a"]
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"c\n")
    assert info.value.frames == []
    assert decoder.feed(b"") == [b"b", b"c"]


def test_oversized_line_raised_as_soon_as_it_is_certain(text: Any) -> None:
    decoder = text.Delimited(max_frame_size=4).decoder()
    assert decoder.feed(b"ok\n1234") == [b"ok"]
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"5")
    assert info.value.frames == []
    assert decoder.pending == 0  # nothing of the line is kept
    assert decoder.feed(b"6789" * 100) == []
    assert decoder.pending == 0
    assert decoder.feed(b"0\nnext\n") == [b"next"]
    decoder.eof()


def test_split_delimiter_is_not_mistaken_for_an_oversized_line(text: Any) -> None:
    decoder = text.Delimited(b"\r\n", max_frame_size=4).decoder()
    assert decoder.feed(b"1234\r") == []  # 5 bytes, but the line may be 4
    assert decoder.feed(b"\n") == [b"1234"]
    assert decoder.feed(b"1234\r") == []
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"x")  # b"1234\rx": the line is certainly longer than 4


def test_discarding_finds_a_delimiter_split_across_reads(text: Any) -> None:
    decoder = text.Delimited(b"\r\n", max_frame_size=2).decoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"toolong\r")
    assert decoder.pending == 0
    assert decoder.feed(b"\nok\r\n") == [b"ok"]


def test_oversized_line_is_never_buffered(text: Any) -> None:
    maximum = 1024
    chunk = b"x" * 65536
    decoder = text.Delimited(b"\r\n", max_frame_size=maximum).decoder()
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
    assert peak < 16 * 1024  # the chunks are the caller's: nothing of them is kept
    assert decoder.feed(b"\r\nnext\r\n") == [b"next"]


def test_pending_stays_bounded_byte_by_byte(text: Any) -> None:
    delim = b"\r\n"
    maximum = 16
    decoder = text.Delimited(delim, max_frame_size=maximum).decoder()
    stream = (b"ab\r" * 40 + b"\r\n") * 3
    errors = 0
    for byte in stream:
        try:
            decoder.feed(bytes([byte]))
        except FrameTooLarge:
            errors += 1
        assert decoder.pending <= maximum + len(delim) - 1
    assert errors == 3


# -- properties -----------------------------------------------------------------


@st.composite
def line_streams(draw: st.DrawFn) -> Tuple[bytes, bytes, int, bool]:
    delim = draw(st.sampled_from(DELIMITERS))
    # A small alphabet made of the delimiter's bytes, so delimiters (whole,
    # split, overlapping) are common.
    alphabet = sorted(set(delim) | {ord("x")})
    byte = st.sampled_from(alphabet)
    pieces = draw(
        st.lists(
            st.one_of(
                st.just(delim), st.lists(byte, max_size=12).map(bytes), st.binary(max_size=4)
            ),
            max_size=30,
        )
    )
    return delim, b"".join(pieces), draw(st.integers(1, 12)), draw(st.booleans())


@SETTINGS
@given(case=line_streams(), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_any_stream_any_split_matches_the_model(
    text: Any, case: Tuple[bytes, bytes, int, bool], cuts: List[int]
) -> None:
    delim, stream, maximum, keep = case
    codec = text.Delimited(delim, max_frame_size=maximum, keep_delimiter=keep)
    expected = model(stream, delim, maximum, keep)
    chunks = split(stream, cuts)
    assert kinds(feed_events(codec.decoder(), chunks)) == expected
    assert kinds(buffer_events(codec.decoder(), chunks)) == expected


@SETTINGS
@given(
    delim=st.sampled_from(DELIMITERS),
    payloads=st.lists(st.binary(max_size=40), max_size=10),
    keep=st.booleans(),
    cuts=st.lists(st.integers(0, 600), max_size=12),
)
def test_round_trip(
    text: Any, delim: bytes, payloads: List[bytes], keep: bool, cuts: List[int]
) -> None:
    codec = text.Delimited(delim, max_frame_size=40, keep_delimiter=keep)
    payloads = [p for p in payloads if _ok(codec, p)]
    wire = codec.encode_many(payloads)
    assert wire == b"".join(codec.encode(p) for p in payloads)
    assert wire == b"".join(b"".join(codec.encode_parts(p)) for p in payloads)
    want = [p + delim if keep else p for p in payloads]
    chunks = split(wire, cuts)
    assert frames_of(feed_events(codec.decoder(), chunks)) == want
    assert frames_of(buffer_events(codec.decoder(), chunks)) == want


def test_exported(text: Any) -> None:
    assert framekit.Delimited in (getattr(b.values[0], "Delimited", None) for b in TEXT_BACKENDS)
    assert isinstance(text.Delimited(), framekit.Codec)
    assert isinstance(text.Delimited().decoder(), framekit.Decoder)


# -- several delimiters -------------------------------------------------------------


def test_several_delimiters_netty_javadoc(text: Any) -> None:
    """DelimiterBasedFrameDecoder's Javadoc: ABC\\nDEF\\r\\n gives ABC | DEF."""
    codec = text.Delimited(b"\r\n", b"\n")
    assert codec.delimiters == (b"\r\n", b"\n") and codec.delimiter == b"\r\n"
    assert repr(codec) == (
        "Delimited(b'\\r\\n', b'\\n', max_frame_size=16777216, keep_delimiter=False)"
    )
    assert codec.decoder().feed(b"ABC\nDEF\r\n") == [b"ABC", b"DEF"]
    keep = text.Delimited(b"\r\n", b"\n", keep_delimiter=True).decoder()
    assert keep.feed(b"ABC\nDEF\r\n") == [b"ABC\n", b"DEF\r\n"]
    assert codec.encode(b"x") == b"x\r\n"


def test_the_shortest_frame_wins_and_the_first_listed_at_a_tie(text: Any) -> None:
    assert text.Delimited(b"\n", b"\x00").decoder().feed(b"a\x00b\nc\n") == [b"a", b"b", b"c"]
    # Both start at the same byte: the one listed first wins.
    long_first = text.Delimited(b"\r\n\r\n", b"\r\n").decoder()
    assert long_first.feed(b"head\r\n\r\nbody\r\n") == [b"head"]  # \r\n, or \r\n\r\n?
    assert long_first.feed(b"x") == [b"body"]
    short_first = text.Delimited(b"\r\n", b"\r\n\r\n").decoder()
    assert short_first.feed(b"head\r\n\r\nbody\r\n") == [b"head", b"", b"body"]


def test_a_frame_whose_end_is_not_settled_waits(text: Any) -> None:
    decoder = text.Delimited(b"\r\n", b"\n", b"\r").decoder()
    assert decoder.feed(b"a\r") == []  # \r, or the start of \r\n?
    assert decoder.pending == 2
    assert decoder.feed(b"\nb\r") == [b"a"]
    assert decoder.feed(b"c") == [b"b"]
    assert decoder.feed(b"\r") == []
    with pytest.raises(IncompleteFrame, match="waits for the bytes after it"):
        decoder.eof()
    # Netty, deciding on what it holds, would make b"a" and b"" of a\r + \n.
    inner = text.Delimited(b"abcd", b"bc").decoder()
    assert inner.feed(b"xabc") == []
    assert inner.feed(b"d") == [b"x"]


def test_several_delimiters_when_a_frame_is_too_long(text: Any) -> None:
    decoder = text.Delimited(b"\r\n", b"\r", max_frame_size=3).decoder()
    assert decoder.feed(b"abc\r") == []  # 3 bytes, then the delimiter's start
    assert decoder.feed(b"\n") == [b"abc"]
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"abcd")
    assert info.value.frame_length == 4
    assert decoder.feed(b"efg\r") == []
    assert decoder.pending == 0  # the \r is held, but belongs to no frame
    assert decoder.feed(b"\nok\r\r\n") == [b"ok", b""]


@pytest.mark.parametrize(
    ("delimiters", "payload"),
    [
        ((b"\n", b"\x00"), b"a\x00b"),
        ((b"\r\n", b"\r"), b"a\rb"),
        ((b"\n", b"a\nb"), b"xa"),  # a\nb would start in the payload and run on
        ((b"--", b"-x"), b"a-"),
    ],
)
def test_encode_refuses_any_of_the_delimiters(
    text: Any, delimiters: Tuple[bytes, ...], payload: bytes
) -> None:
    codec = text.Delimited(*delimiters)
    with pytest.raises(ValueError, match="contains the delimiter"):
        codec.encode(payload)


def test_encode_refuses_a_frame_above_the_maximum(text: Any) -> None:
    codec = text.Delimited(max_frame_size=4)
    for encode in (codec.encode, codec.encode_parts, lambda p: codec.encode_many([b"ok", p])):
        with pytest.raises(FrameTooLarge, match="exceeds max_frame_size 4"):
            encode(b"12345")


def test_bad_delimiters(text: Any) -> None:
    with pytest.raises(ValueError):
        text.Delimited(b"\n", b"")
    with pytest.raises(TypeError):
        text.Delimited(b"\n", "\r")


MULTI = [b"\n", b"\r\n", b"\r", b"\x00", b"aa", b"ab", b"b", b"abcd", b"bc", b"\r\n\r\n"]


def _earliest(stream: bytes, pos: int, delims: Tuple[bytes, ...]) -> Tuple[int, int]:
    found = [(stream.find(d, pos), k) for k, d in enumerate(delims)]
    return min(((at, k) for at, k in found if at >= 0), default=(-1, -1))


def _could_still_win(stream: bytes, pos: int, best: int, which: int, delims: Any) -> bool:
    """A delimiter that would beat the one at ``best`` may begin in the last bytes."""
    end = len(stream)
    for k, d in enumerate(delims):
        last = best if k < which else best - 1
        for at in range(max(pos, end - len(d) + 1), last + 1):
            if k != which and d.startswith(stream[at:]):
                return True
    return False


def multi_model(
    stream: bytes, delims: Tuple[bytes, ...], maximum: int, keep: bool
) -> List[Tuple[Any, ...]]:
    """Netty's decoder with the whole stream in its buffer; the rest, an error."""
    events: List[Tuple[Any, ...]] = []
    pos = 0
    while True:
        best, which = _earliest(stream, pos, delims)
        if best < 0 or _could_still_win(stream, pos, best, which, delims):
            break
        stop = best + len(delims[which])
        if best - pos > maximum:
            events.append(("error", "FrameTooLarge"))
        else:
            events.append(("frame", stream[pos : stop if keep else best]))
        pos = stop
    rest = stream[pos:]
    if rest:
        tail = max(
            (
                n
                for n in range(len(rest) + 1)
                if any(len(d) > n and d.startswith(rest[len(rest) - n :]) for d in delims)
            ),
            default=0,
        )
        events.append(
            ("error", "FrameTooLarge" if len(rest) - tail > maximum else "IncompleteFrame")
        )
    return events


@SETTINGS
@given(
    delims=st.lists(st.sampled_from(MULTI), min_size=1, max_size=3),
    data=st.data(),
    maximum=st.integers(1, 10),
    keep=st.booleans(),
    cuts=st.lists(st.integers(0, 300), max_size=12),
)
def test_several_delimiters_any_split_matches_the_model(
    text: Any, delims: List[bytes], data: Any, maximum: int, keep: bool, cuts: List[int]
) -> None:
    alphabet = sorted(set(b"".join(delims)) | {ord("x")})
    pieces = data.draw(
        st.lists(
            st.one_of(
                st.sampled_from(delims), st.lists(st.sampled_from(alphabet), max_size=10).map(bytes)
            ),
            max_size=25,
        )
    )
    stream = b"".join(pieces)
    codec = text.Delimited(*delims, max_frame_size=maximum, keep_delimiter=keep)
    expected = multi_model(stream, tuple(delims), maximum, keep)
    chunks = split(stream, cuts)
    assert kinds(feed_events(codec.decoder(), chunks)) == expected
    assert kinds(buffer_events(codec.decoder(), chunks)) == expected


@SETTINGS
@given(
    delims=st.lists(st.sampled_from(MULTI), min_size=1, max_size=3),
    data=st.data(),
    keep=st.booleans(),
    cuts=st.lists(st.integers(0, 300), max_size=12),
)
def test_several_delimiters_round_trip(
    text: Any, delims: List[bytes], data: Any, keep: bool, cuts: List[int]
) -> None:
    alphabet = sorted(set(b"".join(delims)) | {ord("x")})
    codec = text.Delimited(*delims, max_frame_size=30, keep_delimiter=keep)
    payloads = [
        p
        for p in data.draw(
            st.lists(st.lists(st.sampled_from(alphabet), max_size=12).map(bytes), max_size=8)
        )
        if _ok(codec, p)
    ]
    wire = codec.encode_many(payloads)
    want = [p + delims[0] if keep else p for p in payloads]
    chunks = split(wire, cuts)
    assert frames_of(feed_events(codec.decoder(), chunks)) == want
    assert frames_of(buffer_events(codec.decoder(), chunks)) == want
