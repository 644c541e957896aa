"""Helpers that drive a decoder through a stream and record everything it does."""

from __future__ import annotations

from typing import Any, Iterable, List, Sequence, Tuple

from framekit.errors import FramingError

Event = Tuple[Any, ...]


def _run(call: Any, events: List[Event]) -> None:
    try:
        frames = call()
    except FramingError as exc:
        events.extend(("frame", f) for f in exc.frames)
        events.append(("error", type(exc).__name__, str(exc)))
    else:
        events.extend(("frame", f) for f in frames)


def feed_events(decoder: Any, chunks: Iterable[bytes], *, drain: bool = True) -> List[Event]:
    """Feed ``chunks`` one by one, then ``feed(b"")`` to drain, then ``eof()``.

    Errors are recorded (with the frames they carry, in order) and decoding
    goes on with the next chunk, as a transport would.
    """
    events: List[Event] = []
    for chunk in chunks:
        _run(lambda c=chunk: decoder.feed(c), events)
    if drain:
        # Frames that sat behind an error are decoded by an empty feed.
        for _ in range(64):
            before = len(events)
            _run(lambda: decoder.feed(b""), events)
            if len(events) == before or (events[-1][0] == "error" and "unusable" in events[-1][2]):
                break
    _run(lambda: decoder.eof() or [], events)
    return events


def buffer_events(decoder: Any, chunks: Iterable[bytes], *, drain: bool = True) -> List[Event]:
    """Like :func:`feed_events` but through ``get_buffer``/``buffer_updated``."""
    events: List[Event] = []

    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        while True:
            try:
                buf = decoder.get_buffer(len(view) or -1)
            except FramingError as exc:
                events.append(("error", type(exc).__name__, str(exc)))
                return
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            del buf
            _run(lambda n=n: decoder.buffer_updated(n), events)
            view = view[n:]
            if not view:
                return

    for chunk in chunks:
        write(chunk)
    if drain:
        for _ in range(64):
            before = len(events)
            _run(lambda: decoder.feed(b""), events)
            if len(events) == before or (events[-1][0] == "error" and "unusable" in events[-1][2]):
                break
    _run(lambda: decoder.eof() or [], events)
    return events


def split(data: bytes, points: Sequence[int]) -> List[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates allowed)."""
    cuts = sorted({min(max(p, 0), len(data)) for p in points})
    out: List[bytes] = []
    prev = 0
    for cut in [*cuts, len(data)]:
        out.append(data[prev:cut])
        prev = cut
    return out


def frames_of(events: List[Event]) -> List[bytes]:
    return [e[1] for e in events if e[0] == "frame"]
