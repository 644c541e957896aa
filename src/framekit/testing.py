"""A conformance kit for codecs: does this framing keep the ``framekit.Codec`` contract?

Design notes
------------
``check_codec(codec)`` runs property-based checks (hypothesis) of everything a
transport relies on, and raises :class:`ContractViolation` (an
``AssertionError``, so pytest shows it as a failure) with the smallest example
hypothesis found.  It returns a :class:`Report` of the checks run and those
skipped, with the reason.  The checks, by name (:data:`CHECKS`):

``round_trip``
    Frames come out as they went in, whatever the split: at every split
    point of a short stream, and at random splits, fed from a reused buffer
    that is overwritten after each call (a decoder must copy what it keeps).
    ``encode_many`` and ``encode_parts`` agree with ``encode``; frames are
    ``bytes``; ``pending`` is 0 between frames.
``receive_paths``
    ``get_buffer()``/``buffer_updated()``, with reads of random sizes, give
    exactly what ``feed`` gives.
``error_frames``
    Bytes that must be refused (``invalid``), after whole frames: the
    ``FramingError`` carries the frames decoded before it in ``.frames``,
    and no frame is lost or repeated, however the stream is split.
``hostile_headers``
    Headers that announce huge frames (``hostile``), then a trickle of bytes:
    the memory the decoder allocates (tracemalloc) and the room
    ``get_buffer()`` offers stay within ``memory_ratio`` times what was sent,
    plus 1 MiB.
``eof``
    ``eof()`` is silent between frames and raises ``IncompleteFrame``
    inside one (with ``pending`` > 0 before it).
``encode_limit``
    ``encode``, ``encode_many``, ``encode_parts`` (and ``header``, if the
    codec has it) refuse a payload above ``max_frame_size`` with
    ``FrameTooLarge``, before copying it.  A payload above 64 MiB is an
    untouched anonymous mapping, so the check costs no memory.
``switching``
    Only for a decoder that declares it (``detach``, see "Optional
    capabilities" in :mod:`framekit.codecs.interface`): ``max_frames`` bounds
    each call and loses nothing; ``detach(unused)`` hands back exactly the
    stream after the last frame taken; a detached decoder refuses every call.

What a check needs to know about a codec (which payloads it carries, what a
decoded frame looks like, which bytes are invalid, what a hostile header is)
is worked out for the built-in codecs (``LengthPrefixed`` in any
configuration, presets included, ``Delimited``, ``Netstring``).  For any
other codec, payload sizes are probed (zero bytes, sizes 0 to 256) and the
rest can be given: ``payloads=`` (a hypothesis strategy), ``encode=``,
``expected=``, ``invalid=``, ``hostile=``.  A check that lacks what it
needs is skipped, and the report says why.

hypothesis is imported when a check runs, not with this module: it is a test
dependency (``pip install hypothesis``), never a runtime one.
"""

from __future__ import annotations

import mmap
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from .errors import CorruptedFrame, FrameTooLarge, FramingError, IncompleteFrame

__all__ = ["CHECKS", "ContractViolation", "Report", "check_codec"]

_F = TypeVar("_F", bound=Callable[..., None])

#: Every check, in the order they run.
CHECKS: Tuple[str, ...] = (
    "round_trip",
    "receive_paths",
    "error_frames",
    "hostile_headers",
    "eof",
    "encode_limit",
    "switching",
)

#: Bytes trickled after a hostile header.
_TRICKLE = 512 * 1024
_TRICKLE_PIECE = 4096
#: Memory allowed beyond ``memory_ratio`` times what was sent.
_SLACK = 1024 * 1024
#: Above this, the oversized payload of ``encode_limit`` is an anonymous mapping.
_MAP_ABOVE = 64 * 1024 * 1024
#: Largest payload the probes and round trips use.
_PROBE_MAX = 256
#: Every split point is tried for streams up to this size; beyond, a sample of them.
_ALL_SPLITS_UP_TO = 300


class ContractViolation(AssertionError):
    """The codec broke the contract; the message names the check and the example."""


@dataclass
class Report:
    """What :func:`check_codec` did.

    Attributes:
        ran: the checks that ran (and passed).
        skipped: check name -> why it did not run.
    """

    codec: str
    ran: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)


@dataclass
class _Profile:
    """What the checks need to know about one codec."""

    codec: Any
    encode: Callable[[bytes], bytes]
    encode_many: Optional[Callable[[List[bytes]], bytes]]
    encode_parts: Optional[Callable[[bytes], Sequence[Any]]]
    header: Optional[Callable[[int], bytes]]
    expected: Callable[[bytes, bytes], bytes]
    payloads: Any  # a hypothesis strategy, or None: no payload could be carried
    invalid: List[bytes]
    hostile: List[bytes]
    filler: bytes
    max_frame_size: Optional[int]


def check_codec(
    codec: Any,
    *,
    payloads: Any = None,
    encode: Optional[Callable[[bytes], bytes]] = None,
    expected: Optional[Callable[[bytes, bytes], bytes]] = None,
    invalid: Optional[Iterable[bytes]] = None,
    hostile: Optional[Iterable[bytes]] = None,
    checks: Optional[Iterable[str]] = None,
    skip: Iterable[str] = (),
    max_examples: int = 50,
    memory_ratio: float = 10.0,
) -> Report:
    """Check ``codec`` against the ``Codec``/``Decoder`` contract.

    Args:
        codec: the codec (anything with ``decoder()`` and ``encode()``).
        payloads: a hypothesis strategy of payloads the codec can carry
            (default: worked out, see the module notes).
        encode: ``encode(payload) -> wire bytes`` (default ``codec.encode``,
            with a ``prefix`` of the right size for a length offset).
        expected: ``expected(payload, wire) -> the frame the decoder returns``
            (default: the payload, or what ``strip`` leaves of the wire).
        invalid: byte strings a decoder must refuse with a ``FramingError``
            when they follow whole frames.
        hostile: stream prefixes that announce huge frames (for the memory check).
        checks: run only these (names from :data:`CHECKS`); default all.
        skip: do not run these.
        max_examples: hypothesis examples per property.
        memory_ratio: the allocation a decoder may make per byte received on
            a hostile header (framekit's own decoders: up to 8 for a frame
            assembled in place, plus 2 for the read buffer it replaces).

    Returns:
        A :class:`Report`.

    Raises:
        ContractViolation: a check failed; the message says which, and how.
        ImportError: hypothesis is not installed.
        ValueError: an unknown check name.
    """
    selected = list(CHECKS if checks is None else checks)
    unknown = [c for c in [*selected, *skip] if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(CHECKS)}")
    try:
        import hypothesis  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the suite has it
        raise ImportError("framekit.testing needs hypothesis: pip install hypothesis") from exc
    profile = _profile(codec, payloads, encode, expected, invalid, hostile)
    report = Report(repr(codec))
    for name in CHECKS:
        if name not in selected or name in skip:
            continue
        why_not = globals()[f"_check_{name}"](profile, max_examples, memory_ratio)
        if why_not:
            report.skipped[name] = why_not
        else:
            report.ran.append(name)
    return report


# --- what the checks know about a codec ----------------------------------------------------


def _is_length_prefixed(codec: Any) -> bool:
    names = ("length_size", "length_offset", "length_adjustment", "strip", "header")
    return all(hasattr(codec, n) for n in names)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_header(codec: Any, frame_length: int, prefix: bytes) -> Optional[bytes]:
    """The header of a ``frame_length``-byte frame, whatever the codec's maximum."""
    size, adjustment = codec.length_size, codec.length_adjustment
    if isinstance(size, int):
        value = frame_length - adjustment - len(prefix) - size
        limit = 1 << (8 * size - (size == 8))
        if not 0 <= value < limit:
            return None
        return prefix + bytes(
            value.to_bytes(size, "little" if codec.byteorder == "little" else "big")
        )
    for width in range(1, codec.varint_max_bytes + 1):
        value = frame_length - adjustment - len(prefix) - width
        if value >= 0 and len(_varint(value)) == width:
            return prefix + _varint(value)
    return None


def _length_prefixed(codec: Any) -> Dict[str, Any]:
    prefix = b"\xa5" * codec.length_offset
    strip = codec.strip
    maximum = codec.max_frame_size
    invalid: List[bytes] = []
    hostile: List[bytes] = []
    too_large = _length_header(codec, maximum + 1, prefix)
    if too_large is not None:
        if codec.fail_fast:
            invalid.append(too_large)
        elif maximum + 1 - len(too_large) <= 1 << 20:  # raised once its bytes went by
            invalid.append(too_large + bytes(maximum + 1 - len(too_large)))
        hostile.append(too_large)
    for length in (maximum, 1 << 40, (1 << 62) - 1):
        header = _length_header(codec, length, prefix)
        if header is not None:
            hostile.append(header)
    size = codec.length_size
    if size == 8:
        invalid.append(prefix + b"\xff" * 8)  # a negative length
    elif size == "varint":
        invalid.append(prefix + b"\xff" * codec.varint_max_bytes + b"\x01")  # over-long
    short = _length_header(codec, len(prefix) + (size if isinstance(size, int) else 1) - 1, prefix)
    if short is not None:
        invalid.append(short)  # a frame shorter than its own header

    def encode(payload: bytes) -> bytes:
        return bytes(codec.encode(payload, prefix=prefix))

    return {
        "encode": encode,
        "encode_many": lambda ps: bytes(codec.encode_many(ps, prefix=prefix)),
        "encode_parts": lambda p: codec.encode_parts(p, prefix=prefix),
        "header": lambda n: bytes(codec.header(n, prefix=prefix)),
        "expected": (lambda p, wire: p) if strip is None else (lambda p, wire: wire[strip:]),
        "invalid": invalid,
        "hostile": hostile,
        "filler": b"\xff",  # after a frame, more huge lengths (or an over-long varint)
    }


def _encodes(codec: Any, payload: bytes) -> bool:
    """Whether ``codec`` can frame ``payload`` (a delimiter inside it cannot)."""
    try:
        codec.encode(payload)
    except ValueError:
        return False
    return True


def _delimited(codec: Any) -> Dict[str, Any]:
    """Lines and Delimited: frames end with a delimiter (the first one when encoding)."""
    delimiter = bytes(getattr(codec, "newline", b"") or codec.delimiter)
    keep = codec.keep_delimiter
    delimiters = [b"\n", b"\r"] if hasattr(codec, "newline") else list(codec.delimiters)
    filler = next(bytes([b]) for b in b"x0\x00\xff" if not any(bytes([b]) in d for d in delimiters))
    line = filler * (codec.max_frame_size + 1)
    return {
        "expected": (lambda p, wire: p + delimiter) if keep else (lambda p, wire: p),
        "carries": lambda p: _encodes(codec, p),
        "invalid": [line + delimiter] if codec.max_frame_size <= 1 << 20 else [],
        "hostile": [filler],
        "filler": filler,
    }


def _netstring(codec: Any) -> Dict[str, Any]:
    maximum = codec.max_frame_size
    return {
        "invalid": [b"abc:", b"3:abc;", f"{maximum + 1}:".encode()],
        "hostile": [f"{maximum}:".encode(), b"9" * 40],
    }


def _profile(
    codec: Any,
    payloads: Any,
    encode: Optional[Callable[[bytes], bytes]],
    expected: Optional[Callable[[bytes, bytes], bytes]],
    invalid: Optional[Iterable[bytes]],
    hostile: Optional[Iterable[bytes]],
) -> _Profile:
    from hypothesis import strategies as st

    known: Dict[str, Any] = {}
    kind = type(codec).__name__  # either backend's class
    if _is_length_prefixed(codec):
        known = _length_prefixed(codec)
    elif kind in ("Delimited", "Lines"):
        known = _delimited(codec)
    elif kind == "Netstring":
        known = _netstring(codec)
    encode = encode or known.get("encode") or (lambda p: bytes(codec.encode(p)))
    expected = expected or known.get("expected") or (lambda p, wire: p)
    user_encode = "encode" not in known
    filler = known.get("filler", b"\x00")
    carries: Callable[[bytes], bool] = known.get("carries", lambda p: True)
    if payloads is None:
        sizes = [n for n in range(_PROBE_MAX + 1) if _carries(codec, encode, expected, filler * n)]
        if sizes:
            low, high = sizes[0], sizes[-1]
            payloads = st.binary(min_size=low, max_size=min(high, low + 200)).filter(carries)
    return _Profile(
        codec=codec,
        encode=encode,
        encode_many=None if user_encode else known.get("encode_many", codec.encode_many),
        encode_parts=None if user_encode else known.get("encode_parts", codec.encode_parts),
        header=known.get("header"),
        expected=expected,
        payloads=payloads,
        invalid=list(known.get("invalid", []) if invalid is None else invalid),
        hostile=list(known.get("hostile", []) if hostile is None else hostile),
        filler=filler,
        max_frame_size=getattr(codec, "max_frame_size", None),
    )


def _carries(
    codec: Any,
    encode: Callable[[bytes], bytes],
    expected: Callable[[bytes, bytes], bytes],
    p: bytes,
) -> bool:
    """Whether ``p`` goes through ``encode`` and a fresh decoder unchanged."""
    try:
        wire = encode(p)
        return bool(codec.decoder().feed(wire) == [expected(p, wire)])
    except Exception:
        return False


# --- helpers -------------------------------------------------------------------------------


def _fail(check: str, codec: Any, message: str) -> ContractViolation:
    return ContractViolation(f"{check}: {codec!r}: {message}")


def _settings(max_examples: int) -> Callable[[_F], _F]:
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        report_multiple_bugs=False,  # one ContractViolation, the simplest
        suppress_health_check=list(HealthCheck),
    )


def _frames(p: _Profile, payloads: List[bytes]) -> Tuple[bytes, List[bytes], List[int]]:
    """The wire of ``payloads``, the frames it decodes to, and each frame's end offset."""
    wires = [p.encode(x) for x in payloads]
    ends, total = [], 0
    for wire in wires:
        total += len(wire)
        ends.append(total)
    return b"".join(wires), [p.expected(x, w) for x, w in zip(payloads, wires)], ends


def _feed_pieces(decoder: Any, wire: bytes, cuts: List[int]) -> List[bytes]:
    """Feed ``wire`` cut at ``cuts``, from one scratch buffer overwritten after each call."""
    out: List[bytes] = []
    scratch = bytearray(len(wire))
    start = 0
    for end in [*sorted(set(cuts)), len(wire)]:
        piece = wire[start:end]
        scratch[: len(piece)] = piece
        with memoryview(scratch) as view:
            out += decoder.feed(view[: len(piece)])
        scratch[: len(piece)] = b"\xee" * len(piece)  # a decoder must have copied it
        start = end
    return out


def _no_payloads(p: _Profile) -> str:
    return "" if p.payloads is not None else "no payload of 0 to 256 bytes went through unchanged"


# --- the checks: each returns "" when it ran, else why it was skipped ------------------------


def _check_round_trip(p: _Profile, max_examples: int, memory_ratio: float) -> str:
    from hypothesis import given
    from hypothesis import strategies as st

    if _no_payloads(p):
        return _no_payloads(p)

    @_settings(max_examples)
    @given(st.lists(p.payloads, max_size=5), st.data())
    def run(payloads: List[bytes], data: Any) -> None:
        wire, frames, _ends = _frames(p, payloads)
        name = "round_trip"
        if p.encode_many is not None and p.encode_many(payloads) != wire:
            raise _fail(name, p.codec, f"encode_many({payloads!r}) differs from encode()")
        if p.encode_parts is not None:
            for x in payloads:
                if b"".join(bytes(part) for part in p.encode_parts(x)) != p.encode(x):
                    raise _fail(name, p.codec, f"encode_parts({x!r}) differs from encode()")
        step = 1 if len(wire) <= _ALL_SPLITS_UP_TO else len(wire) // _ALL_SPLITS_UP_TO + 1
        for split in range(0, len(wire) + 1, step):
            decoder = p.codec.decoder()
            got = decoder.feed(wire[:split]) + decoder.feed(wire[split:])
            if got != frames:
                raise _fail(name, p.codec, f"split at {split} of {wire!r}: {got!r} != {frames!r}")
            if not all(type(f) is bytes for f in got):
                raise _fail(name, p.codec, f"frames must be bytes: {[type(f) for f in got]}")
            if decoder.pending != 0:
                raise _fail(name, p.codec, f"pending is {decoder.pending} between frames")
            decoder.eof()
        cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12), label="cuts")
        got = _feed_pieces(p.codec.decoder(), wire, cuts)
        if got != frames:
            raise _fail(
                name, p.codec, f"cut at {sorted(set(cuts))} of {wire!r}: {got!r} != {frames!r}"
            )

    run()
    return ""


def _check_receive_paths(p: _Profile, max_examples: int, memory_ratio: float) -> str:
    from hypothesis import given
    from hypothesis import strategies as st

    if _no_payloads(p):
        return _no_payloads(p)

    @_settings(max_examples)
    @given(
        st.lists(p.payloads, max_size=5),
        st.lists(st.tuples(st.integers(1, 300), st.booleans()), min_size=1, max_size=30),
    )
    def run(payloads: List[bytes], reads: List[Tuple[int, bool]]) -> None:
        wire, frames, _ends = _frames(p, payloads)
        decoder = p.codec.decoder()
        got: List[bytes] = []
        position, turn = 0, 0
        while position < len(wire):
            size, hinted = reads[turn % len(reads)]
            turn += 1
            view = decoder.get_buffer(size if hinted else -1)
            if len(view) < 1 or (hinted and len(view) < size):
                raise _fail("receive_paths", p.codec, f"get_buffer({size}) gave {len(view)} bytes")
            n = min(len(view), size, len(wire) - position)
            view[:n] = wire[position : position + n]
            got += decoder.buffer_updated(n)
            position += n
        if got != frames:
            raise _fail(
                "receive_paths",
                p.codec,
                f"get_buffer/buffer_updated with reads {reads!r} of {wire!r}: {got!r}, "
                f"but feed gives {frames!r}",
            )
        if decoder.pending != 0:
            raise _fail("receive_paths", p.codec, f"pending is {decoder.pending} between frames")

    run()
    return ""


def _check_error_frames(p: _Profile, max_examples: int, memory_ratio: float) -> str:
    from hypothesis import given
    from hypothesis import strategies as st

    if _no_payloads(p):
        return _no_payloads(p)
    if not p.invalid:
        return "no invalid input known for this codec (pass invalid=)"

    @_settings(max_examples)
    @given(
        st.lists(p.payloads, max_size=4),
        st.sampled_from(p.invalid),
        st.lists(st.integers(0, 10**9), max_size=6),
    )
    def run(payloads: List[bytes], bad: bytes, cut_seeds: List[int]) -> None:
        wire, frames, _ends = _frames(p, payloads)
        stream = wire + bad
        cuts = sorted({seed % (len(stream) + 1) for seed in cut_seeds})
        decoder = p.codec.decoder()
        got: List[bytes] = []
        error: Optional[FramingError] = None
        start = 0
        for end in [*cuts, len(stream), None]:
            piece = stream[start:end] if end is not None else b""
            try:
                got += decoder.feed(piece)
            except FramingError as exc:
                error = exc
                got += exc.frames
                break
            if end is None:
                break
            start = end
        if error is None:
            raise _fail(
                "error_frames", p.codec, f"{bad!r} after {wire!r} (cut at {cuts}) raised nothing"
            )
        if got != frames:
            raise _fail(
                "error_frames",
                p.codec,
                f"{bad!r} after {wire!r} (cut at {cuts}): frames returned and in .frames "
                f"are {got!r}, not {frames!r}",
            )

    run()
    return ""


def _check_hostile_headers(p: _Profile, max_examples: int, memory_ratio: float) -> str:
    inputs = [*p.hostile, p.filler]
    for prefix in inputs:
        for path in ("feed", "get_buffer"):
            fed, peak, offered = _trickle(p, prefix, path)
            bound = memory_ratio * fed + _SLACK
            if peak > bound:
                raise _fail(
                    "hostile_headers",
                    p.codec,
                    f"after {prefix[:32]!r} and {fed} bytes in all ({path}), the decoder "
                    f"allocated {peak} bytes: more than {memory_ratio:g} x {fed} + {_SLACK}",
                )
            if offered > bound:
                raise _fail(
                    "hostile_headers",
                    p.codec,
                    f"after {prefix[:32]!r} and {fed} bytes in all, get_buffer() offered "
                    f"{offered} bytes: more than {memory_ratio:g} x {fed} + {_SLACK}",
                )
    return ""


def _trickle(p: _Profile, prefix: bytes, path: str) -> Tuple[int, int, int]:
    """Feed ``prefix``, then filler in small pieces; return (fed, peak allocation, largest room)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        decoder = p.codec.decoder()
        piece = (p.filler * _TRICKLE_PIECE)[:_TRICKLE_PIECE]
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fed, offered = 0, 0
        for chunk in [prefix, *[piece] * (_TRICKLE // _TRICKLE_PIECE)]:
            fed += len(chunk)
            try:
                if path == "feed":
                    decoder.feed(chunk)
                else:
                    view = decoder.get_buffer(-1)
                    offered = max(offered, len(view))
                    n = min(len(view), len(chunk))
                    view[:n] = chunk[:n]
                    decoder.buffer_updated(n)
                    if n < len(chunk):
                        decoder.feed(chunk[n:])
            except CorruptedFrame:
                break  # refused for good: nothing more is taken
            except FramingError:
                pass  # refused, and decoding goes on
        _now, peak = tracemalloc.get_traced_memory()
        return fed, peak - base, offered
    finally:
        if started:
            tracemalloc.stop()


def _check_eof(p: _Profile, max_examples: int, memory_ratio: float) -> str:
    from hypothesis import given
    from hypothesis import strategies as st

    if _no_payloads(p):
        return _no_payloads(p)
    fresh = p.codec.decoder()
    fresh.eof()  # nothing received: nothing cut off

    @_settings(max_examples)
    @given(st.lists(p.payloads, min_size=1, max_size=4), st.integers(1, 10**9))
    def run(payloads: List[bytes], seed: int) -> None:
        wire, frames, ends = _frames(p, payloads)
        last = ends[-1] - (ends[-2] if len(ends) > 1 else 0)
        if last < 2:
            return
        cut = 1 + seed % (last - 1)  # at least one byte of the last frame arrives
        decoder = p.codec.decoder()
        got = decoder.feed(wire[:-cut])
        if got != frames[:-1]:
            raise _fail("eof", p.codec, f"{wire[:-cut]!r} gave {got!r}, not {frames[:-1]!r}")
        if decoder.pending <= 0:
            raise _fail("eof", p.codec, f"pending is {decoder.pending} inside a frame")
        try:
            decoder.eof()
        except IncompleteFrame:
            pass
        else:
            raise _fail("eof", p.codec, f"eof() after {wire[:-cut]!r} (a cut frame) raised nothing")

    run()
    return ""


def _oversized(size: int) -> Any:
    if size <= _MAP_ABOVE:
        return b"\x00" * size
    return memoryview(mmap.mmap(-1, size))  # untouched pages cost nothing


def _check_encode_limit(p: _Profile, max_examples: int, memory_ratio: float) -> str:
    if p.max_frame_size is None:
        return "the codec has no max_frame_size"
    size = p.max_frame_size + 1
    payload = _oversized(size)
    calls: List[Tuple[str, Callable[[], Any]]] = []
    if p.header is not None:
        header = p.header
        calls.append((f"header({size})", lambda: header(size)))
    if p.encode_parts is not None:
        parts = p.encode_parts
        calls.append(("encode_parts(payload)", lambda: parts(payload)))
    calls.append(("encode(payload)", lambda: p.encode(payload)))
    if p.encode_many is not None:
        many = p.encode_many
        calls.append(("encode_many([payload])", lambda: many([payload])))
    for what, call in calls:  # the cheap ones first: a codec that copies fails before that
        try:
            call()
        except FrameTooLarge:
            continue
        except Exception as exc:
            raise _fail(
                "encode_limit",
                p.codec,
                f"{what} with a {size}-byte payload (max_frame_size {p.max_frame_size}) raised "
                f"{type(exc).__name__}: {exc}, not FrameTooLarge",
            ) from exc
        raise _fail(
            "encode_limit",
            p.codec,
            f"{what} accepted a {size}-byte payload above max_frame_size {p.max_frame_size}: "
            "the peer's decoder would refuse that frame",
        )
    return ""


def _check_switching(p: _Profile, max_examples: int, memory_ratio: float) -> str:
    from hypothesis import given
    from hypothesis import strategies as st

    probe = p.codec.decoder()
    if not callable(getattr(probe, "detach", None)):
        return "the decoder does not declare switching (no detach())"
    if _no_payloads(p):
        return _no_payloads(p)
    name = "switching"

    @_settings(max_examples)
    @given(
        st.lists(p.payloads, max_size=6),
        st.lists(st.tuples(st.integers(0, 10**9), st.integers(-1, 3)), max_size=8),
        st.integers(0, 10**9),
    )
    def run(payloads: List[bytes], steps: List[Tuple[int, int]], unused_seed: int) -> None:
        wire, frames, ends = _frames(p, payloads)
        decoder = p.codec.decoder()
        taken: List[bytes] = []
        last: List[bytes] = []
        received = 0
        for seed, limit in steps:  # feed random pieces with random max_frames
            end = min(len(wire), received + seed % (len(wire) + 1))
            last = decoder.feed(wire[received:end], max_frames=limit)
            received = end
            if limit >= 0 and len(last) > limit:
                raise _fail(name, p.codec, f"max_frames={limit} returned {len(last)} frames")
            taken += last
        if taken != frames[: len(taken)]:
            raise _fail(name, p.codec, f"with max_frames: {taken!r} is no prefix of {frames!r}")
        unused = unused_seed % (len(last) + 1)
        delivered = len(taken) - unused
        rest = decoder.detach(unused)
        start = ends[delivered - 1] if delivered else 0
        if bytes(rest) != wire[start:received]:
            raise _fail(
                name,
                p.codec,
                f"detach({unused}) after {received} bytes of {wire!r} gave {bytes(rest)!r}, "
                f"not {wire[start:received]!r}",
            )
        for call in (lambda: decoder.feed(b""), lambda: decoder.detach(0), decoder.eof):
            try:
                call()
            except ValueError:
                continue
            raise _fail(name, p.codec, "a detached decoder accepted another call")
        if frames:  # and the plainest case: every frame of one call handed back
            whole = p.codec.decoder()
            whole.feed(wire)
            back = bytes(whole.detach(len(frames)))
            if back != wire:
                raise _fail(name, p.codec, f"detach({len(frames)}) after feed({wire!r}): {back!r}")
        again = p.codec.decoder().feed(wire[start:])
        if again != frames[delivered:]:
            raise _fail(name, p.codec, f"the rest decodes to {again!r}, not {frames[delivered:]!r}")
        drained = p.codec.decoder()  # max_frames loses nothing: drain with feed(b"")
        got = drained.feed(wire, max_frames=1)
        while len(got) < len(frames):
            more = drained.feed(b"", max_frames=1)
            if not more:
                break
            got += more
        if got != frames:
            raise _fail(name, p.codec, f"max_frames=1 then feed(b''): {got!r} != {frames!r}")

    run()
    for bad in (-1, 1):
        decoder = p.codec.decoder()
        try:
            decoder.detach(bad)
        except ValueError:
            continue
        raise _fail(name, p.codec, f"detach({bad}) on a fresh decoder raised nothing")
    return ""
