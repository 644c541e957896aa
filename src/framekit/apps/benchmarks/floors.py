"""Floors: the least work any framing could do, to tell how far from the limit we are.

Design notes
------------
A floor does no framing at all; it is given what a decoder has to find.

* **bytes**: make the very same ``bytes`` objects from ready-made offsets.
  Every decoder that returns ``bytes`` must at least allocate them and copy
  their payloads, so this is the limit at small sizes, where the allocator
  dominates.  Without a compiler the fastest way is ``struct``: the offsets
  are compiled into formats (``4x16s4x16s...``, a few thousand items each) and
  one ``unpack_from`` call makes a few thousand ``bytes`` in a C loop, about as
  a decoder makes one feed's worth of frames.  (``map(stream.__getitem__,
  slices)`` is four times slower at 16 B: slicing pays for the slice object.)
  It is a best effort, not a proof: a decoder in C can still beat it by a
  little, having no format to interpret.
* **memcpy**: copy every byte of the stream once, into memory allocated
  beforehand (``memoryview`` slice assignment: one ``memcpy`` per piece of at
  least 64 KiB, cut at frame boundaries): the limit at large sizes, where
  decoding is copying.  It makes no objects, so at small sizes it is far above
  anything that returns frames.  Where the bytes land follows the mode: in
  "stream" mode a decoder's frames are freed at once and their memory is
  reused, still in cache, so the floor copies every piece into one reused
  buffer; in "list" mode the floor copies the stream into a buffer as large
  as the stream (and returns it, to be checked).  That buffer too is
  allocated once, when the runner is built, and every run copies into the
  same, already mapped memory, whereas a decoder's kept frames are fresh
  allocations each run: the list-mode memcpy floor leaves out the cost of
  getting new memory (page faults, a cold cache), and so is a lower bound
  the decoders cannot reach at large sizes, not a fair race.

Floors see the whole stream at once, however the scenario feeds it: they are
what the work costs with no per-feed overhead.  Their outputs are checked like
anyone's: the bytes floor must return the expected items, the memcpy floor a
copy of the stream; in "stream" mode both return a frame count (the items the
bytes floor made, the frames in the pieces the memcpy floor copied).
"""

from __future__ import annotations

import struct
from typing import Any, Callable, List, Tuple

from .harness import ROLE_FLOOR, Contestant, Runner
from .workloads import Workload

__all__ = ["FLOOR_BYTES", "FLOOR_MEMCPY", "floor_contestants"]

FLOOR_BYTES = "floor-bytes"
FLOOR_MEMCPY = "floor-memcpy"

#: Items per ``struct`` format of the bytes floor.
_GROUP = 2048
#: The memcpy floor copies at least this much per call.
_PIECE = 64 * 1024


def _unpackers(w: Workload) -> List[Tuple[Callable[[bytes, int], Tuple[bytes, ...]], int]]:
    """``(unpack_from, offset)`` pairs that cut :attr:`Workload.slices` out of the stream.

    Each ``struct`` format covers up to ``_GROUP`` items: ``<gap>x<length>s``
    per item, the offsets compiled in.
    """
    out: List[Tuple[Callable[[bytes, int], Tuple[bytes, ...]], int]] = []
    slices = w.slices
    for i in range(0, len(slices), _GROUP):
        group = slices[i : i + _GROUP]
        pos = start = group[0].start
        codes = []
        for s in group:
            codes.append(f"{s.start - pos}x{s.stop - s.start}s")
            pos = s.stop
        out.append((struct.Struct("<" + "".join(codes)).unpack_from, start))
    return out


def _make_bytes_floor(w: Workload, keep: bool) -> Runner:
    wire = w.wire
    unpackers = _unpackers(w)
    if keep:

        def run_kept() -> List[bytes]:
            frames: List[bytes] = []
            for unpack_from, offset in unpackers:
                frames += unpack_from(wire, offset)
            return frames

        return run_kept

    def run() -> int:
        count = 0
        for unpack_from, offset in unpackers:
            count += len(unpack_from(wire, offset))
        return count

    return run


def _pieces(w: Workload) -> List[Tuple[slice, int]]:
    """The stream cut at frame boundaries into pieces of at least ``_PIECE`` bytes.

    Returns:
        ``(piece, frames)`` pairs: a slice of the stream and the frames it holds.
    """
    pieces = []
    start = frames = 0
    for s in w.slices:
        frames += 1
        if s.stop - start >= _PIECE:
            pieces.append((slice(start, s.stop), frames))
            start, frames = s.stop, 0
    if start < len(w.wire):
        pieces.append((slice(start, len(w.wire)), frames))
    return pieces


def _make_memcpy_floor(w: Workload, keep: bool) -> Runner:
    src = memoryview(w.wire)
    pieces = [(src[p], p.stop - p.start, frames) for p, frames in _pieces(w)]
    if keep:
        kept = bytearray(len(w.wire))  # once: every run copies into the same memory

        def run_kept() -> Any:
            memoryview(kept)[:] = src
            return kept

        return run_kept
    dst = memoryview(bytearray(max(n for _, n, _ in pieces)))

    def run() -> int:
        count = 0
        for piece, n, frames in pieces:
            dst[:n] = piece
            count += frames
        return count

    return run


def floor_contestants(*names: str) -> List[Contestant]:
    """The floors by name (both when no name is given)."""
    floors = {
        FLOOR_BYTES: Contestant(
            FLOOR_BYTES, "floor: bytes from offsets", ROLE_FLOOR, _make_bytes_floor
        ),
        FLOOR_MEMCPY: Contestant(FLOOR_MEMCPY, "floor: memcpy", ROLE_FLOOR, _make_memcpy_floor),
    }
    return [floors[n] for n in (names or tuple(floors))]
