"""Every comparison the benchmarks know, and the subsets each front-end runs.

Design notes
------------
Both front-ends, ``pytest bench/`` and ``framekit bench``, take their
comparisons from here, so they measure the same code on the same workloads.
A comparison is a scenario (decode with some feed size and mode, an encode
operation, or an end-to-end transport) at one payload size, with its
contestants and its workload builder.

Profiles:

* ``all``: the whole matrix of the issue (``pytest bench/``);
* ``default``: a representative subset that ``framekit bench`` runs in under a
  minute on two cores: every size for the headline scenario (decode, 64 KiB
  feeds, stream), the smallest and largest for the others, and every
  end-to-end case;
* ``quick``: just the rows the issue's targets are about, and the rows their
  ratios are taken to (``--quick``).

Workload sizes are byte budgets, scaled by the session (see
:func:`framekit.apps.benchmarks.workloads.frame_count`).
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
    "comparisons",
    "decode_scenario",
    "select",
]

PROFILES = ("all", "default", "quick")

#: (settings, scale) each profile runs with by default.
PROFILE_SETTINGS: Dict[str, Tuple[Settings, float]] = {
    "all": (Settings(repeats=5, min_time=0.02), 1.0),
    "default": (Settings(repeats=5, min_time=0.01), 1.0),
    "quick": (Settings(repeats=3, min_time=0.005), 0.5),
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


def decode_scenario(chunk: int, keep: bool) -> Scenario:
    """The decode scenario for a feed size and a mode (keep = "list")."""
    mode = "list" if keep else "stream"
    return Scenario(
        key=f"decode-{_CHUNK_TAGS[chunk]}-{mode}",
        title=f"decode, {chunk_label(chunk)}, {mode}",
        kind="decode",
        keep=keep,
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


def _plan(profile: str) -> Iterator[Tuple[str, Sequence[int], Callable[[int], Comparison]]]:
    """(kind, sizes, comparison maker) triples of a profile."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    small = (16, 64)
    if profile == "quick":
        yield "decode", (16, 64, _MiB), partial(_decode, CHUNK_64K, False, only=_QUICK_DECODE)
        yield "decode", (16,), partial(_decode, CHUNK_7, False, only=_QUICK_DECODE)
        yield "e2e", _E2E_SIZES, partial(_end_to_end, "tcp", only=_QUICK_E2E)
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
    for op in _ENCODE_OPS:
        sizes = SIZES if full else ((16,) if op == "header" else (16, _MiB))
        yield "encode", sizes, partial(_encode, op)
    for transport in ("tcp", "unix"):
        yield "e2e", _E2E_SIZES, partial(_end_to_end, transport)


def comparisons(profile: str = "default", kind: Optional[str] = None) -> List[Comparison]:
    """The comparisons of a profile (``all``, ``default`` or ``quick``).

    Args:
        profile: which subset.
        kind: only ``decode``, ``encode`` or ``e2e`` comparisons, if given.

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
