"""Frames of one fixed size: Netty's ``FixedLengthFrameDecoder``, in pure Python.

This module is the specification; ``_speedups_text.pyx`` is its Cython twin
(same names, same errors and messages, same results at every split point).

Semantics
---------
Every frame is exactly ``size`` bytes, with nothing around it: the decoder cuts
the stream every ``size`` bytes.  No input is ever invalid, so decoding raises
nothing; ``eof()`` raises ``IncompleteFrame`` when the stream ends inside a
frame.  The decoder holds at most one unfinished frame (``size - 1`` bytes),
plus the unread rest of one read after ``max_frames`` frames.

Encoding checks the size, which is also the codec's maximum: a longer payload
raises ``FrameTooLarge`` and a shorter one ``ValueError`` (it is not padded).
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from ..errors import FramingError
from . import _limits
from ._splitter import Source, Splitter
from .interface import Buffer

__all__ = ["FixedLength", "FixedLengthDecoder"]


def _nbytes(payload: Buffer) -> int:
    return len(payload) if type(payload) is bytes else memoryview(payload).nbytes


class FixedLength:
    """Frames of exactly ``size`` bytes (Netty's ``FixedLengthFrameDecoder``).

    Args:
        size: the size of every frame, in bytes.

    Raises:
        TypeError, ValueError: on an invalid size.
    """

    def __init__(self, size: int) -> None:
        self._size = _limits.check_max("size", size)

    @property
    def size(self) -> int:
        return self._size

    @property
    def max_frame_size(self) -> int:
        """The same as ``size``: every frame has that size."""
        return self._size

    def __repr__(self) -> str:
        return f"FixedLength({self._size})"

    def _check(self, payload: Buffer) -> None:
        n = _nbytes(payload)
        if n > self._size:
            raise _limits.payload_too_large_error(n, self._size, "size")
        if n < self._size:
            raise _limits.fixed_size_error(n, self._size)

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return ``payload`` (as ``bytes``): it is the frame.

        Raises:
            FrameTooLarge: ``payload`` is longer than ``size``.
            ValueError: ``payload`` is shorter than ``size``.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return bytes(payload)

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return all ``payloads`` in one buffer, for one ``sendall``.

        Raises:
            FrameTooLarge, ValueError: as :meth:`encode`, before anything is encoded.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        parts = list(payloads)
        for payload in parts:
            self._check(payload)
        return b"".join(parts)

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Tuple[Buffer]:
        """Return ``(payload,)``, for a vectored send that never copies the payload.

        Raises:
            FrameTooLarge, ValueError: as :meth:`encode`.
        """
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return (payload,)

    def decoder(self) -> FixedLengthDecoder:
        """Return a new, independent decoder for one stream."""
        return FixedLengthDecoder(self)


class FixedLengthDecoder(Splitter):
    """Incremental decoder for one stream; made by :meth:`FixedLength.decoder`.

    It has the switching capability: ``feed``/``buffer_updated`` take
    ``max_frames`` and :meth:`detach` hands back the rest of the stream.
    """

    def __init__(self, codec: FixedLength) -> None:
        super().__init__()
        self._size = codec._size

    def feed(self, data: Buffer, max_frames: int = -1) -> List[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Args:
            data: the bytes received.
            max_frames: decode at most this many frames (``-1``: no limit); the
                bytes after the last one are held, undecoded.
        """
        return super().feed(data, max_frames)

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: a frame was cut off.
        """
        if self._detached:
            raise _limits.detached_error()
        pending = self.pending
        if pending:
            raise _limits.incomplete_error(pending, self._size if pending < self._size else -1)

    def _decode(
        self, src: Source, pos: int, end: int, frames: List[bytes], limit: int
    ) -> Tuple[int, Optional[FramingError]]:
        size = self._size
        base = self._base
        ends = self._ends
        if not frames and end - pos >= size:
            self._first = pos - base
        while end - pos >= size and len(frames) != limit:
            frames.append(bytes(src[pos : pos + size]))
            pos += size
            ends.append(pos - base)
        return pos, None
