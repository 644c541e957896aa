"""Text lines ending in ``\\n`` or ``\\r\\n``: Netty's ``LineBasedFrameDecoder``, in pure Python.

This module is the specification; ``_speedups_text.pyx`` is its Cython twin
(same names, same errors and messages, same results at every split point).

Semantics
---------
A line ends at the first ``\\n``; a ``\\r`` just before it belongs to the line
ending (``\\r\\n``), any other ``\\r`` is data.  The decoder returns the line
without its ending, or with it when ``keep_delimiter=True``.

``max_line_length`` bounds the line *without* its ending.  A longer line raises
``FrameTooLarge``; its bytes are dropped up to and including its ``\\n``, and
decoding resumes with the next line.  The error's ``.frames`` holds the lines
decoded before it in the same call; complete lines received behind it wait,
undecoded, for the next call (``feed(b"")``).  When the error is raised
follows ``fail_fast``, as in Netty:

* ``fail_fast=True`` (the default): as soon as the line is certainly too long,
  even before its ``\\n`` arrives (``frame_length`` is then a lower bound);
* ``fail_fast=False``: once its ``\\n`` arrives, with its exact length; or, if
  the stream ends first, from ``eof()``.

Where framekit departs from Netty, and why
------------------------------------------
* A line is certainly too long when more than ``max_line_length`` bytes are
  held without a ``\\n``, *not counting a last* ``\\r`` (it may begin the
  ending).  Netty counts that ``\\r``, so with ``maxLength=3`` it accepts
  ``b"abc\\r\\n"`` arriving in one read but rejects it arriving as
  ``b"abc\\r"`` then ``b"\\n"``.  framekit gives the same frames and errors
  however the stream is cut into reads, so it accepts both.
* ``fail_fast`` defaults to ``True``, as everywhere in framekit (Netty's
  ``LineBasedFrameDecoder(maxLength)`` defaults to ``false``); memory is
  bounded either way.
* ``max_line_length`` defaults to 16 MiB (Netty has no default).

Searching and the denial-of-service bound
-----------------------------------------
Each byte is searched for ``\\n`` once (``bytes.find``; ``memchr`` in the
twin): an unfinished line remembers how far it was searched (``_scan``), so a
long line arriving a byte at a time costs O(n), not O(n^2).  Once a line is
certainly too long nothing of it is kept (only whether its last byte was a
``\\r``, for its exact length), so the decoder holds at most
``max_line_length + 1`` bytes of an unfinished line, plus the unread rest of
one read after an error or after ``max_frames`` frames (decoded by the next
call).

Encoding appends ``newline`` (``b"\\n"`` or ``b"\\r\\n"``) and refuses a payload
that could not come back as it was: one that holds a ``\\n``, one that ends
with ``\\r`` when ``newline`` is ``b"\\n"``, or one longer than
``max_line_length`` (``FrameTooLarge``).
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple, Union

from ..errors import FramingError
from . import _limits
from ._limits import DEFAULT_MAX_FRAME_SIZE
from ._splitter import Source, Splitter
from .interface import Buffer

__all__ = ["Lines", "LinesDecoder"]

_LF = 10
_CR = 13


class Lines:
    """Lines ending in ``\\n`` or ``\\r\\n`` (Netty's ``LineBasedFrameDecoder``).

    Args:
        max_line_length: the longest line accepted, its ending excluded.
        keep_delimiter: leave the line ending (``\\n`` or ``\\r\\n``, as
            received) at the end of each decoded line.
        fail_fast: raise ``FrameTooLarge`` as soon as a line is certainly too
            long (``True``), or once its end arrives (``False``).
        newline: what :meth:`encode` appends: ``b"\\n"`` or ``b"\\r\\n"``.

    Raises:
        TypeError, ValueError: on an invalid argument.
    """

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_FRAME_SIZE,
        keep_delimiter: bool = False,
        fail_fast: bool = True,
        newline: Buffer = b"\n",
    ) -> None:
        self._max = _limits.check_max("max_line_length", max_line_length)
        self._keep = _limits.check_bool("keep_delimiter", keep_delimiter)
        self._fail_fast = _limits.check_bool("fail_fast", fail_fast)
        self._newline = _limits.check_newline(newline)

    @property
    def max_line_length(self) -> int:
        return self._max

    @property
    def max_frame_size(self) -> int:
        """The same as ``max_line_length`` (what every codec calls its limit)."""
        return self._max

    @property
    def keep_delimiter(self) -> bool:
        return self._keep

    @property
    def fail_fast(self) -> bool:
        return self._fail_fast

    @property
    def newline(self) -> bytes:
        return self._newline

    def __repr__(self) -> str:
        return (
            f"Lines(max_line_length={self._max}, keep_delimiter={self._keep}, "
            f"fail_fast={self._fail_fast}, newline={self._newline!r})"
        )

    def _check(self, payload: Buffer) -> Union[bytes, bytearray]:
        """Return ``payload`` as bytes or bytearray, or raise if it would not round-trip."""
        data = payload if isinstance(payload, (bytes, bytearray)) else bytes(payload)
        if len(data) > self._max:
            raise _limits.payload_too_large_error(len(data), self._max, "max_line_length")
        if b"\n" in data:
            raise _limits.contains_newline_error(self)
        if data.endswith(b"\r") and self._newline == b"\n":
            raise _limits.ends_with_cr_error(self)
        return data

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return ``payload`` followed by ``newline``.

        Raises:
            FrameTooLarge: ``payload`` is longer than ``max_line_length``.
            ValueError: ``payload`` holds a ``\\n`` (or ends with ``\\r`` and
                ``newline`` is ``b"\\n"``).
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"".join((self._check(payload), self._newline))

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the lines of all ``payloads`` in one buffer, for one ``sendall``.

        Raises:
            FrameTooLarge, ValueError: as :meth:`encode`, before anything is encoded.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        check = self._check
        parts = [check(p) for p in payloads]
        if not parts:
            return b""
        parts.append(b"")
        return self._newline.join(parts)

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Tuple[Buffer, bytes]:
        """Return ``(payload, newline)`` for a vectored send that never copies the payload.

        Raises:
            FrameTooLarge, ValueError: as :meth:`encode`.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return payload, self._newline

    def decoder(self) -> LinesDecoder:
        """Return a new, independent decoder for one stream."""
        return LinesDecoder(self)


class LinesDecoder(Splitter):
    """Incremental decoder for one stream; made by :meth:`Lines.decoder`.

    It has the switching capability: ``feed``/``buffer_updated`` take
    ``max_frames`` and :meth:`detach` hands back the rest of the stream.
    """

    def __init__(self, codec: Lines) -> None:
        super().__init__()
        self._max = codec._max
        self._keep = codec._keep
        self._fail_fast = codec._fail_fast
        self._scan = 0  # bytes of the unfinished line known to hold no \n
        self._discarding = False  # dropping a line that is too long, up to its \n
        self._discarded = 0  # bytes of it dropped so far
        self._discarded_cr = False  # the last of them was a \r

    def feed(self, data: Buffer, max_frames: int = -1) -> List[bytes]:
        """Add received bytes; return every line they complete, in order.

        Args:
            data: the bytes received.
            max_frames: decode at most this many lines (``-1``: no limit); the
                bytes after the last one are held, undecoded.

        Raises:
            FrameTooLarge: a line longer than ``max_line_length`` (see the
                module notes for when); its bytes are dropped.  The decoder
                stays usable; ``feed(b"")`` decodes lines already received
                behind it.  ``.frames`` holds the lines decoded before it.
        """
        return super().feed(data, max_frames)

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: bytes without a line ending are held.
            FrameTooLarge: the stream ended inside a line that is too long,
                with ``fail_fast=False`` (its error was still owed).
        """
        if self._detached:
            raise _limits.detached_error()
        if self._discarding and not self._fail_fast:
            self._discarding = False
            length = self._discarded
            self._discarded = 0
            raise _limits.unterminated_line_error(length, self._max, [])
        pending = self.pending
        if pending:
            raise _limits.line_incomplete_error(pending, ())

    def _decode(
        self, src: Source, pos: int, end: int, frames: List[bytes], limit: int
    ) -> Tuple[int, Optional[FramingError]]:
        maximum = self._max
        keep = self._keep
        base = self._base
        ends = self._ends
        while True:
            if len(frames) == limit:
                return pos, None
            if self._discarding:
                i = src.find(b"\n", pos, end)
                if i < 0:
                    if pos < end:
                        self._discarded += end - pos
                        self._discarded_cr = src[end - 1] == _CR
                        self._last_drop = end - base
                    return end, None
                length = self._discarded + i - pos
                if (src[i - 1] == _CR) if i > pos else self._discarded_cr:
                    length -= 1
                self._discarding = False
                self._discarded = 0
                pos = i + 1
                self._last_drop = pos - base
                if not self._fail_fast:
                    return pos, _limits.line_too_long_error(length, maximum, [])
                continue
            i = src.find(b"\n", pos + self._scan, end)
            if i < 0:
                held = end - pos
                length = held - 1 if held and src[end - 1] == _CR else held
                if length <= maximum:
                    self._scan = held
                    return pos, None
                # Certainly too long: drop it, up to its \n.
                self._scan = 0
                self._discarding = True
                self._discarded = held
                self._discarded_cr = length < held
                self._last_drop = end - base
                if self._fail_fast:
                    return end, _limits.unterminated_line_error(length, maximum, [])
                return end, None
            self._scan = 0
            stop = i - 1 if i > pos and src[i - 1] == _CR else i
            if stop - pos > maximum:
                self._last_drop = i + 1 - base
                return i + 1, _limits.line_too_long_error(stop - pos, maximum, [])
            if not frames:
                self._first = pos - base
            frames.append(bytes(src[pos : i + 1 if keep else stop]))
            pos = i + 1
            ends.append(pos - base)
