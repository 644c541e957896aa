"""Delimiter-based framing: ``\\r\\n`` commands, NUL-separated records, several delimiters.

This module is the specification; ``_speedups_text.pyx`` is its Cython twin
(same names, same errors and messages, same results at every split point).

Semantics (Netty's ``DelimiterBasedFrameDecoder``, ``failFast=true``)
--------------------------------------------------------------------
A frame is the bytes before the next delimiter.  With several delimiters, the
one that gives the *shortest* frame wins: the occurrence that starts first,
and of two that start at the same byte, the one listed first (so
``Delimited(b"\\r\\n", b"\\n")`` cuts ``b"a\\r\\n"`` as ``b"a"``, not
``b"a\\r"``).  Encoding appends the first delimiter.  ``max_frame_size``
bounds a frame's length, delimiter excluded; a longer frame raises
``FrameTooLarge``, as soon as that is certain, and everything up to and
including its delimiter is dropped; decoding then resumes.  Delimiters may be
several bytes long and may arrive split across reads.

Where framekit departs from Netty, and why
------------------------------------------
Netty decides as soon as its buffer holds *a* delimiter.  With delimiters
where one can start inside another (``b"\\r"`` and ``b"\\r\\n"``;
``b"\\r\\n"`` and ``b"\\r\\n\\r\\n"``), what it returns then depends on how the
stream was cut into reads: ``b"a\\r"`` then ``b"\\n"`` gives ``b"a"`` and
``b""`` where ``b"a\\r\\n"`` in one read gives ``b"a"``.  framekit gives, at
every split, what Netty gives when the whole stream is in its buffer: a frame
whose delimiter might still turn out to be part of a longer, earlier-starting
(or, at the same byte, earlier-listed) one waits for the bytes that settle it.
So such a frame at the very end of a stream is reported by ``eof()`` as
``IncompleteFrame``: the bytes that would have settled it never came.  For
delimiters that cannot overlap that way (a single one, or ``b"\\n"`` and
``b"\\0"``) nothing ever waits.  A frame is certainly too long when more than
``max_frame_size`` bytes are held without a delimiter, not counting a tail
that may begin one (Netty counts it, and so rejects or accepts the same frame
depending on the reads).

Searching and the denial-of-service bound
-----------------------------------------
Each delimiter's next occurrence is found with ``bytes.find`` (``memchr`` or
``memmem`` in the twin) and remembered while it is still ahead, so every byte
is searched once per delimiter whatever the frame sizes, and an unfinished
frame remembers how far it was searched (``_scan``): a long frame arriving a
byte at a time costs O(n), not O(n^2).  Once a frame is certainly too long the
decoder keeps only a possible delimiter start (fewer bytes than the longest
delimiter) while it drops the rest.  So it holds at most ``max_frame_size``
plus the longest delimiter's length of an unfinished frame, plus the unread
rest of one read after an error or after ``max_frames`` frames.

Encoding appends the first delimiter and refuses a payload that holds a
delimiter (any of them), or ends with bytes that would make one match early,
or is longer than ``max_frame_size`` (``FrameTooLarge``): such a frame could
not round-trip.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple, Union

from ..errors import FramingError
from . import _limits
from ._limits import DEFAULT_MAX_FRAME_SIZE
from ._splitter import Source, Splitter
from .interface import Buffer

__all__ = ["Delimited", "DelimitedDecoder"]


class Delimited:
    """Frames that end with a delimiter (Netty's ``DelimiterBasedFrameDecoder``).

    Args:
        delimiter: the bytes that end each frame; one or more bytes.
        *more: further delimiters; the one that gives the shortest frame
            wins, and :meth:`encode` uses the first.
        max_frame_size: the longest frame accepted, delimiter excluded.
        keep_delimiter: leave the delimiter at the end of each decoded frame.

    Raises:
        TypeError, ValueError: on an invalid argument.
    """

    def __init__(
        self,
        delimiter: Buffer = b"\n",
        *more: Buffer,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        keep_delimiter: bool = False,
    ) -> None:
        self._delimiters = _limits.check_delimiters((delimiter, *more))
        self._max = _limits.check_max("max_frame_size", max_frame_size)
        self._keep = _limits.check_bool("keep_delimiter", keep_delimiter)

    @property
    def delimiter(self) -> bytes:
        """The first delimiter: the one :meth:`encode` appends."""
        return self._delimiters[0]

    @property
    def delimiters(self) -> Tuple[bytes, ...]:
        """Every delimiter, in the order given."""
        return self._delimiters

    @property
    def max_frame_size(self) -> int:
        return self._max

    @property
    def keep_delimiter(self) -> bool:
        return self._keep

    def __repr__(self) -> str:
        delimiters = ", ".join(map(repr, self._delimiters))
        return f"Delimited({delimiters}, max_frame_size={self._max}, keep_delimiter={self._keep})"

    def _check(self, payload: Buffer) -> Union[bytes, bytearray]:
        """Return ``payload`` as bytes or bytearray, or raise if it would not round-trip."""
        data = payload if isinstance(payload, (bytes, bytearray)) else bytes(payload)
        if len(data) > self._max:
            raise _limits.payload_too_large_error(len(data), self._max, "max_frame_size")
        first = self._delimiters[0]
        for delim in self._delimiters:
            if delim in data:
                raise _limits.contains_delimiter_error(delim, self)
            # A delimiter that starts in the payload's tail and runs into the
            # appended one (b"xa" + b"aa"), or might run on into the next frame,
            # would end the frame early, or leave its end unsettled.
            n = len(delim) - 1
            if n:
                joined = data[-n:] + first
                for at in range(len(joined) - len(first)):
                    rest = joined[at:]
                    if rest.startswith(delim) or delim.startswith(rest):
                        raise _limits.contains_delimiter_error(delim, self)
        return data

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return ``payload`` followed by the first delimiter.

        Raises:
            FrameTooLarge: ``payload`` is longer than ``max_frame_size``.
            ValueError: ``payload`` contains a delimiter.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"".join((self._check(payload), self._delimiters[0]))

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the frames of all ``payloads`` in one buffer, for one ``sendall``.

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
        return self._delimiters[0].join(parts)

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Tuple[Buffer, bytes]:
        """Return ``(payload, delimiter)`` for a vectored send that never copies the payload.

        Raises:
            FrameTooLarge, ValueError: as :meth:`encode`.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return payload, self._delimiters[0]

    def decoder(self) -> DelimitedDecoder:
        """Return a new, independent decoder for one stream."""
        return DelimitedDecoder(self)


class DelimitedDecoder(Splitter):
    """Incremental decoder for one stream; made by :meth:`Delimited.decoder`.

    It has the switching capability: ``feed``/``buffer_updated`` take
    ``max_frames`` and :meth:`detach` hands back the rest of the stream.
    """

    def __init__(self, codec: Delimited) -> None:
        super().__init__()
        self._delims = codec._delimiters
        self._longest = max(map(len, codec._delimiters))
        self._max = codec._max
        self._keep = codec._keep
        self._scan = 0  # bytes of the unfinished frame known to start no delimiter
        self._discarding = False  # dropping a frame that is too long, up to its delimiter

    def feed(self, data: Buffer, max_frames: int = -1) -> List[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Args:
            data: the bytes received.
            max_frames: decode at most this many frames (``-1``: no limit); the
                bytes after the last one are held, undecoded.

        Raises:
            FrameTooLarge: a frame longer than ``max_frame_size``, raised as soon
                as that is certain; its bytes are dropped up to and including
                its delimiter.  The decoder stays usable; ``feed(b"")`` decodes
                frames already received behind it.  ``.frames`` holds the
                frames decoded before it.
        """
        return super().feed(data, max_frames)

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: a frame without its (settled) delimiter is held.
        """
        if self._detached:
            raise _limits.detached_error()
        pending = self.pending
        if pending:
            raise _limits.line_incomplete_error(pending, self._delims)

    # -- internals ------------------------------------------------------------

    def _decode(
        self, src: Source, pos: int, end: int, frames: List[bytes], limit: int
    ) -> Tuple[int, Optional[FramingError]]:
        delims = self._delims
        count = len(delims)
        maximum = self._max
        keep = self._keep
        base = self._base
        ends = self._ends
        # Where each delimiter next occurs, at or after `pos` (-1: nowhere
        # before `end`); None: not searched yet.
        found: List[Optional[int]] = [None] * count
        start = pos + self._scan
        while True:
            if len(frames) == limit:
                return pos, None
            best = -1
            which = 0
            for k in range(count):
                at = found[k]
                if at is None or 0 <= at < pos:
                    at = found[k] = src.find(delims[k], max(start, pos), end)
                if at >= 0 and (best < 0 or at < best):
                    best, which = at, k
            if best < 0 or not self._settled(src, pos, end, best, which):
                # No frame can be cut yet.  It will end at or after `end - tail`:
                # any delimiter that could still win starts there.
                tail = self._delimiter_start(src, pos, end)
                size = end - pos - tail
                if self._discarding or size > maximum:
                    self._scan = 0
                    self._hidden = tail
                    if size:
                        self._last_drop = end - tail - base
                    if not self._discarding:
                        self._discarding = True
                        return end - tail, _limits.unterminated_frame_error(size, maximum, [])
                    return end - tail, None
                self._scan = max(0, min(end - self._longest + 1, best if best >= 0 else end) - pos)
                return pos, None
            self._scan = 0
            self._hidden = 0
            stop = best + len(delims[which])
            if self._discarding:
                self._discarding = False
                self._last_drop = stop - base
                pos = start = stop
                continue
            if best - pos > maximum:
                self._last_drop = stop - base
                return stop, _limits.too_large_error(best - pos, maximum, [])
            if not frames:
                self._first = pos - base
            frames.append(bytes(src[pos : stop if keep else best]))
            pos = start = stop
            ends.append(pos - base)

    def _settled(self, src: Source, pos: int, end: int, best: int, which: int) -> bool:
        """Whether the frame ends at the delimiter ``which`` found at ``best``: no
        delimiter that would win could still start before it (at it, for one
        listed earlier) and end in bytes not received yet."""
        if end - best >= self._longest:
            return True  # any such delimiter would lie whole in the bytes held
        for k, delim in enumerate(self._delims):
            if k == which:
                continue
            last = best if k < which else best - 1
            for at in range(max(pos, end - len(delim) + 1), last + 1):
                if delim.startswith(src[at:end]):
                    return False
        return True

    def _delimiter_start(self, src: Source, pos: int, end: int) -> int:
        """Length of the longest end of ``src[pos:end]`` that may begin a delimiter."""
        for n in range(min(self._longest - 1, end - pos), 0, -1):
            tail = src[end - n : end]
            if any(len(d) > n and d.startswith(tail) for d in self._delims):
                return n
        return 0
