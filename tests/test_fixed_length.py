"""framekit.FixedLength: Netty's FixedLengthFrameDecoder, on both backends."""

from __future__ import annotations

import os
from typing import Any, List

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


def test_netty_example(text: Any) -> None:
    """FixedLengthFrameDecoder's Javadoc: A | BC | DEFG | HI gives ABC | DEF | GHI."""
    decoder = text.FixedLength(3).decoder()
    frames: List[bytes] = []
    for chunk in (b"A", b"BC", b"DEFG", b"HI"):
        frames += decoder.feed(chunk)
    assert frames == [b"ABC", b"DEF", b"GHI"]
    assert decoder.pending == 0
    decoder.eof()


def test_codec(text: Any) -> None:
    codec = text.FixedLength(4)
    assert codec.size == codec.max_frame_size == 4
    assert repr(codec) == "FixedLength(4)"
    assert codec.encode(bytearray(b"abcd")) == b"abcd"
    assert type(codec.encode(memoryview(b"abcd"))) is bytes
    assert codec.encode_many([b"abcd", b"efgh"]) == b"abcdefgh"
    payload = bytearray(b"wxyz")
    assert codec.encode_parts(payload)[0] is payload
    for bad in (0, -1):
        with pytest.raises(ValueError):
            text.FixedLength(bad)
    with pytest.raises(TypeError):
        text.FixedLength("4")


def test_encode_checks_the_size(text: Any) -> None:
    codec = text.FixedLength(4)
    for encode in (codec.encode, codec.encode_parts, lambda p: codec.encode_many([b"okok", p])):
        with pytest.raises(FrameTooLarge, match="exceeds size 4"):
            encode(b"12345")
        with pytest.raises(ValueError, match="exactly 4 bytes, not 3"):
            encode(b"123")


def test_eof_inside_a_frame(text: Any) -> None:
    decoder = text.FixedLength(5).decoder()
    assert decoder.feed(b"12345678") == [b"12345"]
    with pytest.raises(IncompleteFrame) as info:
        decoder.eof()
    assert (info.value.pending, info.value.expected, info.value.missing) == (3, 5, 2)


def test_a_large_frame_through_get_buffer(text: Any) -> None:
    size = 300_000
    decoder = text.FixedLength(size).decoder()
    wire = bytes(range(256)) * (2 * size // 256 + 1)
    frames: List[bytes] = []
    pos = 0
    while pos < 2 * size:
        view = decoder.get_buffer()
        n = min(len(view), 2 * size - pos)
        view[:n] = wire[pos : pos + n]
        del view
        frames += decoder.buffer_updated(n)
        pos += n
    assert frames == [wire[:size], wire[size : 2 * size]]


@SETTINGS
@given(
    size=st.integers(1, 9),
    stream=st.binary(max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=12),
)
def test_any_split(text: Any, size: int, stream: bytes, cuts: List[int]) -> None:
    whole = len(stream) - len(stream) % size
    want = [stream[i : i + size] for i in range(0, whole, size)]
    chunks = split(stream, cuts)
    for events in (
        feed_events(text.FixedLength(size).decoder(), chunks),
        buffer_events(text.FixedLength(size).decoder(), chunks),
    ):
        assert frames_of(events) == want
        assert (bool(events) and events[-1][0] == "error") == (whole < len(stream))


def test_exported(text: Any) -> None:
    assert framekit.FixedLength in (
        getattr(b.values[0], "FixedLength", None) for b in TEXT_BACKENDS
    )
    assert isinstance(text.FixedLength(1), framekit.Codec)
    assert isinstance(text.FixedLength(1).decoder(), framekit.Decoder)
