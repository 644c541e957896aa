"""Frames too large to hold, on blocking sockets: a frame read in pieces.

Design notes
------------
:meth:`FramedSocket.recv_stream` returns a :class:`FrameStream`: the frame's
``length``, then its payload in chunks of at most ``chunk_size`` bytes, so
memory stays bounded whatever the frame's size.  The payload bytes the decoder
already holds come first; the rest is read straight from the socket into the
chunk the caller gets (``sock.recv``: one copy, kernel to chunk), or into the
caller's own buffer (:meth:`FrameStream.readinto`: no copy at all).  A frame
that was already decoded whole (shorter than a read, or complete before the
call) is a stream over that one ``bytes``.  Leaving a ``with`` block, or
``close()``, before the end skips the rest of the frame, so the connection
stays usable and the next ``recv()`` gets the next frame.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from .._util import Closing
from ..codecs.interface import Buffer

__all__ = ["DEFAULT_CHUNK_SIZE", "FrameStream"]

#: The largest chunk a stream hands out.
DEFAULT_CHUNK_SIZE = 256 * 1024


class FrameStream(Closing):
    """The payload of one frame, read in pieces (see :meth:`FramedSocket.recv_stream`).

    Iterate it for chunks of bytes, or :meth:`read`/:meth:`readinto` it.

    Attributes:
        length: the payload's size, announced by the frame's header.
        chunk_size: the largest chunk iteration and :meth:`read` return.
    """

    __slots__ = ("_discard", "_left", "_read", "_readinto", "_whole", "chunk_size", "length")

    def __init__(
        self,
        length: int,
        *,
        whole: Optional[bytes] = None,
        read: Optional[Callable[[int], bytes]] = None,
        readinto: Optional[Callable[[memoryview], int]] = None,
        discard: Optional[Callable[[], None]] = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.length = length
        self.chunk_size = chunk_size
        self._left = length
        self._whole = whole
        self._read = read
        self._readinto = readinto
        self._discard = discard

    @property
    def remaining(self) -> int:
        """Payload bytes not read yet."""
        return self._left

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the payload (``-1``: one chunk); ``b""`` at its end.

        Raises:
            IncompleteFrame: the connection ended inside the frame.
            TimeoutError, OSError: as ``recv()``.
        """
        want = self.chunk_size if size < 0 else min(size, self.chunk_size)
        want = min(want, self._left)
        if not want:
            return b""
        whole = self._whole
        if whole is not None:
            start = self.length - self._left
            data = whole[start : start + want]
        else:
            assert self._read is not None
            data = self._read(want)
        self._left -= len(data)
        return data

    def readinto(self, buffer: Buffer) -> int:
        """Read payload bytes into ``buffer`` (as much as fits); return how many (0 at the end).

        Raises:
            as :meth:`read`.
        """
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if not want:
            return 0
        whole = self._whole
        if whole is not None:
            start = self.length - self._left
            view[:want] = whole[start : start + want]
            n = want
        else:
            assert self._readinto is not None
            n = self._readinto(view[:want])
        self._left -= n
        return n

    def __iter__(self) -> Iterator[bytes]:
        """The payload's chunks, in order, until its end."""
        while self._left:
            yield self.read()

    def close(self) -> None:
        """Skip what is left of the payload: the connection goes on with the next frame."""
        if self._left and self._discard is not None:
            self._discard()
        self._left = 0

    def __repr__(self) -> str:
        return f"<FrameStream {self.length - self._left}/{self.length} bytes read>"
