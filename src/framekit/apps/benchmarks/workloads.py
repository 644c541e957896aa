"""What the contestants chew on: payloads, the wire streams made of them, and how they are fed.

Design notes
------------
A workload is built once, outside any timing, and holds everything a run needs
ready-made: the payloads, the framed stream, the stream cut into the chunks a
socket would deliver, and the expected output.  Every contestant of a
comparison gets the very same workload, so they decode the same bytes.

Payloads are distinct (each starts with its index in hex) so that a contestant
that drops, repeats or reorders frames fails its check, and they are plain
ASCII letters and digits so that every framing can carry them unescaped (RESP,
netstrings, and newline- or NUL-delimited streams alike).

A workload's size is a byte budget (times ``scale``) rather than a frame count:
a run of 16-byte frames and a run of 1 MiB frames then take times of the same
order, long enough to time and short enough to repeat.

Peers speak other wire formats (msgpack, RESP, ...).  :meth:`Workload.cached`
builds such an equivalent stream once per workload and caches it; it is cut in
chunks of the same size as the framekit stream's.
"""

from __future__ import annotations

import hashlib
import random
import struct
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

__all__ = [
    "SIZES",
    "CHUNK_64K",
    "CHUNK_7",
    "WHOLE",
    "DecodeWorkload",
    "EncodeWorkload",
    "Workload",
    "chunk_label",
    "cut",
    "frame_count",
    "make_payloads",
    "payload",
    "size_label",
    "stream_block",
    "stream_chunks",
    "stream_digest",
    "verify_frames",
]

#: The payload sizes measured: 16 B, 64 B, 256 B, 4 KiB, 64 KiB, 1 MiB.
SIZES = (16, 64, 256, 4096, 65536, 1 << 20)
#: Feed sizes: 64 KiB (a typical recv), 7 bytes (per-call overhead), whole stream (0).
CHUNK_64K = 65536
CHUNK_7 = 7
WHOLE = 0

#: The length prefix every LengthPrefixed contestant uses: 4 bytes, big-endian.
_HEADER = struct.Struct(">I")
_LETTERS = b"abcdefghijklmnopqrstuvwxyz"

T = TypeVar("T")


def size_label(size: int) -> str:
    """``16 B``, ``4 KiB``, ``1 MiB``, ``1 GiB``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"


def chunk_label(chunk: int) -> str:
    """How a stream is fed: ``64 KiB feeds``, ``7-byte feeds``, ``one buffer``."""
    if chunk == WHOLE:
        return "one buffer"
    if chunk < 1024:
        return f"{chunk}-byte feeds"
    return f"{size_label(chunk)} feeds"


def payload(index: int, size: int) -> bytes:
    """The ``index``-th payload of ``size`` bytes: its index in hex, then one letter.

    Distinct for distinct indexes (up to 16**size), ASCII only.
    """
    head = b"%08x" % (index & 0xFFFFFFFF)
    fill = _LETTERS[index % 26 : index % 26 + 1] * max(size - len(head), 0)
    return (head + fill)[:size]


def make_payloads(size: int, count: int) -> List[bytes]:
    """``count`` distinct payloads of ``size`` bytes (see :func:`payload`)."""
    return [payload(i, size) for i in range(count)]


def frame_count(size: int, budget: int, scale: float, *, min_frames: int = 8) -> int:
    """How many frames of ``size`` bytes fit ``budget * scale`` bytes of stream (at least one)."""
    by_budget = int(budget * scale) // (size + _HEADER.size)
    return max(1, by_budget, int(min_frames * scale))


def cut(stream: bytes, chunk: int) -> List[bytes]:
    """``stream`` in pieces of ``chunk`` bytes (the last may be shorter); whole if 0."""
    if chunk == WHOLE:
        return [stream]
    return [stream[i : i + chunk] for i in range(0, len(stream), chunk)]


#: The period of a streamed payload: 1 MiB and 7 bytes, so no read or chunk size lines up with
#: it, and a receiver that drops, repeats or reorders a piece gets another sha256.
_STREAM_BLOCK = (1 << 20) + 7
_stream_block: List[bytes] = []


def stream_block() -> bytes:
    """The block a streamed payload repeats: random bytes, the same in every process."""
    if not _stream_block:
        _stream_block.append(random.Random(0x5EED).randbytes(_STREAM_BLOCK))
    return _stream_block[0]


def stream_chunks(length: int) -> Iterator[memoryview]:
    """A streamed payload of ``length`` bytes, as views of :func:`stream_block`: never held."""
    block = memoryview(stream_block())
    while length > 0:
        chunk = block[:length]
        yield chunk
        length -= len(chunk)


def stream_digest(length: int) -> str:
    """The sha256 (hex) of the ``length``-byte streamed payload."""
    digest = hashlib.sha256()
    for chunk in stream_chunks(length):
        digest.update(chunk)
    return digest.hexdigest()


def _header(n: int) -> bytes:
    return _HEADER.pack(n)


def _encode_lp4(payloads: Sequence[bytes]) -> Tuple[bytes, List[slice], List[slice]]:
    """The 4-byte-length-prefixed stream, and where each frame and each payload lies in it."""
    parts: List[bytes] = []
    frames: List[slice] = []
    bodies: List[slice] = []
    pos = 0
    for p in payloads:
        parts.append(_header(len(p)))
        parts.append(p)
        end = pos + _HEADER.size + len(p)
        frames.append(slice(pos, end))
        bodies.append(slice(pos + _HEADER.size, end))
        pos = end
    return b"".join(parts), frames, bodies


def verify_frames(output: Sequence[Any], expected: Sequence[bytes]) -> Optional[str]:
    """Compare a contestant's frames with the expected ones; describe the first difference.

    Returns:
        ``None`` when they are equal, else a one-line description.
    """
    if len(output) != len(expected):
        return f"{len(output)} frames instead of {len(expected)}"
    for i, (got, want) in enumerate(zip(output, expected)):
        if type(got) is not bytes:
            return f"frame {i} is a {type(got).__name__}, not bytes"
        if got != want:
            return f"frame {i} differs: {got[:24]!r}... instead of {want[:24]!r}..."
    return None


class Workload:
    """The input and the expected output of one comparison.

    Attributes:
        size: payload size in bytes.
        payloads: the payloads, in order.
        wire: the 4-byte-length-prefixed stream of those payloads.
        expected: what a contestant that outputs a list must return.
        slices: where each item of ``expected`` lies in ``wire`` (for the floors).
        frames: frames per run (for frames/s).
        payload_bytes: payload bytes per run (for MB/s).
    """

    size: int
    payloads: List[bytes]
    wire: bytes
    expected: List[bytes]
    slices: List[slice]
    frames: int
    payload_bytes: int

    def __init__(self, size: int, count: int) -> None:
        self.size = size
        self.payloads = make_payloads(size, count)
        self.wire, self._frame_slices, self._body_slices = _encode_lp4(self.payloads)
        self.expected = self.payloads
        self.slices = self._body_slices
        self.frames = count
        self.payload_bytes = size * count
        self._cache: Dict[str, Any] = {}

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """Return ``build()``, built once per workload (a peer's equivalent stream)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]  # type: ignore[no-any-return]

    def verify(self, output: Any) -> Optional[str]:
        """Check a contestant's output.

        A list must equal :attr:`expected`; a bytes-like output (the memcpy
        floor's) must equal :attr:`wire`; an ``int`` (a "stream" run, which
        drops its frames and counts them) must equal :attr:`frames`.
        ``None`` is wrong: a run that returns nothing could not be checked.

        Returns:
            ``None`` if the output is right, else what is wrong with it.
        """
        if output is None:
            return "no output: a run must return its frames or how many there were"
        if isinstance(output, int) and not isinstance(output, bool):
            if output != self.frames:
                return f"{output} frames instead of {self.frames}"
            return None
        if isinstance(output, (bytes, bytearray, memoryview)):
            if bytes(output) != self.wire:
                return "the copied bytes differ from the stream"
            return None
        if isinstance(output, list):
            return verify_frames(output, self.expected)
        return f"unexpected output type {type(output).__name__}"


class DecodeWorkload(Workload):
    """A stream of frames to decode, fed in ``chunk``-byte pieces.

    Attributes:
        chunk: feed size in bytes; 0 feeds the whole stream at once.
        chunks: :attr:`wire` cut into feeds.
        keep: whether the scenario keeps every frame ("list") or drops them ("stream").
    """

    def __init__(self, size: int, count: int, chunk: int, keep: bool) -> None:
        super().__init__(size, count)
        self.chunk = chunk
        self.keep = keep
        self.chunks = cut(self.wire, chunk)

    def chunks_of(self, key: str, encode: Callable[[List[bytes]], bytes]) -> List[bytes]:
        """An equivalent stream in another format, ``encode(payloads)``, cut like :attr:`chunks`."""
        return self.cached(key, lambda: cut(encode(self.payloads), self.chunk))


class EncodeWorkload(Workload):
    """Payloads to encode; ``op`` says what is expected.

    ``"encode"`` expects each whole frame, ``"encode_many"`` the whole stream
    (a bytes output, checked against :attr:`wire`), ``"header"`` each header.
    """

    def __init__(self, size: int, count: int, op: str) -> None:
        super().__init__(size, count)
        self.op = op
        self.sizes = [len(p) for p in self.payloads]
        if op == "encode":
            self.slices = self._frame_slices
        elif op == "header":
            self.slices = [slice(s.start, s.start + _HEADER.size) for s in self._frame_slices]
        elif op != "encode_many":
            raise ValueError(f"unknown encode op {op!r}")
        self.expected = [self.wire[s] for s in self.slices] if op != "encode_many" else []

    def verify(self, output: Any) -> Optional[str]:
        if self.op == "encode_many" and isinstance(output, list):
            return "encode_many must return one buffer"
        return super().verify(output)
