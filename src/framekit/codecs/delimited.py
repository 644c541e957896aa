"""Delimiter-based framing: text lines, ``\\r\\n`` commands, NUL-separated records.

Design notes
------------
Semantics are those of Netty's ``DelimiterBasedFrameDecoder`` with one
delimiter and ``failFast=true``: a frame is the bytes before the next
delimiter; ``max_frame_size`` bounds that length (delimiter excluded); a longer
line raises ``FrameTooLarge`` and everything up to and including its delimiter
is dropped, then decoding resumes.  Delimiters may be several bytes long
(``b"\\r\\n"``) and may arrive split across reads.

Searching.  Every search is C-level (``bytes.split``/``bytes.find``), never a
per-byte Python loop, and each received byte is searched once:

* Nothing pending (the usual case): the chunk is cut with one ``bytes.split``;
  the last piece is the start of an unfinished line.  The lengths are only
  checked when the chunk itself is longer than ``max_frame_size``.
* A line is pending: the new chunk is searched from its start, plus a probe of
  the last ``len(delimiter) - 1`` pending bytes joined to the first new ones,
  for a delimiter split across the reads.  The pending bytes are never searched
  again, so a long line arriving a byte at a time costs O(n), not O(n^2).

Denial-of-service bound.  The pending line is checked each time it would grow:
once it is certainly longer than ``max_frame_size`` (more bytes than that
without a delimiter, not counting a tail that could be the start of one),
``FrameTooLarge`` is raised at once and the decoder keeps only that possible
delimiter start (fewer than ``len(delimiter)`` bytes) while it drops the rest of
the line.  So a decoder holds at most ``max_frame_size + len(delimiter) - 1``
bytes, plus, after an error, the unread rest of the chunk that raised it
(decoded by the next call, e.g. ``feed(b"")``).

Encoding appends the delimiter and refuses a payload that holds one (or ends
with bytes that would make the delimiter match early): such a frame could not
round-trip.
"""

from __future__ import annotations

from typing import Iterable, List, NoReturn, Tuple, Union

from ..errors import FrameTooLarge, IncompleteFrame
from . import _limits
from ._limits import DEFAULT_MAX_FRAME_SIZE
from .interface import Buffer, CodecBase, _ChunkDecoder

__all__ = ["Delimited", "DelimitedDecoder"]


class Delimited(CodecBase):
    """Frames that end with a delimiter (Netty's ``DelimiterBasedFrameDecoder``).

    Args:
        delimiter: the bytes that end each frame; one or more bytes.
        max_frame_size: the longest frame accepted, delimiter excluded.
        keep_delimiter: leave the delimiter at the end of each decoded frame.

    Raises:
        TypeError, ValueError: on an invalid argument.
    """

    def __init__(
        self,
        delimiter: Buffer = b"\n",
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        keep_delimiter: bool = False,
    ) -> None:
        if not isinstance(delimiter, (bytes, bytearray, memoryview)):
            raise TypeError(f"delimiter must be bytes, not {type(delimiter).__name__}")
        delim = bytes(delimiter)
        if not delim:
            raise ValueError("delimiter must not be empty")
        if not isinstance(keep_delimiter, bool):
            raise TypeError(f"keep_delimiter must be a bool, not {type(keep_delimiter).__name__}")
        self._delimiter = delim
        self._max = _limits._int_arg(
            "max_frame_size", max_frame_size, 1, _limits._MAX_MAX_FRAME_SIZE
        )
        self._keep = keep_delimiter

    @property
    def delimiter(self) -> bytes:
        return self._delimiter

    @property
    def max_frame_size(self) -> int:
        return self._max

    @property
    def keep_delimiter(self) -> bool:
        return self._keep

    def __repr__(self) -> str:
        return (
            f"Delimited({self._delimiter!r}, max_frame_size={self._max}, "
            f"keep_delimiter={self._keep})"
        )

    def _check(self, payload: Buffer) -> Union[bytes, bytearray]:
        """Return ``payload`` as bytes or bytearray, or raise if it would not round-trip."""
        data = payload if isinstance(payload, (bytes, bytearray)) else bytes(payload)
        delim = self._delimiter
        # A delimiter inside the payload, or one formed by the payload's tail
        # and the delimiter's head (b"xa" + b"aa"), would end the frame early.
        tail = data[max(0, len(data) - len(delim) + 1) :] if len(delim) > 1 else b""
        if delim in data or (tail and (tail + delim).find(delim) != len(tail)):
            raise ValueError(
                f"payload contains the delimiter {delim!r} (or ends with part of it): "
                f"it cannot be framed by {self!r}"
            )
        return data

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return ``payload`` followed by the delimiter.

        Raises:
            ValueError: ``payload`` contains the delimiter.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"".join((self._check(payload), self._delimiter))

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the frames of all ``payloads`` in one buffer, for one ``sendall``.

        Raises:
            ValueError: a payload contains the delimiter.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        check = self._check
        parts = [check(p) for p in payloads]
        if not parts:
            return b""
        parts.append(b"")
        return self._delimiter.join(parts)

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Tuple[Buffer, bytes]:
        """Return ``(payload, delimiter)`` for a vectored send that never copies the payload.

        Raises:
            ValueError: ``payload`` contains the delimiter.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return payload, self._delimiter

    def decoder(self) -> DelimitedDecoder:
        """Return a new, independent decoder for one stream."""
        return DelimitedDecoder(self)


class DelimitedDecoder(_ChunkDecoder):
    """Incremental decoder for one stream; made by :meth:`Delimited.decoder`."""

    def __init__(self, codec: Delimited) -> None:
        self._delim = codec._delimiter
        self._dlen = len(codec._delimiter)
        self._max = codec._max
        self._keep = codec._keep
        # The unfinished line; while discarding, a possible delimiter start.
        self._line = bytearray()
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes buffered that belong to no complete frame yet."""
        return len(self._backlog) + (0 if self._discarding else len(self._line))

    def feed(self, data: Buffer) -> List[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Raises:
            FrameTooLarge: a line longer than ``max_frame_size``, raised as soon
                as that is certain; its bytes are dropped up to and including
                its delimiter.  The decoder stays usable; ``feed(b"")`` decodes
                frames already received behind it.  ``.frames`` holds the
                frames decoded before it.
        """
        return super().feed(data)

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: a line without its delimiter is pending.
        """
        pending = self.pending
        if pending:
            raise IncompleteFrame(
                f"stream ended inside a line: {pending} bytes without a delimiter {self._delim!r}",
                pending=pending,
                expected=None,
            )

    # -- internals ------------------------------------------------------------

    def _decode(self, data: bytes, frames: List[bytes]) -> None:
        pos = 0
        if self._line or self._discarding:
            pos = self._finish_line(data, frames)
        if pos < len(data):
            self._split(data, pos, frames)

    def _split(self, data: bytes, pos: int, frames: List[bytes]) -> None:
        """Decode ``data[pos:]`` with nothing pending: one ``split``, then checks."""
        chunk = data[pos:] if pos else data
        lines = chunk.split(self._delim)
        rest = lines.pop()
        if lines:
            if len(chunk) > self._max and max(map(len, lines)) > self._max:
                self._split_error(chunk, lines, frames)
            if self._keep:
                delim = self._delim
                frames.extend([line + delim for line in lines])
            else:
                frames.extend(lines)
        if rest:
            self._absorb(rest)

    def _split_error(self, chunk: bytes, lines: List[bytes], frames: List[bytes]) -> NoReturn:
        """Deliver the lines before the first oversized one, keep the rest, raise."""
        bad = next(k for k, line in enumerate(lines) if len(line) > self._max)
        good = lines[:bad]
        frames.extend([line + self._delim for line in good] if self._keep else good)
        consumed = sum(map(len, lines[: bad + 1])) + (bad + 1) * self._dlen
        self._backlog = chunk[consumed:]
        raise _limits.too_large_error(len(lines[bad]), self._max, frames)

    def _finish_line(self, data: bytes, frames: List[bytes]) -> int:
        """Complete the pending (or discarded) line with ``data``.

        Returns the offset in ``data`` after the delimiter that ends it, or
        ``len(data)`` when ``data`` holds none (then ``data`` was absorbed).
        """
        line = self._line
        delim = self._delim
        d = self._dlen
        end = -1
        if d > 1 and line:
            tail = bytes(line[-(d - 1) :])
            j = (tail + data[: d - 1]).find(delim)
            if j >= 0:  # it starts in the pending tail and ends in data
                end = j + d - len(tail)
        if end < 0:
            i = data.find(delim)
            if i < 0:
                self._absorb(data)
                return len(data)
            end = i + d
        size = len(line) + end - d
        if self._discarding:
            self._discarding = False
            line.clear()
            return end
        if size > self._max:
            line.clear()
            self._backlog = data[end:]
            raise _limits.too_large_error(size, self._max, frames)
        if self._keep:
            frame = b"".join((line, data[:end]))
        elif end >= d:
            frame = b"".join((line, data[: end - d]))
        else:
            frame = bytes(line[:size])
        line.clear()
        frames.append(frame)
        return end

    def _absorb(self, data: bytes) -> None:
        """Add ``data`` (which holds no delimiter) to the pending line, within bounds."""
        line = self._line
        total = len(line) + len(data)
        if self._discarding or total > self._max:
            tail = self._tail(line, data)
            keep = self._delimiter_start(tail)
            if self._discarding:
                line[:] = tail[len(tail) - keep :]
                return
            if total - keep > self._max:
                line[:] = tail[len(tail) - keep :]
                self._discarding = True
                raise FrameTooLarge(
                    f"line of at least {total - keep} bytes without a delimiter exceeds "
                    f"max_frame_size {self._max}; discarding it up to the next delimiter",
                    frame_length=total - keep,
                    max_frame_size=self._max,
                )
        line += data

    def _tail(self, line: bytearray, data: bytes) -> bytes:
        """The last ``len(delimiter) - 1`` bytes of ``line + data``."""
        n = self._dlen - 1
        if n == 0:
            return b""
        if len(data) >= n:
            return data[-n:]
        return (bytes(line[-n:]) + data)[-n:]

    def _delimiter_start(self, tail: bytes) -> int:
        """Length of the longest end of ``tail`` that begins the delimiter."""
        delim = self._delim
        for k in range(len(tail), 0, -1):
            if tail.endswith(delim[:k]):
                return k
        return 0
