"""Every comparison the benchmarks know, and the subsets each front-end runs.

Design notes
------------
Both front-ends, ``pytest bench/`` and ``framekit bench``, take their
comparisons from here, so they measure the same code on the same workloads.
A comparison is a scenario (decode with some feed size and mode, an encode
operation, or an end-to-end transport) at one payload size, with its
contestants and its workload builder.

Profiles:

* ``all``: the whole matrix (``pytest bench/``), and the server
  benchmark's multi-core comparison (``framekit serve --workers 1`` and ``2``);
* ``default``: a representative subset that ``framekit bench`` runs in under a
  minute on two cores: every size for the headline scenario (decode, 64 KiB
  feeds, stream), the smallest and largest for the others, and every
  end-to-end case; then the server benchmark, every contestant at every load
  (one run each: about a minute more);
* ``quick``: just the rows the speed targets are about, and the rows their
  ratios are taken to (``--quick``).

Frames too large to hold (kind ``stream``: :mod:`.streams`) are one frame of
1 GiB (times the scale) each way: received as a stream, and a file sent as
one frame.  Every profile runs them (``quick`` only the rows of the targets):
about a minute in ``default``, 12 s in ``quick`` (at half the size), on two cores.

The text codecs (``Lines``, ``Delimited`` with several delimiters,
``Netstring``) have scenarios of their own (``lines-64k-stream``, ...): their
stream is not the length-prefixed one, so they are compared with their pure
twins, the ``bytes.split`` floor and line-based peers on their own wire format.

Workload sizes are byte budgets, scaled by the session (see
:func:`framekit.apps.benchmarks.workloads.frame_count`).  The server
benchmark's runs last seconds, not bytes: :data:`SERVER_TIMES` per profile,
times the scale, unless the session says otherwise (``server_duration``,
``server_warmup`` options: ``framekit bench --server-time``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from functools import partial
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .codec_contestants import decode_contestants, encode_contestants
from .floors import FLOOR_BYTES, FLOOR_MEMCPY, floor_contestants
from .harness import Comparison, Contestant, Scenario, Session, Settings
from .peers import peer_contestants
from .receivers import RAW, EndToEndWorkload, receiver_contestants
from .servers import (
    FLOOR,
    LOADS,
    NETTY,
    PAYLOAD_SIZE,
    ServerWorkload,
    load_title,
    scaled,
    server_contestants,
    worker_contestants,
)
from .streams import (
    BIG_FRAME,
    RAW_SENDFILE,
    SendFileWorkload,
    StreamWorkload,
    send_file_contestants,
    stream_contestants,
)
from .text_contestants import (
    FLOOR_SPLIT,
    TextWorkload,
    delimited_contestants,
    lines_contestants,
    netstring_contestants,
)
from .workloads import (
    CHUNK_7,
    CHUNK_64K,
    SIZES,
    WHOLE,
    DecodeWorkload,
    EncodeWorkload,
    chunk_label,
    frame_count,
)

__all__ = [
    "PROFILES",
    "PROFILE_SETTINGS",
    "SERVER_TIMES",
    "comparisons",
    "decode_scenario",
    "select",
    "text_scenario",
]

PROFILES = ("all", "default", "quick")

#: (settings, scale) each profile runs with by default.
PROFILE_SETTINGS: Dict[str, Tuple[Settings, float]] = {
    "all": (Settings(repeats=5, min_time=0.02), 1.0),
    "default": (Settings(repeats=5, min_time=0.01), 1.0),
    "quick": (Settings(repeats=3, min_time=0.005), 0.5),
}

#: Server benchmark per profile: (seconds measured, seconds of warm-up, timed repeats),
#: before the session's scale.
SERVER_TIMES: Dict[str, Tuple[float, float, int]] = {
    "all": (3.0, 0.5, 3),
    "default": (2.0, 0.5, 1),
    "quick": (2.0, 0.5, 1),
}

_MiB = 1 << 20
#: Bytes of stream per run.  7-byte feeds cost a call per 7 bytes: a smaller budget.
_DECODE_BUDGET = {CHUNK_64K: _MiB // 2, CHUNK_7: _MiB // 8, WHOLE: _MiB // 2}
_ENCODE_BUDGET = _MiB // 2
_E2E_SIZES = (64, 65536)
_E2E_BUDGET = {64: 2 * _MiB, 65536: 64 * _MiB}
_CHUNK_TAGS = {CHUNK_64K: "64k", CHUNK_7: "7b", WHOLE: "whole"}
_ENCODE_OPS = ("encode", "encode_many", "header")
#: --quick keeps the rows the targets compare, and the references of the ratios.
_QUICK_DECODE = ("cython", "python", "msgpack", "hiredis", FLOOR_BYTES, FLOOR_MEMCPY)
_QUICK_E2E = (
    "blocking",
    "asyncio",
    "asyncio-uvloop",
    "naive",
    "readexactly",
    "readexactly-uvloop",
    "raw-asyncio",
    "raw-asyncio-uvloop",
    "anyio",
    "anyio-trio",
    "receive-exactly",
    "receive-exactly-trio",
    RAW,
)
_QUICK_SERVER = ("blocking", "asyncio-uvloop", NETTY, FLOOR)
_QUICK_STREAM = (
    "blocking",
    "asyncio",
    "asyncio-uvloop",
    "asyncio-readinto",
    "asyncio-readinto-uvloop",
    RAW,
)
_QUICK_SEND_FILE = (
    "send-file",
    "send-file-asyncio",
    "send-file-asyncio-uvloop",
    "sendall-loop",
    "writer-loop",
    "writer-loop-uvloop",
)


def decode_scenario(chunk: int, keep: bool) -> Scenario:
    """The decode scenario for a feed size and a mode (keep = "list")."""
    mode = "list" if keep else "stream"
    return Scenario(
        key=f"decode-{_CHUNK_TAGS[chunk]}-{mode}",
        title=f"decode, {chunk_label(chunk)}, {mode}",
        kind="decode",
        keep=keep,
    )


#: Text scenarios: framing -> (title, contestants).
_TEXT = {
    "lines": ("Lines", lines_contestants),
    "delimited": ("Delimited(b'\\r\\n', b'\\n')", delimited_contestants),
    "netstring": ("Netstring", netstring_contestants),
}
_QUICK_TEXT = ("cython", "python", FLOOR_SPLIT, "twisted")


def text_scenario(framing: str, chunk: int) -> Scenario:
    """The decode scenario of a text codec (``lines``, ``delimited``, ``netstring``)."""
    return Scenario(
        key=f"{framing}-{_CHUNK_TAGS[chunk]}-stream",
        title=f"{_TEXT[framing][0]} decode, {chunk_label(chunk)}, stream",
        kind="decode",
        keep=False,
    )


def _only(
    contestants: Iterable[Contestant], names: Optional[Sequence[str]]
) -> Tuple[Contestant, ...]:
    return tuple(c for c in contestants if names is None or c.name in names)


def _decode(chunk: int, keep: bool, size: int, only: Optional[Sequence[str]] = None) -> Comparison:
    budget = _DECODE_BUDGET[chunk]

    def build(session: Session) -> DecodeWorkload:
        return DecodeWorkload(size, frame_count(size, budget, session.scale), chunk, keep)

    contestants = _only([*decode_contestants(), *peer_contestants(), *floor_contestants()], only)
    return Comparison(decode_scenario(chunk, keep), size, contestants, build, FLOOR_BYTES)


def _text(framing: str, chunk: int, size: int, only: Optional[Sequence[str]] = None) -> Comparison:
    budget = _DECODE_BUDGET[chunk]

    def build(session: Session) -> TextWorkload:
        return TextWorkload(framing, size, frame_count(size, budget, session.scale), chunk, False)

    contestants = _only(_TEXT[framing][1](), only)
    floor = FLOOR_SPLIT if framing == "lines" else None
    return Comparison(text_scenario(framing, chunk), size, contestants, build, floor)


def _encode(op: str, size: int) -> Comparison:
    def build(session: Session) -> EncodeWorkload:
        return EncodeWorkload(size, frame_count(size, _ENCODE_BUDGET, session.scale), op)

    floor = FLOOR_MEMCPY if op == "encode_many" else FLOOR_BYTES
    scenario = Scenario(key=op.replace("_", "-"), title=f"{op}()", kind="encode", keep=True)
    contestants = (*encode_contestants(op), *floor_contestants(floor))
    return Comparison(scenario, size, contestants, build, floor)


def _end_to_end(transport: str, size: int, only: Optional[Sequence[str]] = None) -> Comparison:
    def build(session: Session) -> EndToEndWorkload:
        return EndToEndWorkload(session, transport, size, _E2E_BUDGET[size])

    name = "TCP" if transport == "tcp" else "Unix socket"
    scenario = Scenario(key=f"e2e-{transport}", title=f"end to end, loopback {name}", kind="e2e")
    return Comparison(scenario, size, _only(receiver_contestants(), only), build, RAW)


def _big_frame_length(session: Session) -> int:
    return max(1, int(BIG_FRAME * session.scale))


def _stream_receive(transport: str, size: int, only: Optional[Sequence[str]] = None) -> Comparison:
    def build(session: Session) -> StreamWorkload:
        return StreamWorkload(session, transport, _big_frame_length(session))

    name = "TCP" if transport == "tcp" else "Unix socket"
    scenario = Scenario(
        key=f"stream-recv-{transport}",
        title=f"one frame received as a stream (size x --scale), loopback {name}",
        kind="stream",
    )
    return Comparison(scenario, size, _only(stream_contestants(), only), build, RAW)


def _send_file(transport: str, size: int, only: Optional[Sequence[str]] = None) -> Comparison:
    def build(session: Session) -> SendFileWorkload:
        return SendFileWorkload(session, transport, _big_frame_length(session))

    name = "TCP" if transport == "tcp" else "Unix socket"
    scenario = Scenario(
        key=f"send-file-{transport}",
        title=f"a file sent as one frame (size x --scale), loopback {name}",
        kind="stream",
    )
    contestants = _only(send_file_contestants(), only)
    return Comparison(scenario, size, contestants, build, RAW_SENDFILE)


def _server(
    profile: str,
    connections: int,
    window: int,
    size: int,
    only: Optional[Sequence[str]] = None,
) -> Comparison:
    duration, warmup, repeats = SERVER_TIMES[profile]

    def build(session: Session) -> ServerWorkload:
        d = session.options.get("server_duration") or scaled(duration, session.scale)
        w = session.options.get("server_warmup")
        w = scaled(warmup, session.scale, 0.0) if w is None else w
        return ServerWorkload(session, connections, window, size, d, w)

    scenario = Scenario(
        key=f"server-{connections}x{window}",
        title=f"echo server, {load_title(connections, window)}",
        kind="server",
    )
    contestants = server_contestants(only)
    return Comparison(scenario, size, tuple(contestants), build, FLOOR, NETTY, repeats)


def _workers(profile: str, size: int) -> Comparison:
    duration, warmup, repeats = SERVER_TIMES[profile]
    connections, window = LOADS[0]

    def build(session: Session) -> ServerWorkload:
        d = session.options.get("server_duration") or scaled(duration, session.scale)
        w = session.options.get("server_warmup")
        w = scaled(warmup, session.scale, 0.0) if w is None else w
        return ServerWorkload(session, connections, window, size, d, w)

    scenario = Scenario(
        key=f"server-workers-{connections}x{window}",
        title=f"framekit serve --workers, unpinned, {load_title(connections, window)}",
        kind="server",
    )
    contestants = tuple(worker_contestants())
    return Comparison(scenario, size, contestants, build, None, contestants[0].name, repeats)


def _plan(profile: str) -> Iterator[Tuple[str, Sequence[int], Callable[[int], Comparison]]]:
    """(kind, sizes, comparison maker) triples of a profile."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    small = (16, 64)
    if profile == "quick":
        yield "decode", (16, 64, _MiB), partial(_decode, CHUNK_64K, False, only=_QUICK_DECODE)
        yield "decode", (16,), partial(_decode, CHUNK_7, False, only=_QUICK_DECODE)
        for framing in _TEXT:
            yield "decode", (16,), partial(_text, framing, CHUNK_64K, only=_QUICK_TEXT)
        yield "e2e", _E2E_SIZES, partial(_end_to_end, "tcp", only=_QUICK_E2E)
        yield "stream", (BIG_FRAME,), partial(_stream_receive, "tcp", only=_QUICK_STREAM)
        yield "stream", (BIG_FRAME,), partial(_send_file, "tcp", only=_QUICK_SEND_FILE)
        for connections, window in LOADS:
            yield (
                "server",
                (PAYLOAD_SIZE,),
                partial(_server, profile, connections, window, only=_QUICK_SERVER),
            )
        return
    full = profile == "all"
    yield "decode", SIZES, partial(_decode, CHUNK_64K, False)
    yield "decode", SIZES if full else (16, _MiB), partial(_decode, CHUNK_64K, True)
    yield "decode", small if full else (16,), partial(_decode, CHUNK_7, False)
    if full:
        yield "decode", small, partial(_decode, CHUNK_7, True)
    yield "decode", SIZES if full else (16,), partial(_decode, WHOLE, False)
    if full:
        yield "decode", SIZES, partial(_decode, WHOLE, True)
    yield "decode", small, partial(_text, "lines", CHUNK_64K)
    yield "decode", small, partial(_text, "lines", CHUNK_7)
    yield "decode", small, partial(_text, "delimited", CHUNK_64K)
    yield "decode", small, partial(_text, "netstring", CHUNK_64K)
    for op in _ENCODE_OPS:
        sizes = SIZES if full else ((16,) if op == "header" else (16, _MiB))
        yield "encode", sizes, partial(_encode, op)
    for transport in ("tcp", "unix"):
        yield "e2e", _E2E_SIZES, partial(_end_to_end, transport)
    yield "stream", (BIG_FRAME,), partial(_stream_receive, "tcp")
    yield "stream", (BIG_FRAME,), partial(_send_file, "tcp")
    for connections, window in LOADS:
        yield "server", (PAYLOAD_SIZE,), partial(_server, profile, connections, window)
    if full:
        yield "server", (PAYLOAD_SIZE,), partial(_workers, profile)


def comparisons(profile: str = "default", kind: Optional[str] = None) -> List[Comparison]:
    """The comparisons of a profile (``all``, ``default`` or ``quick``).

    Args:
        profile: which subset.
        kind: only ``decode``, ``encode``, ``e2e``, ``stream`` or ``server`` comparisons,
            if given.

    Raises:
        ValueError: an unknown profile.
    """
    out: List[Comparison] = []
    for label, sizes, make in _plan(profile):
        if kind is None or kind == label:
            out.extend(make(size) for size in sizes)
    return out


def _matches(patterns: Sequence[str], text: str) -> bool:
    return any(
        fnmatch.fnmatchcase(text, p if any(ch in p for ch in "*?[") else f"*{p}*") for p in patterns
    )


def select(
    items: Iterable[Comparison], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> List[Comparison]:
    """Keep the contestants whose id ``<scenario>/<size>/<contestant>`` matches.

    A pattern without wildcards matches as a substring (``msgpack``,
    ``decode-64k``, ``e2e-tcp/64/``); with ``*``, ``?`` or ``[`` it is a
    glob over the whole id.  A contestant is kept if it matches any
    ``include`` pattern (all are, without one) and no ``exclude`` pattern.
    Comparisons left without contestants are dropped.
    """
    out = []
    for comparison in items:
        kept = tuple(
            c
            for c in comparison.contestants
            if (not include or _matches(include, f"{comparison.id}/{c.name}"))
            and not _matches(exclude, f"{comparison.id}/{c.name}")
        )
        if kept:
            out.append(dataclasses.replace(comparison, contestants=kept))
    return out
