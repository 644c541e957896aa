"""Constants, argument checking and error messages shared by both codec backends.

Design notes
------------
Every pure-Python codec (``framekit.codecs.length_prefixed``, ``lines``,
``delimited``, ``netstring``, ``fixed_length``) and its Cython twin
(``_speedups``, ``_speedups_text``) must accept the same arguments, reject the
same ones, and say the same thing when a stream goes wrong.  Copying those rules
into each backend is how twins drift, so they live here once: both backends call
the ``check_*`` functions from their constructors, and build their exceptions
with the ``*_error`` functions below (the Cython modules only do so on their
slow, failing paths).
"""

from __future__ import annotations

import operator
from typing import List, NamedTuple, Sequence, Tuple, Union

from ..errors import CorruptedFrame, FrameTooLarge, IncompleteFrame

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_READ_SIZE",
    "LENGTH_SIZES",
    "VARINT",
    "LengthPrefixedConfig",
    "check_bool",
    "check_delimiters",
    "check_length_prefixed",
    "check_max",
    "check_newline",
]

#: Default ``max_frame_size``: 16 MiB, the whole adjusted frame, header included.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
#: How much free space ``get_buffer()`` offers when no larger need is known.
DEFAULT_READ_SIZE = 64 * 1024
#: Frames whose payload is at least this large are assembled in place: the
#: decoder allocates the whole frame once its header is read and receives the
#: rest of it straight into the frame (one copy per byte instead of two).
DIRECT_MIN = 32 * 1024
#: ...but only once at least 1/DIRECT_RATIO of the frame has arrived, so that a
#: peer never makes us allocate more than DIRECT_RATIO times what it has sent
#: (until then the frame grows in the buffer, no faster than it arrives).
DIRECT_RATIO = 8
#: Between frames, ``get_buffer`` offers room for one as large as the last one,
#: up to this size.
ROOM_CAP = 1024 * 1024
#: Once nothing is pending, a decoder drops a buffer larger than this (the room
#: a large frame needed) instead of holding it while the connection idles.
BUFFER_KEEP = 512 * 1024
#: The smallest buffer a decoder allocates: bytes fed a few at a time fill it
#: many times over before it has to be compacted or replaced.
BUFFER_MIN = 1024
#: Largest ``stream_limit`` (a count of bytes that fits a C ``int64_t``).
STREAM_LIMIT_MAX = 1 << 62
#: Fixed widths of the length field, in bytes.
LENGTH_SIZES = (1, 2, 3, 4, 8)
#: The ``length_size`` value that selects an unsigned LEB128 varint field.
VARINT = "varint"
#: Largest value a varint length may hold; above it the field is corrupt (as a
#: negative 8-byte field is), so both backends can keep lengths in a C int64.
VARINT_MAX_VALUE = (1 << 63) - 1
#: Netty's lengthAdjustment and lengthFieldOffset are Java ints.
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
#: ``max_frame_size`` must fit a C ``Py_ssize_t`` (and is a count of bytes).
_MAX_MAX_FRAME_SIZE = 1 << 62


class LengthPrefixedConfig(NamedTuple):
    """Normalised :class:`LengthPrefixed` settings.

    ``length_size`` is 0 for a varint field.  ``strip`` is -1 when the caller
    passed ``None`` (strip the whole header, whatever its size).
    """

    length_size: int
    byteorder: str
    length_offset: int
    length_adjustment: int
    strip: int
    max_frame_size: int
    fail_fast: bool
    varint_max_bytes: int


def _int_arg(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def check_length_prefixed(
    length_size: Union[int, str],
    byteorder: str,
    length_offset: int,
    length_adjustment: int,
    strip: int | None,
    max_frame_size: int,
    fail_fast: bool,
    varint_max_bytes: int,
) -> LengthPrefixedConfig:
    """Validate :class:`LengthPrefixed` arguments; raise ``ValueError``/``TypeError``."""
    if length_size == VARINT:
        size = 0
    elif isinstance(length_size, int) and not isinstance(length_size, bool):
        if length_size not in LENGTH_SIZES:
            raise ValueError(
                f"length_size must be one of 1, 2, 3, 4, 8 or 'varint', got {length_size!r}"
            )
        size = length_size
    else:
        raise ValueError(
            f"length_size must be one of 1, 2, 3, 4, 8 or 'varint', got {length_size!r}"
        )
    if byteorder not in ("big", "little"):
        raise ValueError(f"byteorder must be 'big' or 'little', got {byteorder!r}")
    offset = _int_arg("length_offset", length_offset, 0, _INT32_MAX)
    adjustment = _int_arg("length_adjustment", length_adjustment, _INT32_MIN, _INT32_MAX)
    vmax = _int_arg("varint_max_bytes", varint_max_bytes, 1, 10)
    header_min = offset + (size or 1)
    maximum = _int_arg("max_frame_size", max_frame_size, 1, _MAX_MAX_FRAME_SIZE)
    if maximum < header_min:
        raise ValueError(
            f"max_frame_size ({maximum}) is smaller than the header "
            f"(length_offset + length field = {header_min} bytes)"
        )
    if strip is None:
        strip_value = -1
    else:
        strip_value = _int_arg("strip", strip, 0, _INT32_MAX)
        if strip_value > maximum:
            raise ValueError(f"strip ({strip_value}) is larger than max_frame_size ({maximum})")
    if not isinstance(fail_fast, bool):
        raise TypeError(f"fail_fast must be a bool, not {type(fail_fast).__name__}")
    return LengthPrefixedConfig(
        size, byteorder, offset, adjustment, strip_value, maximum, fail_fast, vmax
    )


# --- error factories: the one place the messages are written -----------------


def too_large_error(frame_length: int, max_frame_size: int, frames: List[bytes]) -> FrameTooLarge:
    return FrameTooLarge(
        f"frame of {frame_length} bytes exceeds max_frame_size {max_frame_size}; discarding it",
        frame_length=frame_length,
        max_frame_size=max_frame_size,
        frames=frames,
    )


def negative_length_error(field: int, frames: List[bytes]) -> CorruptedFrame:
    return CorruptedFrame(f"negative length field: {field}", frames=frames)


def too_short_error(frame_length: int, header_end: int, frames: List[bytes]) -> CorruptedFrame:
    return CorruptedFrame(
        f"adjusted frame length ({frame_length}) is less than the header "
        f"(length_offset + length field = {header_end} bytes)",
        frames=frames,
    )


def strip_error(frame_length: int, strip: int, frames: List[bytes]) -> CorruptedFrame:
    return CorruptedFrame(
        f"adjusted frame length ({frame_length}) is less than strip ({strip}); frame discarded",
        frames=frames,
    )


def varint_error(max_bytes: int, frames: List[bytes]) -> CorruptedFrame:
    return CorruptedFrame(
        f"varint length field longer than varint_max_bytes ({max_bytes} bytes)", frames=frames
    )


def varint_overflow_error(frames: List[bytes]) -> CorruptedFrame:
    return CorruptedFrame(
        f"varint length field exceeds {VARINT_MAX_VALUE} (2**63 - 1)", frames=frames
    )


def broken_error(reason: str) -> CorruptedFrame:
    return CorruptedFrame(
        f"decoder is unusable after a corrupted length field ({reason}); "
        f"the stream cannot be resynchronised"
    )


def incomplete_error(pending: int, expected: int) -> IncompleteFrame:
    """``expected`` is the full frame length if its header was read, else -1."""
    if expected >= 0:
        message = (
            f"stream ended inside a {expected}-byte frame: {pending} bytes received, "
            f"{expected - pending} bytes cut off"
        )
        return IncompleteFrame(message, pending=pending, expected=expected)
    message = f"stream ended inside a frame header: {pending} bytes of an unfinished frame"
    return IncompleteFrame(message, pending=pending, expected=None)


def encode_range_error(value: int, length_size: int, varint_max_bytes: int) -> ValueError:
    if value < 0:
        return ValueError(
            f"length field value {value} is negative (payload shorter than -length_adjustment)"
        )
    if length_size == 0:
        width = f"varint length field of at most {varint_max_bytes} bytes"
    else:
        width = f"{length_size}-byte length field"
    return ValueError(f"length field value {value} does not fit a {width}")


def prefix_error(got: int, want: int) -> ValueError:
    return ValueError(f"prefix must be exactly length_offset={want} bytes, got {got}")


def no_prefix_error(codec: object) -> ValueError:
    """A ``prefix=`` given to a framing that has no length field to put it before."""
    return ValueError(
        f"{codec!r} has no length field to put a prefix before; "
        "make those bytes part of the payload"
    )


def encode_too_large_error(frame_length: int, max_frame_size: int) -> FrameTooLarge:
    return FrameTooLarge(
        f"frame of {frame_length} bytes (header included) exceeds max_frame_size "
        f"{max_frame_size}; not encoded",
        frame_length=frame_length,
        max_frame_size=max_frame_size,
    )


def stream_too_large_error(frame_length: int, limit: int) -> FrameTooLarge:
    return FrameTooLarge(
        f"frame of {frame_length} bytes exceeds stream_limit and max_frame_size ({limit}); "
        f"discarding it",
        frame_length=frame_length,
        max_frame_size=limit,
    )


def offered_error(nbytes: object, offered: int) -> ValueError:
    return ValueError(
        f"buffer_updated({nbytes}): only {offered} bytes were offered by get_buffer()"
    )


def contiguous_error() -> BufferError:
    return BufferError("a C-contiguous bytes-like object is required")


def max_frames_error(max_frames: object) -> ValueError:
    return ValueError(f"max_frames must be -1 (no limit) or more, got {max_frames}")


def detached_error() -> ValueError:
    return ValueError("the decoder was detached: the stream now belongs to another codec")


def detach_error(unused: int, frames: int) -> ValueError:
    return ValueError(f"detach({unused}): the most recent decode call returned {frames} frames")


def detach_lost_error(why: str) -> ValueError:
    return ValueError(f"detach(): cannot go back to that point of the stream ({why})")


def no_stream_error(call: str) -> ValueError:
    return ValueError(f"{call}: no stream is open (call stream_begin() first)")


def stream_open_error() -> ValueError:
    return ValueError("stream_begin(): a stream is already open")


def stream_advance_error(nbytes: int, buffered: int, to_come: int) -> ValueError:
    if buffered:
        return ValueError(
            f"stream_advance({nbytes}): {buffered} payload bytes are buffered; "
            f"stream_read() them first"
        )
    return ValueError(f"stream_advance({nbytes}): only {to_come} payload bytes are still to come")


def count_error(name: str, value: int) -> ValueError:
    return ValueError(f"{name} must be 0 or more, got {value}")


def stream_limit_error(value: object) -> ValueError:
    return ValueError(f"stream_limit must be between 0 and {STREAM_LIMIT_MAX}, got {value}")


def check_count(name: str, value: object) -> int:
    """``operator.index(value)``, refused when negative (both backends' size arguments)."""
    n = operator.index(value)  # type: ignore[arg-type]
    if n < 0:
        raise count_error(name, n)
    return n


def check_max_frames(max_frames: object) -> int:
    """Validate ``max_frames`` (an int, ``-1`` or more)."""
    n = operator.index(max_frames)  # type: ignore[arg-type]
    if n < -1:
        raise max_frames_error(n)
    return n


def check_stream_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"stream_limit must be an int, not {type(value).__name__}")
    if not 0 <= value <= STREAM_LIMIT_MAX:
        raise stream_limit_error(value)
    return value


def check_header_max(max_frame_size: object) -> int:
    """Validate the ``max_frame_size`` argument of ``header()`` (any positive int)."""
    if isinstance(max_frame_size, bool) or not isinstance(max_frame_size, int):
        raise TypeError(
            f"max_frame_size must be an int or None, not {type(max_frame_size).__name__}"
        )
    if max_frame_size < 1:
        raise ValueError(f"max_frame_size must be 1 or more, got {max_frame_size}")
    return max_frame_size


def check_max(name: str, value: object) -> int:
    """Validate a maximum frame or line length (or a fixed frame size)."""
    return _int_arg(name, value, 1, _MAX_MAX_FRAME_SIZE)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def check_delimiters(delimiters: Sequence[object]) -> Tuple[bytes, ...]:
    """Validate :class:`Delimited`'s delimiters: one or more non-empty bytes-likes."""
    out = []
    for delimiter in delimiters:
        if not isinstance(delimiter, (bytes, bytearray, memoryview)):
            raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
        delim = bytes(delimiter)
        if not delim:
            raise ValueError("delimiter must not be empty")
        out.append(delim)
    if not out:
        raise ValueError("Delimited needs at least one delimiter")
    return tuple(out)


def check_newline(newline: object) -> bytes:
    """Validate :class:`Lines`' ``newline``: ``b"\\n"`` or ``b"\\r\\n"``."""
    if not isinstance(newline, (bytes, bytearray, memoryview)):
        raise TypeError(f"newline must be bytes, not {type(newline).__name__}")
    value = bytes(newline)
    if value not in (b"\n", b"\r\n"):
        raise ValueError(f"newline must be b'\\n' or b'\\r\\n', got {value!r}")
    return value


def contains_delimiter_error(delimiter: bytes, codec: object) -> ValueError:
    return ValueError(
        f"payload contains the delimiter {delimiter!r} (or ends with part of it): "
        f"it cannot be framed by {codec!r}"
    )


def contains_newline_error(codec: object) -> ValueError:
    return ValueError(f"payload contains a newline (b'\\n'): it cannot be framed by {codec!r}")


def ends_with_cr_error(codec: object) -> ValueError:
    return ValueError(
        "payload ends with b'\\r', which a newline of b'\\n' would turn into a b'\\r\\n' "
        f"line ending: it cannot be framed by {codec!r}"
    )


def fixed_size_error(length: int, size: int) -> ValueError:
    return ValueError(f"a FixedLength({size}) frame is exactly {size} bytes, not {length}")


def line_too_long_error(length: int, maximum: int, frames: List[bytes]) -> FrameTooLarge:
    """A whole line (its newline seen) above ``max_line_length``: it was skipped."""
    return FrameTooLarge(
        f"line of {length} bytes exceeds max_line_length {maximum}; discarded",
        frame_length=length,
        max_frame_size=maximum,
        frames=frames,
    )


def unterminated_line_error(length: int, maximum: int, frames: List[bytes]) -> FrameTooLarge:
    """A line certainly above ``max_line_length`` before its newline came (``fail_fast``)."""
    return FrameTooLarge(
        f"line of at least {length} bytes without a newline exceeds max_line_length "
        f"{maximum}; discarding it up to the next newline",
        frame_length=length,
        max_frame_size=maximum,
        frames=frames,
    )


def unterminated_frame_error(length: int, maximum: int, frames: List[bytes]) -> FrameTooLarge:
    """:class:`Delimited`: a frame certainly above ``max_frame_size``, no delimiter yet."""
    return FrameTooLarge(
        f"line of at least {length} bytes without a delimiter exceeds max_frame_size "
        f"{maximum}; discarding it up to the next delimiter",
        frame_length=length,
        max_frame_size=maximum,
        frames=frames,
    )


def line_incomplete_error(pending: int, delimiters: Sequence[bytes]) -> IncompleteFrame:
    """The stream ended inside a line (``delimiters`` empty: :class:`Lines`' newlines)."""
    if not delimiters:
        what = "a newline"
    elif len(delimiters) == 1:
        what = f"a delimiter {delimiters[0]!r}"
    else:
        what = (
            f"a delimiter (one of {', '.join(map(repr, delimiters))}; one that may begin "
            f"a longer one waits for the bytes after it)"
        )
    return IncompleteFrame(
        f"stream ended inside a line: {pending} bytes without {what}",
        pending=pending,
        expected=None,
    )


def netstring_error(reason: str, frames: List[bytes]) -> CorruptedFrame:
    return CorruptedFrame(reason, frames=frames)


def netstring_not_digits(head: bytes) -> str:
    return f"netstring length is not decimal digits: {head!r}"


def netstring_leading_zero(head: bytes) -> str:
    return f"netstring length has a leading zero: {head!r}"


def netstring_too_many_digits(max_digits: int) -> str:
    return f"netstring length has more than {max_digits} digits"


def netstring_empty_length() -> str:
    return "netstring length is empty (':' without digits)"


def netstring_no_comma(size: int, byte: bytes) -> str:
    return f"netstring of {size} bytes is not followed by ',': {byte!r}"


def netstring_no_comma_after_drop(byte: bytes) -> str:
    return f"no ',' after the dropped netstring: {byte!r}"


def netstring_long_prefix_error(digits: int, at_least: int, maximum: int) -> FrameTooLarge:
    return FrameTooLarge(
        f"netstring length of more than {digits} digits (at least {at_least} bytes) "
        f"exceeds max_frame_size {maximum}; discarding it",
        frame_length=at_least,
        max_frame_size=maximum,
    )


def detach_unused_error(unused: int, frames: int) -> ValueError:
    return ValueError(
        f"detach({unused}): unused must be between 0 and the {frames} frames "
        f"the most recent decode call returned"
    )


def payload_too_large_error(length: int, maximum: int, limit: str) -> FrameTooLarge:
    """The encode side of a text codec refuses a frame its own decoder would refuse."""
    return FrameTooLarge(
        f"payload of {length} bytes exceeds {limit} {maximum}: the peer's decoder would "
        f"refuse it, so nothing was encoded",
        frame_length=length,
        max_frame_size=maximum,
    )


def detach_dropped_error(broken: bool) -> ValueError:
    """A text decoder's ``detach(0)`` cannot go back past what it dropped."""
    if broken:
        why = "it has been broken since before its most recent call"
    else:
        why = "it dropped bytes after that frame (an oversized frame it was skipping)"
    return ValueError(
        f"detach(0): the decoder cannot hand back the stream from the end of the last "
        f"frame it returned: {why}"
    )
