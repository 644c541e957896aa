"""Differential fuzzing of the text codecs: the Cython twin against the pure-Python reference.

``Lines``, ``Delimited``, ``Netstring`` and ``FixedLength`` from
``framekit._speedups_text`` and from ``framekit.codecs.*`` get the same random
configuration and the same random calls: ``feed`` of ``bytes``, ``bytearray``
and ``memoryview`` chunks, ``get_buffer``/``buffer_updated`` with partial
writes and lying counts, ``max_frames``, ``feed(b"")``, ``eof()`` and
``detach``, plus the encode side.  After every call both must have done the
same thing: the same frames, or the same exception (type, message,
``.frames`` and its attributes), the same ``pending`` and the same
``get_buffer`` size.  Any difference is a crash (atheris saves the input).

The pure-Python modules are instrumented, so coverage of the reference guides
the search through the very branches the twin mirrors.

Run (atheris 2.3.0 has a wheel for CPython 3.11; it is not a framekit dependency)::

    pip install atheris==2.3.0
    python fuzz/fuzz_text_codecs.py -atheris_runs=200000 [corpus_dir]

It needs ``framekit._speedups_text`` built (``FRAMEKIT_BUILD_EXTENSION=yes pip install -e .``).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, List, Tuple

import atheris

with atheris.instrument_imports(include=["framekit"]):
    from framekit import _speedups_text as cython
    from framekit.codecs import _limits, delimited, fixed_length, lines, netstring
    from framekit.errors import FrameTooLarge, FramingError, IncompleteFrame

PURE = {
    "Lines": lines.Lines,
    "Delimited": delimited.Delimited,
    "Netstring": netstring.Netstring,
    "FixedLength": fixed_length.FixedLength,
}
KINDS = list(PURE)
#: Delimiters to draw from: overlapping, self-overlapping, prefixes of each other.
DELIMITERS = [b"\n", b"\r\n", b"\r", b"\x00", b"--", b"aa", b"aba", b"ab", b"b", b"\r\n\r\n"]
#: Bytes the codecs care about, drawn more often than the rest.
INTERESTING = b"\r\n\x00:,0123456789-abx"


class Mismatch(AssertionError):
    pass


def _outcome(call: Callable[[], Any]) -> Tuple[Any, ...]:
    """What a call did, in a form that can be compared between the twins."""
    try:
        result = call()
    except FramingError as exc:
        extra: Tuple[Any, ...] = ()
        if isinstance(exc, FrameTooLarge):
            extra = (exc.frame_length, exc.max_frame_size)
        elif isinstance(exc, IncompleteFrame):
            extra = (exc.pending, exc.expected)
        return ("raised", type(exc).__name__, str(exc), list(exc.frames), *extra)
    except (ValueError, TypeError, OverflowError) as exc:
        return ("raised", type(exc).__name__, str(exc))
    if isinstance(result, (list, tuple)):
        return ("ok", [bytes(x) for x in result])
    return ("ok", result)


def _each(objs: List[Any], name: str, *args: Any) -> List[Tuple[Any, ...]]:
    """``_outcome`` of the same method call on each twin."""
    return [_outcome(lambda o=o: getattr(o, name)(*args)) for o in objs]


def _same(what: str, a: Any, b: Any) -> None:
    if a != b:
        raise Mismatch(f"{what}:\n  python: {a!r}\n  cython: {b!r}")


def _bytes(fdp: atheris.FuzzedDataProvider, limit: int) -> bytes:
    """Mostly bytes the codecs care about; sometimes anything."""
    n = fdp.ConsumeIntInRange(0, limit)
    if fdp.ConsumeBool():
        return fdp.ConsumeBytes(n)
    return bytes(INTERESTING[fdp.ConsumeIntInRange(0, len(INTERESTING) - 1)] for _ in range(n))


def _config(fdp: atheris.FuzzedDataProvider) -> Tuple[str, Tuple[Any, ...], dict]:
    kind = KINDS[fdp.ConsumeIntInRange(0, len(KINDS) - 1)]
    maximum = fdp.ConsumeIntInRange(0, 40) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(1, 4)
    if kind == "Lines":
        return (
            kind,
            (),
            {
                "max_line_length": maximum,
                "keep_delimiter": fdp.ConsumeBool(),
                "fail_fast": fdp.ConsumeBool(),
                "newline": [b"\n", b"\r\n"][fdp.ConsumeIntInRange(0, 1)],
            },
        )
    if kind == "Delimited":
        count = fdp.ConsumeIntInRange(1, 3)
        delims = tuple(
            DELIMITERS[fdp.ConsumeIntInRange(0, len(DELIMITERS) - 1)] for _ in range(count)
        )
        return kind, delims, {"max_frame_size": maximum, "keep_delimiter": fdp.ConsumeBool()}
    if kind == "Netstring":
        sizes = [1, 5, 9, 10, 99, 100, 1000, maximum]
        return kind, (), {"max_frame_size": sizes[fdp.ConsumeIntInRange(0, 7)]}
    return kind, (fdp.ConsumeIntInRange(0, 9),), {}


def _view_of(chunk: bytes, how: int) -> Any:
    if how == 1:
        return bytearray(chunk)
    if how == 2:
        return memoryview(b"<" + chunk + b">")[1:-1]
    return chunk


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kind, args, kwargs = _config(fdp)
    made = [_outcome(lambda m=m: m(*args, **kwargs)) for m in (PURE[kind], getattr(cython, kind))]
    if made[0][0] == "raised" or made[1][0] == "raised":
        _same("constructor", made[0], made[1])
        return
    codecs = [PURE[kind](*args, **kwargs), getattr(cython, kind)(*args, **kwargs)]
    _same("repr", repr(codecs[0]), repr(codecs[1]))

    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        payload = _bytes(fdp, 12)
        for name in ("encode", "encode_parts"):
            out = _each(codecs, name, payload)
            if out[0][0] == "ok" and name == "encode_parts":
                out = [("ok", b"".join(o[1])) for o in out]
            _same(name, out[0], out[1])
    payloads = [_bytes(fdp, 8) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    _same("encode_many", *_each(codecs, "encode_many", payloads))

    decoders = [c.decoder() for c in codecs]
    views: List[Any] = [None, None]
    for step in range(fdp.ConsumeIntInRange(1, 24)):
        op = fdp.ConsumeIntInRange(0, 7)
        max_frames = fdp.ConsumeIntInRange(-1, 3)
        if op <= 2:  # feed, of bytes, bytearray or memoryview
            out = _each(decoders, "feed", _view_of(_bytes(fdp, 40), op), max_frames)
        elif op == 3:  # feed(b""): decode what is held
            out = _each(decoders, "feed", b"", max_frames)
        elif op == 4:  # get_buffer, write some of it
            sizehint = fdp.ConsumeIntInRange(-1, 70)
            chunk = _bytes(fdp, 80)
            out = []
            for i, got in enumerate(_each(decoders, "get_buffer", sizehint)):
                if got[0] == "ok":
                    views[i] = got[1]
                    n = min(len(chunk), len(views[i]))
                    views[i][:n] = chunk[:n]
                    got = ("ok", len(views[i]))
                out.append(got)
        elif op == 5:  # buffer_updated: honest, short, or lying
            out = _each(decoders, "buffer_updated", fdp.ConsumeIntInRange(0, 100), max_frames)
            views = [None, None]
        elif op == 6:
            out = _each(decoders, "eof")
        else:
            out = _each(decoders, "detach", fdp.ConsumeIntInRange(-1, 4))
        _same(f"step {step} (op {op})", out[0], out[1])
        _same(f"pending after step {step}", decoders[0].pending, decoders[1].pending)


def main() -> None:
    assert _limits.DEFAULT_READ_SIZE > 0  # the shared module is the one both twins use
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
