"""Lines, Delimited, Netstring and FixedLength: both backends agree, and switching loses no byte.

Every property runs a random configuration of a codec on random bytes cut at
random points, through ``feed`` (with ``bytes``, ``bytearray`` and
``memoryview`` input) and through ``get_buffer``/``buffer_updated``, with
``max_frames`` and ``detach`` in the mix.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framekit.errors import FramingError

from .codec_helpers import split
from .conftest import TEXT_BACKENDS, TEXT_PY, _speedups_text

needs_both = pytest.mark.skipif(
    _speedups_text is None, reason="framekit._speedups_text was not built"
)

SETTINGS = settings(
    max_examples=int(os.environ.get("FRAMEKIT_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Delimiters worth combining: one and two bytes, self-overlapping ones, and
#: ones that begin or contain others.
DELIMITERS = [b"\n", b"\r\n", b"\r", b"\x00", b"--", b"aa", b"aba", b"ab", b"b", b"\r\n\r\n"]

Make = Callable[[Any], Any]


@st.composite
def codecs(draw: st.DrawFn) -> Tuple[str, Dict[str, Any], bytes]:
    """``(class name, keyword arguments, alphabet)``: an alphabet that makes the
    codec's structure (newlines, delimiters, digits and ':'/',') common."""
    kind = draw(st.sampled_from(["Lines", "Delimited", "Netstring", "FixedLength"]))
    if kind == "Lines":
        args: Dict[str, Any] = {
            "max_line_length": draw(st.integers(1, 12)),
            "keep_delimiter": draw(st.booleans()),
            "fail_fast": draw(st.booleans()),
            "newline": draw(st.sampled_from([b"\n", b"\r\n"])),
        }
        return kind, args, b"\r\nx"
    if kind == "Delimited":
        delims = draw(st.lists(st.sampled_from(DELIMITERS), min_size=1, max_size=3))
        args = {
            "delimiters": delims,
            "max_frame_size": draw(st.integers(1, 12)),
            "keep_delimiter": draw(st.booleans()),
        }
        return kind, args, bytes(sorted(set(b"".join(delims)) | {ord("x")}))
    if kind == "Netstring":
        args = {"max_frame_size": draw(st.sampled_from([1, 5, 9, 10, 99, 100, 1000]))}
        return kind, args, b"0123456789:,x"
    return kind, {"size": draw(st.integers(1, 7))}, b"ab"


def make(backend: Any, kind: str, args: Dict[str, Any]) -> Any:
    args = dict(args)
    if kind == "Delimited":
        return backend.Delimited(*args.pop("delimiters"), **args)
    if kind == "FixedLength":
        return backend.FixedLength(args["size"])
    return getattr(backend, kind)(**args)


@st.composite
def streams(draw: st.DrawFn, alphabet: bytes, codec: Any) -> bytes:
    """Well-formed frames of ``codec`` mixed with bytes drawn from ``alphabet``."""
    pieces = []
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.booleans()):
            payload = bytes(draw(st.lists(st.sampled_from(alphabet), max_size=14)))
            try:
                pieces.append(codec.encode(payload))
            except ValueError:
                pass
        else:
            pieces.append(bytes(draw(st.lists(st.sampled_from(alphabet), max_size=14))))
    return b"".join(pieces)


#: One step of a run: ("feed", chunk, input type, max_frames) or
#: ("buffer", chunk, sizehint, max_frames, lie).
Step = Tuple[Any, ...]


@st.composite
def plans(draw: st.DrawFn, data: bytes) -> List[Step]:
    chunks = split(data, draw(st.lists(st.integers(0, len(data)), max_size=10)))
    steps: List[Step] = []
    for chunk in chunks:
        max_frames = draw(st.sampled_from([-1, -1, -1, 0, 1, 2]))
        if draw(st.booleans()):
            steps.append(
                ("feed", chunk, draw(st.sampled_from(["bytes", "bytearray", "view"])), max_frames)
            )
        else:
            sizehint = draw(st.sampled_from([-1, 1, 3, 16]))
            steps.append(("buffer", chunk, sizehint, max_frames, draw(st.integers(0, 2))))
    return steps


def _as(kind: str, chunk: bytes) -> Any:
    if kind == "bytearray":
        return bytearray(chunk)
    if kind == "view":
        return memoryview(bytearray(b"#" + chunk + b"#"))[1:-1]
    return chunk


def _call(events: List[Any], call: Callable[[], Any]) -> Any:
    try:
        frames = call()
    except FramingError as exc:
        events.append(("error", type(exc).__name__, str(exc), list(exc.frames)))
        return exc.frames
    except ValueError as exc:  # a refused call (buffer_updated beyond the offer)
        events.append(("refused", str(exc)))
        return []
    events.append(("frames", frames))
    return frames


def run(decoder: Any, steps: List[Step], unused_at_end: int) -> List[Any]:
    """Drive ``decoder`` through ``steps``, recording every result and ``pending``
    after every call; then drain and ``eof()``, or ``detach``, and record that."""
    events: List[Any] = []
    last: List[bytes] = []
    for step in steps:
        if step[0] == "feed":
            _, chunk, kind, max_frames = step
            data = _as(kind, chunk)
            last = _call(events, lambda d=data, m=max_frames: decoder.feed(d, m))
        else:
            last = _write(decoder, events, *step[1:]) or last
        events.append(("pending", decoder.pending))
    if unused_at_end < 0:
        for _ in range(40):
            before = len(events)
            last = _call(events, lambda: decoder.feed(b""))
            events.append(("pending", decoder.pending))
            if len(events) == before + 2 and events[-2] == ("frames", []):
                break
        _call(events, lambda: decoder.eof() or [])
        return events
    try:
        events.append(("detach", decoder.detach(min(unused_at_end, len(last)))))
    except ValueError as exc:
        events.append(("detach refused", str(exc)))
        return events
    events.append(("pending", decoder.pending))
    with pytest.raises(ValueError):
        decoder.feed(b"x")
    return events


def _write(
    decoder: Any, events: List[Any], chunk: bytes, sizehint: int, max_frames: int, lie: int
) -> List[bytes]:
    """Receive ``chunk`` through ``get_buffer``/``buffer_updated``; ``lie`` 2 first
    claims more than was offered.  Returns the frames of the last call."""
    view = memoryview(chunk)
    last: List[bytes] = []
    while True:
        try:
            buf = decoder.get_buffer(sizehint)
        except FramingError as exc:
            events.append(("error", type(exc).__name__, str(exc), []))
            return last
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        del buf
        if lie == 2 and n:  # refused, and the offer stays good
            _call(events, lambda: decoder.buffer_updated(10**9, max_frames))
        last = _call(events, lambda n=n: decoder.buffer_updated(n, max_frames))
        view = view[n:]
        if not view:
            return last


# -- the two backends agree ---------------------------------------------------------


@needs_both
@SETTINGS
@given(case=codecs(), data=st.data(), unused=st.integers(-1, 3))
def test_backends_agree(case: Tuple[str, Dict[str, Any], bytes], data: Any, unused: int) -> None:
    kind, args, alphabet = case
    stream = data.draw(streams(alphabet, make(TEXT_PY, kind, args)))
    steps = data.draw(plans(stream))
    py = run(make(TEXT_PY, kind, args).decoder(), steps, unused)
    cy = run(make(_speedups_text, kind, args).decoder(), steps, unused)
    assert py == cy


@needs_both
@SETTINGS
@given(case=codecs(), data=st.data())
def test_encoders_agree(case: Tuple[str, Dict[str, Any], bytes], data: Any) -> None:
    kind, args, alphabet = case
    py, cy = make(TEXT_PY, kind, args), make(_speedups_text, kind, args)
    assert repr(py) == repr(cy)
    payloads = data.draw(
        st.lists(st.lists(st.sampled_from(alphabet), max_size=14).map(bytes), max_size=5)
    )
    for op in ("encode", "encode_parts"):
        for payload in payloads:
            results = []
            for codec in (py, cy):
                try:
                    out = getattr(codec, op)(payload)
                    results.append(b"".join(map(bytes, out)) if op == "encode_parts" else out)
                except ValueError as exc:
                    results.append((type(exc), str(exc)))
            assert results[0] == results[1]
    results = []
    for codec in (py, cy):
        try:
            results.append(codec.encode_many(payloads))
        except ValueError as exc:
            results.append((type(exc), str(exc)))
    assert results[0] == results[1]


# -- switching: detach hands back exactly the bytes after the last frame used --------


@pytest.mark.parametrize("text", TEXT_BACKENDS)
@SETTINGS
@given(case=codecs(), data=st.data())
def test_detach_returns_the_stream_after_the_frames_used(
    text: Any, case: Tuple[str, Dict[str, Any], bytes], data: Any
) -> None:
    kind, args, alphabet = case
    codec = make(text, kind, args)
    payloads = []
    for payload in data.draw(
        st.lists(st.lists(st.sampled_from(alphabet), max_size=14).map(bytes), max_size=8)
    ):
        try:
            codec.encode(payload)
            payloads.append(payload)
        except ValueError:
            pass
    tail = bytes(data.draw(st.lists(st.sampled_from(alphabet + b"\x00\xff"), max_size=30)))
    wire = codec.encode_many(payloads) + tail
    used = data.draw(st.integers(0, len(payloads)))
    boundary = len(codec.encode_many(payloads[:used]))
    steps = data.draw(plans(wire))
    if used == 0:  # only take bytes, frames decoded by none
        steps = [(*step[:3], 0, *step[4:]) for step in steps[: data.draw(st.integers(0, 3))]]
    decoder = codec.decoder()
    got = received = 0
    last: List[bytes] = []
    for step in steps:
        if got >= used and used:
            break
        max_frames = step[3]
        if step[0] == "feed":
            received += len(step[1])
            last = _frames(lambda s=step: decoder.feed(_as(s[2], s[1]), s[3]))
            got += len(last)
            continue
        view = memoryview(step[1])
        while view and (got < used or not used):
            buf = decoder.get_buffer(step[2])
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            del buf
            received += n
            view = view[n:]
            last = _frames(lambda n=n, m=max_frames: decoder.buffer_updated(n, m))
            got += len(last)
    while got < used:  # the rest of the frames, from what is held
        last = _frames(lambda: decoder.feed(b""))
        assert last, "every frame of the stream comes out"
        got += len(last)
    assert decoder.detach(got - used) == wire[boundary:received]


def _frames(call: Callable[[], List[bytes]]) -> List[bytes]:
    try:
        return call()
    except FramingError as exc:
        return exc.frames
