"""``framekit explain``: a framing drawn as boxes, and a hex dump read frame by frame.

Design notes
------------
Most framing bugs are a misread offset, adjustment or strip: "the length
counts itself", "the type byte comes first", "the decoder keeps the header".
Netty's Javadoc of ``LengthFieldBasedFrameDecoder`` explains its settings with
box diagrams of a frame before and after decoding; this command draws the
same for any framing the command line can describe (``--preset``, the
length options, ``--codec lines|netstring``).

Given bytes (hexadecimal, as arguments or on stdin with ``-``), it walks them
frame by frame, as the decoder does, and says for each: where it starts, the
bytes of its length field and their value, the adjusted length and the
arithmetic behind it, what ``strip`` removes and what the decoder returns.
Then it checks its reading against the real decoder (they must agree, or it
says so), and explains the first problem it meets: a cut frame, a length
above the maximum (with the hints of :mod:`framekit.apps.hints`: text where a
length should be, the other byte order), a corrupt length.

It only reads the framing's settings; the codec itself is not changed.  With a
length offset the command line's other subcommands show a message as the
prefix then the body; ``explain`` shows frames as the library decodes them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ...errors import FramingError
from ..errors import CommandError
from ..hints import decoding_hint
from .options import add_codec_arguments, codec_from_args

__all__ = ["add_arguments", "box", "explain_bytes", "layout", "parse_hex", "run"]

#: Bytes of a payload shown in a cell; longer ones are cut with "...".
_SHOWN = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``explain``'s options to its parser."""
    parser.add_argument(
        "hex",
        nargs="*",
        metavar="HEX",
        help="bytes to read frame by frame, in hexadecimal (spaces, ':' and 0x allowed); "
        "'-' reads them from stdin (e.g. from xxd -p)",
    )
    add_codec_arguments(parser)


def parse_hex(words: Sequence[str]) -> bytes:
    """Bytes from hexadecimal words: ``51000000 0d``, ``51:00``, ``0x51 0x00``, ``\\x51``.

    Raises:
        CommandError: not hexadecimal, or an odd number of digits.
    """
    text = "".join(words)
    for noise in ("0x", "0X", "\\x", ":", "-", ",", " ", "\n", "\t", "\r"):
        text = text.replace(noise, "")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CommandError(
            "HEX must be hexadecimal digits, two per byte (e.g. 51000000 0d 53)"
        ) from None


# --- drawing -----------------------------------------------------------------------------


def box(columns: Sequence[Sequence[str]]) -> List[str]:
    """Netty-style boxes: one column per field, one text line per row.

    >>> print("\\n".join(box([["Length", "0x000C"], ["Content", '"HELLO"']])))
    +--------+---------+
    | Length | Content |
    | 0x000C | "HELLO" |
    +--------+---------+
    """
    rows = max(len(c) for c in columns)
    widths = [max(len(line) for line in column) for column in columns]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [rule]
    for row in range(rows):
        cells = [
            (column[row] if row < len(column) else "").ljust(width)
            for column, width in zip(columns, widths)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(rule)
    return lines


def _side_by_side(left: List[str], right: List[str], arrow: str = "----->") -> List[str]:
    width = max(len(line) for line in left)
    middle = len(left) // 2
    out = []
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        joint = arrow if i == middle else " " * len(arrow)
        out.append(f"{a.ljust(width)} {joint} {b}".rstrip())
    return out


def _hex(data: bytes) -> str:
    return "0x" + data.hex().upper() if data else "(none)"


def _text(data: bytes) -> str:
    """A payload as a quoted string (non-printable bytes as escapes), cut to fit a cell."""
    shown = data[:_SHOWN]
    text = "".join(chr(b) if 32 <= b < 127 and b != 34 else f"\\x{b:02x}" for b in shown)
    return f'"{text}"' + ("..." if len(data) > _SHOWN else "")


def _plural(n: int, word: str = "byte") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --- the length-prefixed family ----------------------------------------------------------


class _Cfg(NamedTuple):
    offset: int
    adjustment: int
    width: int  # 0: a varint
    strip: Optional[int]
    maximum: int


def _settings(codec: Any) -> _Cfg:
    size = codec.length_size
    return _Cfg(
        codec.length_offset,
        codec.length_adjustment,
        size if isinstance(size, int) else 0,
        codec.strip,
        codec.max_frame_size,
    )


def _strip_words(strip: Optional[int], header: str) -> str:
    if strip is None:
        return f"the header ({header}) is stripped: a decoded frame is what follows it"
    if strip == 0:
        return "nothing is stripped (strip=0): a decoded frame is the whole frame, header kept"
    return f"the first {_plural(strip)} of each frame are stripped (strip={strip})"


def _length_layout(codec: Any) -> List[str]:
    c = _settings(codec)
    offset = c.offset
    adjustment = c.adjustment
    width = c.width
    strip = c.strip
    maximum = c.maximum
    field = (
        f"{_plural(width)}, {codec.byteorder}-endian"
        if width
        else f"varint, 1 to {codec.varint_max_bytes} bytes"
    )
    columns = []
    if offset:
        columns.append(["prefix", _plural(offset)])
    columns.append(["length field", field])
    sign = "+" if adjustment >= 0 else "-"
    rest = "length field" + (f" {sign} {abs(adjustment)}" if adjustment else "") + " bytes"
    columns.append(["rest of frame", rest])
    header = f"{offset} + {width}" if width else f"{offset} + the varint"
    header_size = f"{offset + width} bytes" if width else "the prefix and the varint"
    lines = box(columns)
    lines += [
        "",
        f"frame length (header included) = length field {sign} {abs(adjustment)} "
        f"(length_adjustment) + {header} (the header: {header_size})",
        f"largest frame accepted: {maximum} bytes (max_frame_size, header included)",
        _strip_words(strip, "prefix and length field" if offset else "the length field"),
    ]
    return lines


def _read_length(codec: Any, data: bytes, start: int) -> Tuple[Optional[bytes], Optional[int], str]:
    """The length field at ``start + offset``: (its bytes, its value, a problem or "")."""
    c = _settings(codec)
    offset = c.offset
    width = c.width
    at = start + offset
    if width:
        field = data[at : at + width]
        if len(field) < width:
            return None, None, f"the header needs {offset + width} bytes"
        value = int.from_bytes(field, codec.byteorder, signed=width == 8)
        return field, value, ""
    value, shift = 0, 0
    for i in range(codec.varint_max_bytes):
        if at + i >= len(data):
            return None, None, "the varint is not complete"
        byte = data[at + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return data[at : at + i + 1], value, ""
    return data[at : at + codec.varint_max_bytes], None, "corrupt"


@dataclass
class _Frame:
    start: int
    lines: List[str]
    decoded: Optional[bytes]
    end: int
    stop: str = ""  # why the walk stops here ("" to go on)


def _explain_length_frame(codec: Any, data: bytes, start: int, number: int) -> _Frame:
    c = _settings(codec)
    offset = c.offset
    adjustment = c.adjustment
    strip = c.strip
    maximum = c.maximum
    prefix = data[start : start + offset]
    field, value, problem = _read_length(codec, data, start)
    title = f"frame {number} at byte {start}:"
    if field is None or value is None:
        if problem == "corrupt":
            return _Frame(
                start,
                [
                    title,
                    "  the varint length field is longer than "
                    f"varint_max_bytes ({codec.varint_max_bytes}): corrupt",
                ],
                None,
                len(data),
                "a decoder raises CorruptedFrame and stops",
            )
        got = len(data) - start
        return _Frame(
            start,
            [f"{title} incomplete: {problem}, {_plural(got)} are here"],
            None,
            len(data),
            "the stream ends inside a header",
        )
    header = offset + len(field)
    if value < 0:
        return _Frame(
            start,
            [f"{title} length field {_hex(field)} = {value}: negative"],
            None,
            len(data),
            "a decoder raises CorruptedFrame and stops",
        )
    frame_length = value + adjustment + header
    sign = "+" if adjustment >= 0 else "-"
    arithmetic = (
        f"  length field {value} {sign} {abs(adjustment)} (length_adjustment) + {header} "
        f"(header) = {frame_length} bytes in all"
    )
    columns = []
    if offset:
        ascii_prefix = "".join(chr(b) if 32 <= b < 127 else "." for b in prefix)
        columns.append(["prefix", _hex(prefix), f"'{ascii_prefix}'"])
    columns.append(["length field", _hex(field), f"= {value}"])
    if frame_length < header:
        lines = [title, *box(columns), arithmetic, f"  that is less than the {header}-byte header"]
        return _Frame(start, lines, None, len(data), "a decoder raises CorruptedFrame and stops")
    if frame_length > maximum:
        lines = [title, *box(columns), arithmetic]
        lines.append(f"  above max_frame_size ({maximum}): a decoder raises FrameTooLarge")
        from ...errors import FrameTooLarge

        exc = FrameTooLarge("", frame_length=frame_length, max_frame_size=maximum)
        hint = decoding_hint(exc, codec, first=number == 1)
        if hint:
            lines.append(f"  hint: {hint}")
        return _Frame(start, lines, None, len(data), "the frame is refused")
    body = data[start + header : start + frame_length]
    rest = frame_length - header
    count = _plural(rest) if len(body) == rest else f"{len(body)} of {_plural(rest)}"
    columns.append(["rest of frame", _text(body), count])
    lines = [f"{title} {_plural(frame_length)}", *box(columns), arithmetic]
    end = start + frame_length
    if end > len(data):
        lines.append(f"  incomplete: {_plural(len(data) - start)} of {frame_length} are here")
        return _Frame(start, lines, None, len(data), "the stream ends inside this frame")
    cut = header if strip is None else strip
    if cut > frame_length:
        lines.append(f"  strip ({cut}) is more than the frame: a decoder raises CorruptedFrame")
        return _Frame(start, lines, None, end, "")
    decoded = data[start + cut : end]
    removed = data[start : start + cut]
    stripped = "nothing" if cut == 0 else f"the first {_plural(cut)} ({_hex(removed)})"
    returned = f"the decoder returns {_plural(len(decoded))}: {_text(decoded)}"
    lines.append(f"  stripped: {stripped}; {returned}")
    return _Frame(start, lines, decoded, end)


def _example_length(codec: Any) -> List[str]:
    """Netty's BEFORE DECODE / AFTER DECODE boxes for a frame of "HELLO, WORLD"."""
    c = _settings(codec)
    offset = c.offset
    strip = c.strip
    prefix = b"Q" * offset if offset else b""
    payload = b"HELLO, WORLD"
    try:
        wire = bytes(codec.encode(payload, prefix=prefix) if offset else codec.encode(payload))
    except (ValueError, TypeError):
        return []
    field = wire[offset : len(wire) - len(payload)]
    before = []
    if offset:
        before.append(["Prefix", _hex(prefix)])
    before += [["Length", _hex(field)], ["Actual Content", _text(payload)]]
    cut = len(wire) - len(payload) if strip is None else strip
    after = []
    position = 0
    for name, part in (("Prefix", prefix), ("Length", field), ("Actual Content", payload)):
        if not part and name == "Prefix":
            continue
        keep = part[max(0, cut - position) :]
        position += len(part)
        if keep:
            shown = _text(keep) if name == "Actual Content" else _hex(keep)
            after.append([name if len(keep) == len(part) else f"{name} (part)", shown])
    left = [f"BEFORE DECODE ({_plural(len(wire))})", *box(before)]
    right = [f"AFTER DECODE ({_plural(len(wire) - cut)})", *box(after)]
    return ["", "For example:", *_side_by_side(left, right)]


# --- lines and netstrings ----------------------------------------------------------------


def _delimiters(codec: Any) -> List[bytes]:
    """The delimiters a line or delimiter codec ends its frames with."""
    if hasattr(codec, "newline"):  # Lines: \n or \r\n
        return [b"\r\n", b"\n"]
    return list(getattr(codec, "delimiters", [codec.delimiter]))


def _lines_layout(codec: Any) -> List[str]:
    kept = "kept" if codec.keep_delimiter else "stripped"
    shown = " or ".join(_hex(d) for d in _delimiters(codec))
    return [
        *box([["line", "any bytes but the delimiter"], ["delimiter", shown]]),
        "",
        f"longest line accepted: {codec.max_frame_size} bytes (max_frame_size, delimiter excluded)",
        f"the delimiter is {kept} in decoded frames",
    ]


def _first_delimiter(codec: Any, data: bytes, start: int) -> tuple[int, bytes]:
    """Where the first frame ends (the shortest frame wins) and the delimiter there."""
    found = [(data.find(d, start), d) for d in _delimiters(codec)]
    found = [(at, d) for at, d in found if at >= 0]
    if not found:
        return -1, b""
    at = min(at for at, _ in found)
    return at, max((d for a, d in found if a == at), key=len)


def _explain_line(codec: Any, data: bytes, start: int, number: int) -> _Frame:
    end, delimiter = _first_delimiter(codec, data, start)
    title = f"frame {number} at byte {start}:"
    if end < 0:
        got = len(data) - start
        return _Frame(
            start,
            [f"{title} incomplete: {_plural(got)} and no delimiter yet"],
            None,
            len(data),
            "the stream ends inside a line",
        )
    line = data[start:end]
    stop = end + len(delimiter)
    columns = [["line", _text(line), _plural(len(line))], ["delimiter", _hex(delimiter)]]
    lines = [f"{title} {_plural(stop - start)}", *box(columns)]
    if len(line) > codec.max_frame_size:
        lines.append(f"  longer than max_frame_size ({codec.max_frame_size}): FrameTooLarge")
        return _Frame(start, lines, None, stop)
    decoded = data[start:stop] if codec.keep_delimiter else line
    lines.append(f"  the decoder returns {_plural(len(decoded))}: {_text(decoded)}")
    return _Frame(start, lines, decoded, stop)


def _netstring_layout(codec: Any) -> List[str]:
    return [
        *box(
            [
                ["length", "ASCII digits"],
                ["':'", "1 byte"],
                ["data", "length bytes"],
                ["','", "1 byte"],
            ]
        ),
        "",
        f"largest length accepted: {codec.max_frame_size} (max_frame_size, the data only)",
        "a decoded frame is the data",
    ]


def _explain_netstring(codec: Any, data: bytes, start: int, number: int) -> _Frame:
    title = f"frame {number} at byte {start}:"
    colon = data.find(b":", start, start + 21)
    digits = data[start:colon] if colon >= 0 else data[start : start + 21]
    if colon < 0:
        if len(data) - start <= 20 and digits.isdigit():
            return _Frame(
                start,
                [f"{title} incomplete: no ':' yet after {_text(digits)}"],
                None,
                len(data),
                "the stream ends inside a length",
            )
        return _Frame(
            start,
            [f"{title} {_text(digits)} is no length followed by ':'"],
            None,
            len(data),
            "a decoder raises CorruptedFrame and stops",
        )
    if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
        return _Frame(
            start,
            [f"{title} the length {_text(digits)} is not a decimal number"],
            None,
            len(data),
            "a decoder raises CorruptedFrame and stops",
        )
    length = int(digits)
    body = data[colon + 1 : colon + 1 + length]
    end = colon + 1 + length + 1
    comma = _hex(data[end - 1 : end])
    columns = [
        ["length", _text(digits), f"= {length}"],
        ["':'", "0x3A"],
        ["data", _text(body), _plural(length)],
        ["','", comma],
    ]
    lines = [f"{title} {_plural(end - start)}", *box(columns)]
    if length > codec.max_frame_size:
        lines.append(f"  above max_frame_size ({codec.max_frame_size}): FrameTooLarge")
        return _Frame(start, lines, None, len(data), "the frame is refused")
    if end > len(data):
        lines.append(f"  incomplete: {_plural(len(data) - start)} of {end - start} are here")
        return _Frame(start, lines, None, len(data), "the stream ends inside this frame")
    if data[end - 1 : end] != b",":
        lines.append("  the byte after the data is not ',': CorruptedFrame")
        return _Frame(start, lines, None, len(data), "a decoder raises CorruptedFrame and stops")
    lines.append(f"  the decoder returns {_plural(length)}: {_text(body)}")
    return _Frame(start, lines, body, end)


# --- the command -------------------------------------------------------------------------


def _kind(codec: Any) -> str:
    name = type(codec).__name__  # either backend's class
    if name in ("Delimited", "Lines"):
        return "lines"
    if name == "Netstring":
        return "netstring"
    return "length"


def layout(codec: Any) -> List[str]:
    """The framing drawn as boxes, with the arithmetic and an example."""
    kind = _kind(codec)
    if kind == "lines":
        return _lines_layout(codec)
    if kind == "netstring":
        return _netstring_layout(codec)
    return _length_layout(codec) + _example_length(codec)


def explain_bytes(codec: Any, data: bytes) -> List[str]:
    """``data`` read frame by frame, each explained; then what the decoder says."""
    explainers: Dict[str, Callable[[Any, bytes, int, int], _Frame]] = {
        "lines": _explain_line,
        "netstring": _explain_netstring,
        "length": _explain_length_frame,
    }
    explain = explainers[_kind(codec)]
    lines = [f"{_plural(len(data))}:"]
    mine: List[bytes] = []
    start, number = 0, 1
    while start < len(data):
        frame = explain(codec, data, start, number)
        lines += ["", *frame.lines]
        if frame.decoded is not None:
            mine.append(frame.decoded)
        if frame.stop:
            lines.append(f"  stop: {frame.stop}")
            break
        start, number = frame.end, number + 1
    lines.append("")
    lines.append(_agreement(codec, data, mine))
    return lines


def _agreement(codec: Any, data: bytes, mine: List[bytes]) -> str:
    decoder = codec.decoder()
    try:
        frames = decoder.feed(data)
        error = ""
    except FramingError as exc:
        frames, error = exc.frames, f", then {type(exc).__name__}: {exc}"
    if frames != mine:
        return (
            f"the decoder disagrees: it returns {len(frames)} frame(s) ({frames!r:.200}); "
            "please report this"
        )
    pending = (
        f"; {_plural(decoder.pending)} wait for the rest of a frame" if decoder.pending else ""
    )
    return f"the decoder agrees: {_plural(len(frames), 'frame')}{error}{pending}"


def run(args: argparse.Namespace) -> int:
    """Print the layout of the framing the options describe, or read bytes with it."""
    codec = codec_from_args(args)
    inner = getattr(codec, "codec", codec)  # the configured codec, not the CLI's message view
    name = f" (--preset {args.preset})" if getattr(args, "preset", None) else ""
    print(f"framing: {inner!r}{name}")
    if args.hex:
        words = [sys.stdin.read()] if args.hex == ["-"] else args.hex
        data = parse_hex(words)
        if not data:
            raise CommandError("no bytes to explain")
        print("\n".join(explain_bytes(inner, data)))
    else:
        print()
        print("\n".join(layout(inner)))
    return 0
