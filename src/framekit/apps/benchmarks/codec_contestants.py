"""framekit's codecs as contestants, and the naive hand-written codec they replace.

Design notes
------------
Both backends are measured by name (``framekit._speedups`` and
``framekit.codecs.length_prefixed``, which :mod:`framekit.codecs.backend` keeps importable for
benchmarks) and used only through the public codec API: ``LengthPrefixed(4)``,
``decoder().feed()``, ``encode``, ``encode_many``, ``header``.

The two decode modes differ only in what happens to the list each ``feed``
returns: "stream" drops it at once, like a server in steady state; "list"
keeps every frame, which at small sizes mostly measures the allocator.  The
naive decoder has the same ``feed`` API, so the very same driver runs it.

Encoders map the codec's method over the payloads with ``map`` (a C loop), so
the per-call cost of the method is what shows.
"""

from __future__ import annotations

import importlib
import struct
from typing import Any, Callable, List

from .harness import ROLE_FRAMEKIT, ROLE_PEER, ROLE_PYTHON, Contestant, Runner
from .workloads import DecodeWorkload, EncodeWorkload

__all__ = [
    "NaiveDecoder",
    "decode_contestants",
    "encode_contestants",
    "feed_runner",
    "naive_encode",
]

_unpack_from = struct.Struct(">I").unpack_from
_pack = struct.Struct(">I").pack

#: (name, label, role, module) of the two backends.
_BACKENDS = (
    ("cython", "framekit (cython)", ROLE_FRAMEKIT, "framekit._speedups"),
    ("python", "framekit (python)", ROLE_PYTHON, "framekit.codecs.length_prefixed"),
)


def feed_runner(new_decoder: Callable[[], Any], chunks: List[bytes], keep: bool) -> Runner:
    """A run that feeds ``chunks`` to a fresh decoder with the ``feed(data) -> list`` API.

    Args:
        new_decoder: makes a decoder (called once per run).
        chunks: the feeds.
        keep: keep every frame and return them ("list"), or drop each
            returned list at once and return how many frames there were
            ("stream"; the harness checks that count).
    """
    if keep:

        def run_list() -> List[bytes]:
            feed = new_decoder().feed
            frames: List[bytes] = []
            for chunk in chunks:
                frames += feed(chunk)
            return frames

        return run_list

    def run_stream() -> int:
        feed = new_decoder().feed
        count = 0
        for chunk in chunks:
            count += len(feed(chunk))
        return count

    return run_stream


class NaiveDecoder:
    """The decoder people write first: a ``bytearray``, ``struct`` and ``del buf[:n]``."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> List[bytes]:
        """Append ``data``; return the complete frames (4-byte big-endian lengths)."""
        buf = self._buf
        buf += data
        frames = []
        while len(buf) >= 4:
            (n,) = _unpack_from(buf)
            end = 4 + n
            if len(buf) < end:
                break
            frames.append(bytes(buf[4:end]))
            del buf[:end]
        return frames


def naive_encode(payload: bytes) -> bytes:
    """The encoder people write first: ``struct.pack`` and ``+``."""
    return _pack(len(payload)) + payload


def _codec(module: str) -> Any:
    return importlib.import_module(module).LengthPrefixed(4)


def _framekit_decoder(name: str, label: str, role: str, module: str) -> Contestant:
    def make(w: DecodeWorkload, keep: bool) -> Runner:
        return feed_runner(_codec(module).decoder, w.chunks, keep)

    return Contestant(name, label, role, make, needs=(module,))


def _make_naive_decoder(w: DecodeWorkload, keep: bool) -> Runner:
    return feed_runner(NaiveDecoder, w.chunks, keep)


def _other_framing(name: str, label: str, factory: str, *args: Any) -> Contestant:
    """A framekit codec with another wire format, decoding its own encoding of the payloads."""

    def make(w: DecodeWorkload, keep: bool) -> Runner:
        codec = getattr(importlib.import_module("framekit"), factory)(*args)
        chunks = w.chunks_of(name, codec.encode_many)
        return feed_runner(codec.decoder, chunks, keep)

    return Contestant(name, label, ROLE_FRAMEKIT, make, needs=(f"framekit:{factory}",))


def decode_contestants() -> List[Contestant]:
    """Both backends and the naive decoder on the 4-byte-prefixed stream; framekit's
    ``Delimited`` (newlines) and ``Netstring`` on their own encodings of the payloads."""
    return [
        *(_framekit_decoder(*backend) for backend in _BACKENDS),
        Contestant("naive", "naive bytearray+struct", ROLE_PEER, _make_naive_decoder),
        _other_framing("delimited", "framekit Delimited(b'\\n')", "Delimited", b"\n"),
        _other_framing("netstring", "framekit Netstring", "Netstring"),
    ]


def _encode_runner(op: str, codec: Any, w: EncodeWorkload) -> Runner:
    """``op`` of ``codec`` (or of the naive encoder when ``codec`` is None) over the payloads."""
    payloads = w.payloads
    if op == "encode":
        encode = naive_encode if codec is None else codec.encode
        return lambda: list(map(encode, payloads))
    if op == "encode_many":
        if codec is None:
            return lambda: b"".join([_pack(len(p)) + p for p in payloads])
        encode_many = codec.encode_many
        return lambda: encode_many(payloads)
    header = _pack if codec is None else codec.header
    sizes = w.sizes
    return lambda: list(map(header, sizes))


def encode_contestants(op: str) -> List[Contestant]:
    """Both backends' ``op`` (``encode``, ``encode_many`` or ``header``), and the naive one."""
    out = []
    for name, label, role, module in _BACKENDS:

        def make(w: EncodeWorkload, keep: bool, module: str = module) -> Runner:
            return _encode_runner(op, _codec(module), w)

        out.append(Contestant(name, label, role, make, needs=(module,)))

    def make_naive(w: EncodeWorkload, keep: bool) -> Runner:
        return _encode_runner(op, None, w)

    out.append(Contestant("naive", "naive struct.pack", ROLE_PEER, make_naive))
    return out
