"""Lines, several delimiters and netstrings: framekit's text codecs against their pure twins,
the ``bytes.split`` floor, Twisted's ``LineReceiver`` and asyncio's ``StreamReader``.

Design notes
------------
A :class:`TextWorkload` is a decode workload whose stream is the payloads in
the codec's own wire format (newline-terminated lines, ``\\r\\n``-terminated
frames for ``Delimited(b"\\r\\n", b"\\n")``, netstrings), cut into feeds of the
scenario's size.  Every contestant decodes those very chunks.

* framekit: both backends by name (``framekit._speedups_text``, and the pure
  modules ``framekit.codecs.lines``, ``delimited``, ``netstring``), through
  ``decoder().feed()``, driven by the same :func:`feed_runner` as the
  length-prefixed rows.
* **floor: bytes.split**: ``(carry + chunk).split(b"\\n")`` on every chunk,
  the last piece carried over to the next: what cutting lines costs in C with
  no framing logic at all (no ``\\r`` handling, no length limit, no error
  paths).  It makes the same ``bytes`` objects a line decoder returns.
* Twisted's ``LineReceiver`` (``delimiter = b"\\n"``; in :mod:`.peers`) gets
  the chunks through ``dataReceived``; ``lineReceived`` counts or keeps each line.
* asyncio's ``StreamReader`` is fed each chunk with ``feed_data`` and then
  read with ``await readuntil(b"\\n")`` once per line the chunk completed
  (``chunk.count(b"\\n")``, in the timed loop), inside one coroutine: what a
  protocol written on streams pays per line, without the socket.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any, List

from .codec_contestants import feed_runner
from .harness import ROLE_FLOOR, ROLE_FRAMEKIT, ROLE_PEER, ROLE_PYTHON, Contestant, Runner
from .peers import line_receiver_contestant
from .workloads import DecodeWorkload, cut

__all__ = [
    "FLOOR_SPLIT",
    "TEXT_FRAMINGS",
    "TextWorkload",
    "delimited_contestants",
    "lines_contestants",
    "netstring_contestants",
]

FLOOR_SPLIT = "floor-split"

#: The codec each text scenario decodes: (class name, positional arguments).
TEXT_FRAMINGS = {
    "lines": ("Lines", ()),
    "delimited": ("Delimited", (b"\r\n", b"\n")),
    "netstring": ("Netstring", ()),
}
#: Where the pure twin of each class lives.
_PURE = {
    "Lines": "framekit.codecs.lines",
    "Delimited": "framekit.codecs.delimited",
    "Netstring": "framekit.codecs.netstring",
}
_CYTHON = "framekit._speedups_text"


class TextWorkload(DecodeWorkload):
    """A decode workload whose stream is the payloads in a text framing.

    Args:
        framing: a key of :data:`TEXT_FRAMINGS`.
        size, count, chunk, keep: as :class:`DecodeWorkload`.
    """

    def __init__(self, framing: str, size: int, count: int, chunk: int, keep: bool) -> None:
        super().__init__(size, count, chunk, keep)
        name, args = TEXT_FRAMINGS[framing]
        codec = getattr(importlib.import_module(_PURE[name]), name)(*args)
        self.framing = framing
        self.wire = codec.encode_many(self.payloads)
        self.chunks = cut(self.wire, chunk)
        self.slices = []
        pos = 0
        for p in self.payloads:
            start = self.wire.index(p, pos)
            self.slices.append(slice(start, start + len(p)))
            pos = start + len(p)


def _codec(module: str, framing: str) -> Any:
    name, args = TEXT_FRAMINGS[framing]
    return getattr(importlib.import_module(module), name)(*args)


def _twins(framing: str) -> List[Contestant]:
    name = TEXT_FRAMINGS[framing][0]
    out = []
    for tag, label, role, module in (
        ("cython", f"framekit {name} (cython)", ROLE_FRAMEKIT, _CYTHON),
        ("python", f"framekit {name} (python)", ROLE_PYTHON, _PURE[name]),
    ):

        def make(w: TextWorkload, keep: bool, module: str = module) -> Runner:
            return feed_runner(_codec(module, w.framing).decoder, w.chunks, keep)

        out.append(Contestant(tag, label, role, make, needs=(module,)))
    return out


def _make_split_floor(w: TextWorkload, keep: bool) -> Runner:
    chunks = w.chunks
    if keep:

        def run_kept() -> List[bytes]:
            frames: List[bytes] = []
            carry = b""
            for chunk in chunks:
                lines = (carry + chunk).split(b"\n")
                carry = lines.pop()
                frames += lines
            return frames

        return run_kept

    def run() -> int:
        count = 0
        carry = b""
        for chunk in chunks:
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            count += len(lines)
        return count

    return run


def _make_readuntil(w: TextWorkload, keep: bool) -> Runner:
    chunks = w.chunks

    async def consume() -> Any:
        reader = asyncio.StreamReader(limit=1 << 30)
        feed_data = reader.feed_data
        readuntil = reader.readuntil
        frames: List[bytes] = []
        count = 0
        for chunk in chunks:
            feed_data(chunk)
            for _ in range(chunk.count(b"\n")):
                line = await readuntil(b"\n")
                if keep:
                    frames.append(line[:-1])
                count += 1
        return frames if keep else count

    def run() -> Any:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(consume())
        finally:
            loop.close()

    return run


def lines_contestants() -> List[Contestant]:
    """``Lines`` on both backends, the ``bytes.split`` floor, Twisted and asyncio."""
    return [
        *_twins("lines"),
        Contestant(FLOOR_SPLIT, "floor: bytes.split + carry", ROLE_FLOOR, _make_split_floor),
        line_receiver_contestant(),
        Contestant("readuntil", "asyncio StreamReader.readuntil", ROLE_PEER, _make_readuntil),
    ]


def delimited_contestants() -> List[Contestant]:
    """``Delimited(b"\\r\\n", b"\\n")`` on both backends."""
    return _twins("delimited")


def netstring_contestants() -> List[Contestant]:
    """``Netstring`` on both backends."""
    return _twins("netstring")
