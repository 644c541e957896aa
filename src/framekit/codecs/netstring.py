"""djb's netstrings: ``<decimal length>:<data>,``.

Design notes
------------
The format (https://cr.yp.to/proto/netstrings.txt) is strict, and so is the
decoder: the length is ASCII digits with no sign, space or leading zero (``0``
alone is the empty netstring), then ``:``, then exactly that many bytes, then
``,``.  ``max_frame_size`` bounds the length, that is the data, not counting
the prefix and the comma.

Errors follow :class:`framekit.LengthPrefixed`:

* ``CorruptedFrame``: a non-digit or a leading zero in the length, an empty
  length, a missing ``,``, or a length of more than 20 digits.  Any of them
  means the frame boundaries are lost, so the decoder is *broken*: every later
  call raises ``CorruptedFrame`` again.
* ``FrameTooLarge``: the length is above ``max_frame_size``.  It is raised as
  soon as that is certain: when the length is read, or before, as soon as it
  has more digits than ``max_frame_size`` has (it cannot start with ``0``, so
  it is then larger).  In that second case ``frame_length`` is a lower bound.
  The frame's bytes are then dropped, never buffered (the rest of its length
  prefix, its data, and its ``,``, which is still checked) and decoding
  resumes, as with ``LengthPrefixed``.

This module is the specification; ``_speedups_text.pyx`` is its Cython twin
(same names, same errors and messages, same results at every split point).

Each byte is looked at by C code: ``bytes.find`` for the ``:`` within the
longest valid prefix, a table lookup (or ``bytes.isdigit`` and ``int``) for the
length, one slice for the data.  A frame that arrives whole in a read is sliced
straight out of it; only a frame cut by the end of a read is held (its prefix
is read again when more arrives: it is at most 21 bytes), never more than
``max_frame_size`` plus its prefix and comma.  After an error the unread rest of
the read waits for the next call (``feed(b"")``), less the bytes of a rejected
frame, which are dropped at once.  So the decoder holds at most one netstring
of ``max_frame_size`` bytes plus one read.

Encoding refuses a payload longer than ``max_frame_size`` with
``FrameTooLarge``, before anything is encoded.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from ..errors import CorruptedFrame, FramingError
from . import _limits
from ._limits import DEFAULT_MAX_FRAME_SIZE
from ._splitter import Source, Splitter
from .interface import Buffer

__all__ = ["Netstring", "NetstringDecoder"]

#: Longest length prefix read, in digits, even while skipping an oversized
#: frame: 10**20 bytes could never be skipped anyway.
MAX_DIGITS = 20

#: The canonical spellings of lengths below 1000: for the small frames where
#: per-frame cost matters, one dict lookup both validates a length prefix (no
#: sign, space, leading zero) and parses it.
_SMALL_LENGTHS = {b"%d" % n: n for n in range(1000)}

_COMMA = ord(",")
_ZERO = ord("0")


def _nbytes(payload: Buffer) -> int:
    return len(payload) if type(payload) is bytes else memoryview(payload).nbytes


class Netstring:
    """djb's netstring framing: ``b"5:hello,"``.

    Args:
        max_frame_size: the largest length accepted (the data, not counting
            the length prefix and the comma).

    Raises:
        TypeError, ValueError: on an invalid argument.
    """

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._max = _limits.check_max("max_frame_size", max_frame_size)

    @property
    def max_frame_size(self) -> int:
        return self._max

    def __repr__(self) -> str:
        return f"Netstring(max_frame_size={self._max})"

    def _size(self, payload: Buffer) -> int:
        size = _nbytes(payload)
        if size > self._max:
            raise _limits.payload_too_large_error(size, self._max, "max_frame_size")
        return size

    def header(self, payload_size: int) -> bytes:
        """Return the length prefix (``b"<size>:"``) of a payload of that size.

        Raises:
            FrameTooLarge: ``payload_size`` is above ``max_frame_size``.
        """
        if payload_size > self._max:
            raise _limits.payload_too_large_error(payload_size, self._max, "max_frame_size")
        return b"%d:" % payload_size

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return ``b"<len>:<payload>,"``.

        Raises:
            FrameTooLarge: ``payload`` is longer than ``max_frame_size``.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"".join((b"%d:" % self._size(payload), payload, b","))

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the netstrings of all ``payloads`` in one buffer, for one ``sendall``.

        Raises:
            FrameTooLarge: as :meth:`encode`, before anything is encoded.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        parts: List[Buffer] = []
        for payload in payloads:
            parts.append(b"%d:" % self._size(payload))
            parts.append(payload)
            parts.append(b",")
        return b"".join(parts)

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Tuple[bytes, Buffer, bytes]:
        """Return ``(prefix, payload, b",")`` for a vectored send that never copies the payload.

        Raises:
            FrameTooLarge: as :meth:`encode`.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"%d:" % self._size(payload), payload, b","

    def decoder(self) -> NetstringDecoder:
        """Return a new, independent decoder for one stream."""
        return NetstringDecoder(self)


class NetstringDecoder(Splitter):
    """Incremental decoder for one stream; made by :meth:`Netstring.decoder`.

    It has the switching capability: ``feed``/``buffer_updated`` take
    ``max_frames`` and :meth:`detach` hands back the rest of the stream.
    """

    def __init__(self, codec: Netstring) -> None:
        super().__init__()
        self._max = codec._max
        self._digits = len(str(codec._max))  # the most digits a valid length has
        self._expect = -1  # the whole size of the unfinished netstring, once its prefix is read
        self._skip = 0  # bytes of a rejected frame's data still to drop
        self._comma = False  # the ',' after the dropped data is still to check
        self._skip_prefix = False  # reading the rest of a rejected, over-long prefix
        self._prefix = b""  # its digits so far

    def feed(self, data: Buffer, max_frames: int = -1) -> List[bytes]:
        """Add received bytes; return every netstring they complete, in order.

        Args:
            data: the bytes received.
            max_frames: decode at most this many netstrings (``-1``: no limit);
                the bytes after the last one are held, undecoded.

        Raises:
            CorruptedFrame: a malformed length prefix or a missing ``,``; the
                decoder is unusable afterwards.
            FrameTooLarge: a length above ``max_frame_size``; the frame is
                dropped and decoding can go on (``feed(b"")`` decodes frames
                already received behind it).
            Each error's ``.frames`` holds the frames decoded before it.
        """
        return super().feed(data, max_frames)

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: a netstring was cut off (it says how many bytes
                were received, and of how many once its length was read).
        """
        if self._detached:
            raise _limits.detached_error()
        pending = self.pending
        if pending:
            expected = self._expect if self._expect > pending else -1
            raise _limits.incomplete_error(pending, expected)

    # -- internals ------------------------------------------------------------

    def _decode(
        self, src: Source, pos: int, end: int, frames: List[bytes], limit: int
    ) -> Tuple[int, Optional[FramingError]]:
        maximum = self._max
        window = self._digits + 1
        base = self._base
        ends = self._ends
        small = _SMALL_LENGTHS.get
        self._expect = -1
        while True:
            if len(frames) == limit:
                return pos, None
            if self._skip:
                n = min(self._skip, end - pos)
                if n:
                    pos += n
                    self._skip -= n
                    self._last_drop = pos - base
                if self._skip:
                    return pos, None
            if self._comma:
                if pos == end:
                    return pos, None
                if src[pos] != _COMMA:
                    byte = bytes(src[pos : pos + 1])
                    return end, self._corrupt(_limits.netstring_no_comma_after_drop(byte))
                pos += 1
                self._comma = False
                self._last_drop = pos - base
            if self._skip_prefix:
                pos, err = self._read_long_prefix(src, pos, end)
                if err is not None or self._skip_prefix:
                    return pos, err
                continue
            if pos == end:
                return pos, None
            stop = min(end, pos + window)
            colon = src.find(b":", pos, stop)
            head = bytes(src[pos : colon if colon >= 0 else stop])
            size = small(head) if colon >= 0 else None
            if size is None:
                if head and not head.isdigit():
                    return end, self._corrupt(_limits.netstring_not_digits(head[: MAX_DIGITS + 1]))
                if len(head) > 1 and head[0] == _ZERO:
                    return end, self._corrupt(_limits.netstring_leading_zero(head))
                if colon < 0:
                    if len(head) < window:
                        return pos, None
                    # More digits than max_frame_size has: too large, whatever follows.
                    self._skip_prefix = True
                    self._prefix = head
                    self._last_drop = stop - base
                    return stop, _limits.netstring_long_prefix_error(
                        self._digits, int(head), maximum
                    )
                if not head:
                    return end, self._corrupt(_limits.netstring_empty_length())
                size = int(head)
            data = colon + 1
            if size > maximum:
                self._skip = size
                self._comma = True
                n = min(size, end - data)
                self._skip -= n
                self._last_drop = data + n - base
                return data + n, _limits.too_large_error(size, maximum, [])
            stop = data + size
            if stop >= end:
                self._expect = stop + 1 - pos
                return pos, None
            if src[stop] != _COMMA:
                byte = bytes(src[stop : stop + 1])
                return end, self._corrupt(_limits.netstring_no_comma(size, byte))
            if not frames:
                self._first = pos - base
            frames.append(bytes(src[data:stop]))
            pos = stop + 1
            ends.append(pos - base)

    def _read_long_prefix(
        self, src: Source, pos: int, end: int
    ) -> Tuple[int, Optional[FramingError]]:
        """Read on through the digits of a rejected, over-long length prefix.

        Returns the offset after its ``:`` (with ``_skip`` set to the length),
        or ``end`` while the prefix goes on; and ``CorruptedFrame`` if it is
        malformed or longer than ``MAX_DIGITS``.
        """
        prior = self._prefix
        stop = min(end, pos + MAX_DIGITS + 1 - len(prior))
        colon = src.find(b":", pos, stop)
        head = prior + bytes(src[pos : colon if colon >= 0 else stop])
        if not head.isdigit():
            return end, self._corrupt(_limits.netstring_not_digits(head[: MAX_DIGITS + 1]))
        if colon < 0:
            if len(head) > MAX_DIGITS:
                return end, self._corrupt(_limits.netstring_too_many_digits(MAX_DIGITS))
            self._prefix = head
            if stop > pos:
                self._last_drop = stop - self._base
            return stop, None
        self._skip_prefix = False
        self._prefix = b""
        self._skip = int(head)
        self._comma = True
        self._last_drop = colon + 1 - self._base
        return colon + 1, None

    def _corrupt(self, reason: str) -> CorruptedFrame:
        """Break the decoder; return the ``CorruptedFrame`` to raise (the caller
        returns the end of the bytes: nothing is held any more)."""
        self._broken = reason
        self._skip = 0
        self._comma = self._skip_prefix = False
        self._prefix = b""
        self._expect = -1
        return CorruptedFrame(reason)
