"""Frames too large to hold, on asyncio: a frame read in pieces.

Design notes
------------
:meth:`Connection.recv_stream` returns an :class:`AsyncFrameStream`: the
frame's ``length``, then its payload in chunks (``async for``), so memory
stays bounded whatever the frame's size.  The event loop reads into the
decoder's buffer (which offers no more room than the rest of the payload),
and each chunk is what the decoder holds of the payload, copied out once.
Backpressure is the connection's: reading pauses while more than
``max_queued_bytes`` wait.  A frame that was already decoded whole is a
stream over that one ``bytes``.  Leaving an ``async with`` block, or
``close()``, before the end skips the rest of the frame, and the connection
goes on with the next.
"""

from __future__ import annotations

from typing import AsyncIterator, Awaitable, Callable, Optional

from ..codecs.interface import Buffer

__all__ = ["DEFAULT_CHUNK_SIZE", "AsyncFrameStream"]

#: The largest chunk a stream hands out.
DEFAULT_CHUNK_SIZE = 256 * 1024


class AsyncFrameStream:
    """The payload of one frame, read in pieces (see :meth:`Connection.recv_stream`).

    Attributes:
        length: the payload's size, announced by the frame's header.
        chunk_size: the largest chunk ``async for`` and :meth:`read` return.
    """

    def __init__(
        self,
        length: int,
        *,
        whole: Optional[bytes] = None,
        read: Optional[Callable[[int], Awaitable[bytes]]] = None,
        discard: Optional[Callable[[], None]] = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.length = length
        self.chunk_size = chunk_size
        self._left = length
        self._whole = whole
        self._read = read
        self._discard = discard

    @property
    def remaining(self) -> int:
        """Payload bytes not read yet."""
        return self._left

    async def read(self, size: int = -1) -> bytes:
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
            data = await self._read(want)
        self._left -= len(data)
        return data

    async def readinto(self, buffer: Buffer) -> int:
        """Read payload bytes into ``buffer``; return how many (0 at the end)."""
        view = memoryview(buffer).cast("B")
        data = await self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while self._left:
            yield await self.read()

    def close(self) -> None:
        """Skip what is left of the payload: the connection goes on with the next frame."""
        if self._left and self._discard is not None:
            self._discard()
        self._left = 0

    async def aclose(self) -> None:
        """As :meth:`close`."""
        self.close()

    async def __aenter__(self) -> AsyncFrameStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AsyncFrameStream {self.length - self._left}/{self.length} bytes read>"
