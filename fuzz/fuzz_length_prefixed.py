"""Differential fuzzing of LengthPrefixed: the Cython twin against the pure reference.

Run it for as long as you like (atheris, on Linux x86_64)::

    python fuzz/fuzz_length_prefixed.py -max_total_time=36000 -jobs=2 fuzz/corpus

Each input is a random configuration, a few frames encoded with it, and a
sequence of operations on a decoder of each backend: ``feed`` (bytes, a
``bytearray``, a memoryview, non-contiguous views) and
``get_buffer``/``buffer_updated`` at random split points, with lying counts
and writes into stale views, ``max_frames``, ``detach``, the ``stream_*``
calls, ``eof``, and the encode side.  Any difference in a result, an error
type or message, ``.frames``, ``pending`` or ``stream_remaining`` is a crash.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _differential import Source, Twins

from framekit.codecs import _limits
from framekit.codecs import length_prefixed as pure

try:
    from framekit import _speedups as fast
except ImportError:  # pragma: no cover
    fast = None  # type: ignore[assignment]


def _config(src: Source) -> Dict[str, Any]:
    offset = src.int(0, 3)
    return {
        "length_size": src.pick([1, 2, 3, 4, 8, "varint"]),
        "byteorder": src.pick(["big", "little"]),
        "length_offset": offset,
        "length_adjustment": src.int(-6, 6),
        "strip": src.pick([None, None, 0, 1, offset + 1, offset + 9]),
        "max_frame_size": src.pick([offset + 14, 64, 300, 5000, 1 << 20]),
        "fail_fast": src.bool(),
        "varint_max_bytes": src.int(1, 10),
    }


def _wire(src: Source, codecs: Twins, prefix: bytes) -> bytes:
    """Frames encoded by both twins (which must agree), then raw bytes."""
    wire = b""
    codec = codecs.objects[0]
    for _ in range(src.int(0, 6)):
        payload = src.bytes(src.pick([8, 64, 400, 3000]))
        out = codecs.call("encode", payload, prefix=prefix)
        if out[0] == "ok":
            wire += out[1]
        codecs.call("encode_parts", payload, prefix=prefix)
        codecs.call("header", len(payload), prefix=prefix, max_frame_size=src.pick([None, 1 << 30]))
    if src.bool():
        codecs.call("encode_many", [b"a", b"bc" * src.int(0, 50)], prefix=prefix)
    codecs.call("header", src.pick([-1, 0, 2**63, 2**70]), prefix=src.pick([prefix, b"x"]))
    del codec
    return wire + src.bytes(64)


def one_input(data: bytes) -> None:
    """Run one fuzz case (also used by tests/test_codec_fuzz.py under hypothesis)."""
    if fast is None:
        raise RuntimeError("framekit._speedups was not built")
    src = Source(data)
    cfg = _config(src)
    size = cfg.pop("length_size")
    saved = _limits.DIRECT_MIN, _limits.DIRECT_RATIO
    _limits.DIRECT_MIN, _limits.DIRECT_RATIO = src.pick([saved, (1, 10**9), (8, 2), (30, 3)])
    try:
        try:
            codecs = Twins(
                [pure.LengthPrefixed(size, **cfg), fast.LengthPrefixed(size, **cfg)],
                ["python", "cython"],
            )
        except ValueError:
            return  # an invalid configuration (both refuse it: tested elsewhere)
        prefix = bytes([src.int(0, 255)]) * cfg["length_offset"]
        wire = _wire(src, codecs, prefix)
        decoders = Twins([c.decoder() for c in codecs.objects], codecs.names)
        _run(src, decoders, wire)
    finally:
        _limits.DIRECT_MIN, _limits.DIRECT_RATIO = saved


def _run(src: Source, dec: Twins, wire: bytes) -> None:
    pos = 0
    for _ in range(src.int(1, 40)):
        op = src.int(0, 15)
        chunk = wire[pos : pos + src.pick([0, 1, 3, 7, 50, 500, 5000])]
        max_frames = src.pick([-1, -1, 0, 1, 2, 5])
        if op <= 3:
            kind = src.int(0, 3)
            data: Any = chunk
            if kind == 1:
                data = bytearray(chunk)
            elif kind == 2:
                data = memoryview(b"\x00" + chunk)[1:]
            elif kind == 3 and src.bool():
                data = memoryview(chunk + chunk)[::2]  # non-contiguous
            out = dec.call("feed", data, max_frames=max_frames)
            if out[0] == "ok" or (out[1] not in ("BufferError", "ValueError")):
                pos += len(chunk)
        elif op <= 7:
            hint = src.pick([-1, 1, 16, 4096, 1 << 16, 1 << 18])
            out = dec.call("get_buffer", hint)
            if out[0] == "ok":
                size = out[1][1]
                n = min(size, len(chunk))
                dec.write(0, 0, chunk[:n])
                claim = src.pick([n, n, 0, size, n + 1, -1, 2**70])
                done = dec.call("buffer_updated", claim, max_frames=max_frames)
                if done[0] == "ok" or done[1] in ("FrameTooLarge", "CorruptedFrame"):
                    pos += n
                    if claim > n and claim <= size:
                        pos = len(wire)  # the stream is out of step from here on
        elif op == 8:
            dec.write(src.int(0, 3), src.int(0, 100), src.bytes(20))
        elif op == 9:
            dec.call("detach", src.pick([0, 0, 1, 2, -1]))
        elif op == 10:
            dec.set("stream_limit", src.pick([0, 100, 5000, 1 << 20, -1]))
        elif op == 11:
            dec.call("stream_begin")
        elif op == 12:
            dec.call("stream_read", src.pick([0, 1, 10, 1000]))
        elif op == 13:
            dec.call("stream_advance", src.pick([0, 1, 10, 10**6]))
        elif op == 14:
            dec.call("stream_discard")
        else:
            dec.call("eof")
        dec.get("pending")
        dec.get("stream_remaining")
        dec.forget_views(4)


def main() -> None:  # pragma: no cover - the atheris entry point
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main()
