"""The switching capability of Lines, Delimited, Netstring and FixedLength, on both backends:
``max_frames`` in ``feed``/``buffer_updated``, and ``detach``."""

from __future__ import annotations

from typing import Any

import pytest

import framekit
from framekit import CorruptedFrame, FrameTooLarge

from .conftest import TEXT_BACKENDS

pytestmark = pytest.mark.parametrize("text", TEXT_BACKENDS)


def test_a_line_handshake_then_length_prefixed_frames(text: Any) -> None:
    """An SMTP-like exchange: text lines, then binary frames in the same read."""
    lines = text.Lines()
    binary = framekit.LengthPrefixed(2)
    wire = b"HELLO\r\nSTARTBIN\r\n" + binary.encode_many([b"\x00\n\r", b"bin"])
    decoder = lines.decoder()
    assert decoder.feed(wire[:9]) == [b"HELLO"]
    frames = decoder.feed(wire[9:])
    assert frames[0] == b"STARTBIN"  # the rest would be garbage lines
    rest = decoder.detach(len(frames) - 1)
    assert binary.decoder().feed(rest) == [b"\x00\n\r", b"bin"]


def test_max_frames_stops_and_holds_the_rest(text: Any) -> None:
    decoder = text.Lines(max_line_length=3).decoder()
    assert decoder.feed(b"a\nb\ntoolong\nc\n", max_frames=1) == [b"a"]
    assert decoder.pending == 12  # undecoded, error and all
    assert decoder.feed(b"d\n", max_frames=0) == []  # only takes the bytes
    assert decoder.feed(b"", 1) == [b"b"]
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"")
    assert info.value.frames == []
    assert decoder.feed(b"") == [b"c", b"d"]
    with pytest.raises(ValueError, match="max_frames"):
        decoder.feed(b"", max_frames=-2)


def test_max_frames_through_get_buffer(text: Any) -> None:
    decoder = text.Netstring().decoder()
    view = decoder.get_buffer(16)
    view[:12] = b"1:a,1:b,1:c,"
    del view
    assert decoder.buffer_updated(12, max_frames=2) == [b"a", b"b"]
    assert decoder.detach(1) == b"1:b,1:c,"


def test_detach_hands_back_the_frames_not_used_and_what_follows(text: Any) -> None:
    decoder = text.Delimited(b"\r\n", b"\n").decoder()
    assert decoder.feed(b"one\r\ntwo\nthr") == [b"one", b"two"]
    assert decoder.detach(2) == b"one\r\ntwo\nthr"
    decoder = text.FixedLength(2).decoder()
    decoder.feed(b"abcde")
    assert decoder.detach(1) == b"cde"


def test_detach_before_any_frame(text: Any) -> None:
    assert text.Lines().decoder().detach() == b""
    decoder = text.Lines().decoder()
    decoder.feed(b"part")
    decoder.feed(b"ial", max_frames=0)
    assert decoder.detach() == b"partial"


def test_detach_gives_back_bytes_the_call_skipped_or_refused(text: Any) -> None:
    decoder = text.Lines(max_line_length=3).decoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(b"a\ntoolong\nb\n")
    assert info.value.frames == [b"a"]
    assert decoder.detach(0) == b"toolong\nb\n"
    broken = text.Netstring().decoder()
    with pytest.raises(CorruptedFrame) as err:
        broken.feed(b"1:a,x:")
    assert err.value.frames == [b"a"]
    assert broken.detach(0) == b"x:"


def test_detach_cannot_go_back_past_dropped_bytes(text: Any) -> None:
    decoder = text.Lines(max_line_length=3).decoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"ok\ntoolong")
    assert decoder.feed(b"stilltoolong") == []
    with pytest.raises(ValueError, match="dropped bytes"):
        decoder.detach(0)
    assert decoder.feed(b"\nnxt\n") == [b"nxt"]  # still usable
    assert decoder.detach(1) == b"nxt\n"
    broken = text.Netstring().decoder()
    with pytest.raises(CorruptedFrame):
        broken.feed(b"x:")
    with pytest.raises(CorruptedFrame):
        broken.feed(b"1:a,")
    with pytest.raises(ValueError, match="broken"):
        broken.detach(0)


def test_detach_checks_unused_and_ends_the_decoder(text: Any) -> None:
    decoder = text.Lines().decoder()
    decoder.feed(b"a\nb\n")
    for bad in (-1, 3):
        with pytest.raises(ValueError, match="unused"):
            decoder.detach(bad)
    view = decoder.get_buffer()  # not a decode call: detach still refers to feed()
    view[:2] = b"c\n"
    del view
    assert decoder.detach(1) == b"b\n"
    assert decoder.pending == 0
    for call in (
        lambda: decoder.feed(b"x"),
        decoder.get_buffer,
        lambda: decoder.buffer_updated(0),
        decoder.eof,
        decoder.detach,
    ):
        with pytest.raises(ValueError, match="detached"):
            call()


def test_frames_after_a_backlog_and_detach(text: Any) -> None:
    """What an error left is decoded apart from the next read; detach still sees both."""
    decoder = text.Netstring(max_frame_size=3).decoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"1:a,4:abcd,1:b,")
    assert decoder.feed(b"1:c,1:d,") == [b"b", b"c", b"d"]
    assert decoder.detach(3) == b"1:b,1:c,1:d,"


def test_a_refused_call_changes_nothing(text: Any) -> None:
    decoder = text.Lines().decoder()
    assert decoder.feed(b"a\nb") == [b"a"]
    with pytest.raises(TypeError):
        decoder.feed("not bytes")
    with pytest.raises(ValueError):
        decoder.feed(b"x", max_frames=-2)
    with pytest.raises(ValueError, match="offered"):
        decoder.buffer_updated(1)  # nothing was offered
    assert decoder.pending == 1
    assert decoder.detach(1) == b"a\nb"


def test_many_frames_in_one_call(text: Any) -> None:
    decoder = text.FixedLength(1).decoder()
    assert len(decoder.feed(bytes(100_000))) == 100_000
    assert decoder.feed(b"xy", max_frames=1) == [b"x"]
    assert decoder.detach(1) == b"xy"
