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

Each byte is looked at by C code: ``bytes.find`` for the ``:`` within the
longest valid prefix, a table lookup (or ``bytes.isdigit`` and ``int``) for the
length, one slice for the data.  A frame that arrives whole in a chunk is sliced straight out of
it; only a frame cut by the end of a chunk is buffered, and then only its
digits or its data, never more than ``max_frame_size`` bytes.  After an error
the unread rest of the chunk waits for the next call (``feed(b"")``), less the
bytes of a rejected frame, which are dropped at once.
"""

from __future__ import annotations

from typing import Iterable, List, NoReturn, Tuple

from ..errors import CorruptedFrame, FrameTooLarge, FramingError
from . import _limits
from ._limits import DEFAULT_MAX_FRAME_SIZE
from .interface import Buffer, CodecBase, _ChunkDecoder

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


class Netstring(CodecBase):
    """djb's netstring framing: ``b"5:hello,"``.

    Args:
        max_frame_size: the largest length accepted (the data, not counting
            the length prefix and the comma).

    Raises:
        TypeError, ValueError: on an invalid argument.
    """

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._max = _limits._int_arg(
            "max_frame_size", max_frame_size, 1, _limits._MAX_MAX_FRAME_SIZE
        )

    @property
    def max_frame_size(self) -> int:
        return self._max

    def __repr__(self) -> str:
        return f"Netstring(max_frame_size={self._max})"

    def header(self, payload_size: int) -> bytes:
        """Return the length prefix (``b"<size>:"``) of a payload of that size."""
        return b"%d:" % payload_size

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return ``b"<len>:<payload>,"``."""
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"".join((b"%d:" % _nbytes(payload), payload, b","))

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the netstrings of all ``payloads`` in one buffer, for one ``sendall``."""
        if prefix:
            raise _limits.no_prefix_error(self)
        parts: List[Buffer] = []
        for payload in payloads:
            parts.append(b"%d:" % _nbytes(payload))
            parts.append(payload)
            parts.append(b",")
        return b"".join(parts)

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Tuple[bytes, Buffer, bytes]:
        """Return ``(prefix, payload, b",")`` for a vectored send that never copies the payload."""
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"%d:" % _nbytes(payload), payload, b","

    def decoder(self) -> NetstringDecoder:
        """Return a new, independent decoder for one stream."""
        return NetstringDecoder(self)


class NetstringDecoder(_ChunkDecoder):
    """Incremental decoder for one stream; made by :meth:`Netstring.decoder`."""

    def __init__(self, codec: Netstring) -> None:
        self._max = codec._max
        self._digits = len(str(codec._max))  # the most digits a valid length has
        # Digits of an unfinished length prefix, then the data of an unfinished frame.
        self._buf = bytearray()
        self._size = -1  # length of the unfinished frame, once its prefix is read
        self._head = 0  # its prefix's size (digits and ':')
        self._skip = 0  # bytes of a rejected frame's data still to drop
        self._comma = False  # the ',' after the dropped data is still to check
        self._skip_prefix = False  # reading the rest of a rejected, over-long prefix

    @property
    def pending(self) -> int:
        """Bytes buffered that belong to no complete frame yet."""
        if self._skip_prefix:
            return len(self._backlog)
        head = self._head if self._size >= 0 else 0
        return len(self._backlog) + head + len(self._buf)

    def feed(self, data: Buffer) -> List[bytes]:
        """Add received bytes; return every netstring they complete, in order.

        Raises:
            CorruptedFrame: a malformed length prefix or a missing ``,``; the
                decoder is unusable afterwards.
            FrameTooLarge: a length above ``max_frame_size``; the frame is
                dropped and decoding can go on (``feed(b"")`` decodes frames
                already received behind it).
            Each error's ``.frames`` holds the frames decoded before it.
        """
        return super().feed(data)

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: a netstring was cut off (it says how many bytes
                were received, and of how many once its length was read).
        """
        pending = self.pending
        if pending:
            expected = self._head + self._size + 1 if self._size >= 0 else -1
            raise _limits.incomplete_error(pending, expected)

    # -- internals ------------------------------------------------------------

    def _decode(self, data: bytes, frames: List[bytes]) -> None:
        """Decode all of ``data``: finish what earlier calls left, then the rest."""
        end = len(data)
        pos = 0
        while True:
            if self._skip:
                n = min(self._skip, end - pos)
                pos += n
                self._skip -= n
                if self._skip:
                    return
            if self._comma:
                if pos == end:
                    return
                if data[pos] != _COMMA:
                    self._corrupt(f"no ',' after the dropped netstring: {data[pos : pos + 1]!r}")
                pos += 1
                self._comma = False
            if self._size >= 0:
                pos = self._read_data(data, pos, frames)
                if self._size >= 0:
                    return
            if self._buf or self._skip_prefix:
                pos = self._read_prefix(data, pos)
                if self._size < 0 and not self._skip:
                    return
                continue
            pos = self._decode_whole(data, pos, frames)
            if pos == end:
                return

    def _decode_whole(self, data: bytes, pos: int, frames: List[bytes]) -> int:
        """The fast path: slice out the netstrings that lie whole in ``data``.

        Returns where it stopped: the end of ``data``, or the start of a
        netstring it leaves to the general path (cut off, oversized, malformed).
        """
        end = len(data)
        window = self._digits + 1
        maximum = self._max
        find = data.find
        small = _SMALL_LENGTHS.get
        while pos < end:
            colon = find(b":", pos, pos + window)
            if colon < 0:
                break
            head = data[pos:colon]
            size = small(head)
            if size is None:
                if not head.isdigit() or (head[0] == _ZERO and colon - pos > 1):
                    break
                size = int(head)
            stop = colon + 1 + size
            if size > maximum or stop >= end or data[stop] != _COMMA:
                break
            frames.append(data[colon + 1 : stop])
            pos = stop + 1
        else:
            return pos
        pos = self._read_prefix(data, pos)
        if self._size >= 0:
            pos = self._read_data(data, pos, frames)
        return pos

    def _read_prefix(self, data: bytes, pos: int) -> int:
        """Read a length prefix (the digits buffered so far, then ``data[pos:]``).

        Returns the offset after the ``:``, with ``_size`` set (or ``_skip``
        for a rejected frame), or ``len(data)`` when the prefix is still
        unfinished (its digits are buffered).

        Raises:
            CorruptedFrame: the prefix is malformed.
            FrameTooLarge: the length is above ``max_frame_size``.
        """
        buf = self._buf
        limit = MAX_DIGITS if self._skip_prefix else self._digits
        window = data[pos : pos + limit + 1 - len(buf)]
        colon = window.find(b":")
        head = bytes(buf) + (window if colon < 0 else window[:colon])
        if head and not head.isdigit():
            self._corrupt(f"netstring length is not decimal digits: {head[: MAX_DIGITS + 1]!r}")
        if len(head) > 1 and head[0] == _ZERO:
            self._corrupt(f"netstring length has a leading zero: {head!r}")
        if colon < 0:
            buf[:] = head
            if len(head) <= limit:
                return len(data)
            if self._skip_prefix:
                self._corrupt(f"netstring length has more than {MAX_DIGITS} digits")
            # More digits than max_frame_size has: too large, whatever follows.
            self._skip_prefix = True
            self._fail(
                FrameTooLarge(
                    f"netstring length of more than {self._digits} digits (at least "
                    f"{int(head)} bytes) exceeds max_frame_size {self._max}; discarding it",
                    frame_length=int(head),
                    max_frame_size=self._max,
                ),
                data,
                pos + len(window),
            )
        if not head:
            self._corrupt("netstring length is empty (':' without digits)")
        buf.clear()
        size = int(head)
        pos += colon + 1
        if self._skip_prefix:
            self._skip_prefix = False
            self._skip = size
            self._comma = True
            return pos
        if size > self._max:
            self._skip = size
            self._comma = True
            self._fail(_limits.too_large_error(size, self._max, []), data, pos)
        self._size = size
        self._head = len(head) + 1
        return pos

    def _read_data(self, data: bytes, pos: int, frames: List[bytes]) -> int:
        """Read the data and ``,`` of the frame whose prefix was read.

        Returns the offset after the ``,``, or ``len(data)`` when the frame
        is still unfinished (the data received is buffered).

        Raises:
            CorruptedFrame: the data is not followed by ``,``.
        """
        buf = self._buf
        need = self._size - len(buf)
        if len(data) - pos <= need:
            buf += data[pos:] if pos else data
            return len(data)
        stop = pos + need
        if data[stop] != _COMMA:
            self._corrupt(
                f"netstring of {self._size} bytes is not followed by ',': {data[stop : stop + 1]!r}"
            )
        frames.append(b"".join((buf, data[pos:stop])) if buf else data[pos:stop])
        buf.clear()
        self._size = -1
        return stop + 1

    def _fail(self, err: FramingError, data: bytes, pos: int) -> NoReturn:
        """Raise ``err`` (not corrupt): drop the rejected frame's bytes at once
        and keep the rest of ``data`` for the next call."""
        n = min(self._skip, len(data) - pos)
        self._skip -= n
        self._backlog = data[pos + n :]
        raise err

    def _corrupt(self, reason: str) -> NoReturn:
        """Break the decoder and raise ``CorruptedFrame``."""
        self._broken = reason
        self._buf = bytearray()
        self._size = -1
        self._skip = 0
        self._comma = self._skip_prefix = False
        self._backlog = b""
        raise CorruptedFrame(reason)
