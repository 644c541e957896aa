"""Switching codecs mid-stream (StreamCore.switch_codec), without losing or re-reading a byte."""

from __future__ import annotations

from typing import Any, List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framekit
from framekit.codecs import presets
from framekit.core import StreamCore

PAIRS = {
    "4-byte to 2-byte little-endian": (lambda LP: LP(4), lambda LP: LP(2, byteorder="little")),
    "varint to 8-byte": (lambda LP: LP("varint"), lambda LP: LP(8)),
    "startup to typed postgres": (
        lambda LP: LP(**presets.PRESET_ARGS["postgres-startup"]),
        lambda LP: LP(**presets.PRESET_ARGS["postgres"]),
    ),
}


def wire_of(first: Any, second: Any, a: List[bytes], b: List[bytes]) -> bytes:
    prefix = {"prefix": b"Q"} if getattr(second, "length_offset", 0) else {}
    return first.encode_many(a) + b"".join(second.encode(p, **prefix) for p in b)


def expected_b(second: Any, b: List[bytes]) -> List[bytes]:
    """What ``second`` decodes its own frames of ``b`` into (a preset keeps its header)."""
    prefix = {"prefix": b"Q"} if getattr(second, "length_offset", 0) else {}
    decoder = second.decoder()
    return decoder.feed(b"".join(second.encode(p, **prefix) for p in b))


def receive(core: StreamCore, chunk: bytes, zero_copy: bool) -> None:
    if zero_copy:
        view = core.get_buffer()
        view[: len(chunk)] = chunk
        core.buffer_updated(len(chunk))
    else:
        core.receive_data(chunk)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pair=st.sampled_from(sorted(PAIRS)),
    a=st.lists(st.binary(max_size=40), min_size=1, max_size=6),
    b=st.lists(st.binary(max_size=40), max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=8),
    zero_copy=st.booleans(),
    read_ahead=st.booleans(),
)
def test_codec_a_then_codec_b_at_every_split(
    backend: Any,
    pair: str,
    a: List[bytes],
    b: List[bytes],
    cuts: List[int],
    zero_copy: bool,
    read_ahead: bool,
) -> None:
    LP = backend.LengthPrefixed
    first, second = (make(LP) for make in PAIRS[pair])
    wire = wire_of(first, second, a, b)
    points = sorted({min(c, len(wire)) for c in cuts} | {len(wire)})
    chunks = [wire[s:e] for s, e in zip([0, *points], points) if e > s]
    core = StreamCore(first)
    got: List[bytes] = []
    pending = list(chunks)

    def take_one() -> bytes:
        while True:
            for message in core.messages:
                return message  # type: ignore[no-any-return]
            while not core.next_batch():
                assert pending, "ran out of input"
                receive(core, pending.pop(0), zero_copy)
                if read_ahead and pending:  # an event loop may read again before we take
                    receive(core, pending.pop(0), zero_copy)

    want_a = first.decoder().feed(first.encode_many(a))
    for _ in want_a:
        got.append(take_one())
    assert got == want_a
    core.switch_codec(second)
    want = expected_b(second, b)
    for _ in want:
        got.append(take_one())
    assert got[len(want_a) :] == want
    while pending:
        receive(core, pending.pop(0), zero_copy)
    core.receive_eof()
    assert list(core.messages) == []
    try:
        core.next_batch()
    except framekit.ConnectionClosed:
        pass
    else:
        raise AssertionError("nothing may be left")


def test_frames_the_old_codec_misread_go_to_the_new_one(LP: Any) -> None:
    """A pipelined typed Postgres query read by the startup codec looks like a
    1.3 GB frame (FrameTooLarge): it never reaches the caller, the new codec
    reads it right."""
    startup = LP(**presets.PRESET_ARGS["postgres-startup"])
    typed = LP(**presets.PRESET_ARGS["postgres"])
    start = startup.encode(b"\x00\x03\x00\x00user\x00me\x00\x00")
    query = typed.encode(b"select 1\x00", prefix=b"Q")
    core = StreamCore(startup)
    core.receive_data(start + query)
    assert next(core.messages) == start
    core.switch_codec(typed)
    assert list(core.messages) == [query]
