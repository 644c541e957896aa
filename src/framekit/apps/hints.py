"""Hints for the commonest first-hour mistake: the two ends frame messages differently.

Design notes
------------
A framing mismatch rarely says so.  A ``--codec lines`` client's ``hello\\n``
reaches a length-prefixed server as a 4-byte length of 1,751,477,360 (the
ASCII of ``hell``); a 2-byte-length client's frame is a 4-byte server's
partial frame, and both sides wait; a peer that cannot parse our first frame
closes the connection.  The commands add one sentence to the line they
already print, in these cases only:

* a decoding error (:func:`decoding_hint`): if the length field the codec
  read is printable ASCII, "looks like text, not a length prefix", with the
  text; if the same bytes read in the other byte order make a plausible
  length, that; and, when it is the connection's first frame or the length is
  absurd (above :data:`ABSURD`), that the framing may differ and which options
  to compare;
* a peer that closes, or stays silent, right after our first frame
  (:data:`COMPARE`).

The length field is rebuilt from the error (``FrameTooLarge.frame_length``)
and the codec's settings, so nothing here needs the raw bytes, and nothing
here can raise: a codec it does not know gets the generic sentence.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from ..errors import FrameTooLarge, FramingError

__all__ = ["ABSURD", "COMPARE", "decoding_hint", "length_field", "silence_hint"]

#: The options both ends must agree on.
COMPARE = (
    "the two ends' framing may differ: compare --codec, --preset, --length-size, --byteorder, "
    "--length-offset, --length-adjustment and --max-frame-size on both sides"
)
#: A frame length above this (1 GiB) is not a length anyone meant to send.
ABSURD = 1 << 30


def _length_codec(codec: Any) -> Optional[Any]:
    """The ``LengthPrefixed`` under ``codec`` (a CLI ``MessageCodec`` wraps one), or ``None``."""
    inner = getattr(codec, "codec", codec)
    if all(hasattr(inner, a) for a in ("length_size", "length_offset", "length_adjustment")):
        return inner
    return None


def length_field(exc: FrameTooLarge, codec: Any) -> Optional[bytes]:
    """The bytes of the length field that announced ``exc.frame_length``, if they can be known.

    Only for a fixed-width field: ``frame_length = field + adjustment + offset + width``.
    """
    inner = _length_codec(codec)
    if inner is None or not isinstance(inner.length_size, int):
        return None
    width = inner.length_size
    value = exc.frame_length - inner.length_adjustment - inner.length_offset - width
    if not 0 <= value < 1 << (8 * width):
        return None
    return bytes(value.to_bytes(width, "little" if inner.byteorder == "little" else "big"))


def _looks_like_text(data: bytes) -> bool:
    return bool(data) and all(32 <= b < 127 or b in b"\t\r\n" for b in data)


def decoding_hint(exc: BaseException, codec: Any, *, first: bool) -> str:
    """One sentence to add to a decoding error's line, or ``""``.

    Args:
        exc: the error the decoder raised.
        codec: the codec that raised it.
        first: whether no frame had been decoded on the connection before.
    """
    if not isinstance(exc, FramingError):
        return ""
    hints = []
    absurd = False
    inner = _length_codec(codec)
    if isinstance(exc, FrameTooLarge):
        absurd = exc.frame_length > ABSURD
        field = length_field(exc, codec)
        if field is not None and _looks_like_text(field):
            hints.append(
                f"its length field {field.decode('ascii')!r} looks like text, not a length "
                "prefix (is the peer sending lines, or a text protocol?)"
            )
        elif field is not None and inner is not None:
            other: Literal["little", "big"] = "little" if inner.byteorder == "big" else "big"
            value = int.from_bytes(field, other)
            frame = value + inner.length_adjustment + inner.length_offset + len(field)
            if len(field) > 1 and 0 < frame <= exc.max_frame_size:
                hints.append(f"read {other}-endian it would be a {frame}-byte frame")
    if first or absurd or hints:
        hints.append(COMPARE)
    return "; ".join(hints)


def silence_hint(what: str) -> str:
    """The sentence for a peer that closed or said nothing after our first frame."""
    return f"{what} right after our first message: {COMPARE}"
