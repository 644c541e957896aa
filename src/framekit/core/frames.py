"""Frames too large to hold: what reading and sending them in pieces is, on every transport.

Design notes
------------
``recv_stream()`` hands out a frame's payload in chunks, ``recv_into()`` reads
it into the caller's buffer, ``send_stream()``/``send_file()`` send one whose
payload comes in pieces.  The core (:meth:`StreamCore.open_stream` and the
``stream_*`` methods) does the framing; what is left is the same on every
transport, and is here, once:

* :class:`FrameStream` (blocking) and :class:`AsyncFrameStream` (asyncio and
  anyio) are the objects ``recv_stream()`` returns.  They hold no socket: the
  transport gives them functions that read the next piece of the payload (and,
  for the blocking one, read it straight into the caller's buffer).  A frame
  that was already decoded whole is a stream over that one ``bytes``.
* :func:`place_whole` and :func:`check_room` are ``recv_into``'s rule: a frame
  that does not fit the buffer stays unread, for ``recv()``, ``recv_stream()``
  or a larger buffer.
* :class:`OutgoingFrame` counts a streamed frame's payload against the length
  its header announced: a frame that cannot go out whole must be cut (the
  transport aborts the connection), never sent misaligned.
"""

from __future__ import annotations

from typing import AsyncIterator, Awaitable, Callable, Iterator, Optional

from .._util import Closing
from ..codecs.interface import Buffer
from ..errors import FrameTooLarge
from .options import DEFAULT_CHUNK_SIZE
from .stream import StreamCore

__all__ = [
    "AsyncFrameStream",
    "FrameStream",
    "OutgoingFrame",
    "check_room",
    "place_whole",
]


# -- recv_into ----------------------------------------------------------------------


def _does_not_fit(length: int, room: int) -> FrameTooLarge:
    return FrameTooLarge(
        f"a {length}-byte frame does not fit the {room}-byte buffer; it stays unread",
        frame_length=length,
        max_frame_size=room,
    )


def place_whole(core: StreamCore, frame: bytes, view: memoryview) -> int:
    """``recv_into`` of a frame already decoded whole: copy it into ``view``.

    Raises:
        FrameTooLarge: it does not fit; it is put back, the next read returns it.
    """
    if len(frame) > len(view):
        core.put_back(frame)
        raise _does_not_fit(len(frame), len(view))
    view[: len(frame)] = frame
    return len(frame)


def check_room(core: StreamCore, length: int, view: memoryview) -> None:
    """``recv_into`` of an open stream of ``length`` bytes.

    Raises:
        FrameTooLarge: it does not fit ``view``; the stream is kept for the next read.
    """
    if length > len(view):
        core.keep_stream()
        raise _does_not_fit(length, len(view))


# -- send_stream ----------------------------------------------------------------------


class OutgoingFrame:
    """The payload of a frame being sent in pieces, counted against its header's length."""

    __slots__ = ("length", "sent")

    def __init__(self, length: int) -> None:
        self.length = length
        self.sent = 0

    def _wrong(self, got: str) -> ValueError:
        return ValueError(
            f"send_stream: the chunks hold {got} bytes, not the {self.length} announced; "
            "the connection is aborted (its peer sees an incomplete frame)"
        )

    def take(self, chunk: Buffer) -> None:
        """Count ``chunk`` before it is sent.

        Raises:
            ValueError: it would go past the announced length (nothing of it is sent).
        """
        size = len(chunk) if type(chunk) is bytes else memoryview(chunk).nbytes
        if self.sent + size > self.length:
            raise self._wrong("more")
        self.sent += size

    def finish(self) -> None:
        """After the last chunk.

        Raises:
            ValueError: fewer bytes came than the header announced.
        """
        if self.sent < self.length:
            raise self._wrong(f"only {self.sent}")


# -- the stream objects ------------------------------------------------------------------


class _Payload(Closing):
    """What both stream objects are: a payload's length, and how much is left."""

    __slots__ = ("_discard", "_left", "_whole", "chunk_size", "length")

    def __init__(
        self,
        length: int,
        whole: Optional[bytes],
        discard: Optional[Callable[[], None]],
        chunk_size: int,
    ) -> None:
        self.length = length
        self.chunk_size = chunk_size
        self._left = length
        self._whole = whole
        self._discard = discard

    @property
    def remaining(self) -> int:
        """Payload bytes not read yet."""
        return self._left

    def _want(self, size: int) -> int:
        want = self.chunk_size if size < 0 else min(size, self.chunk_size)
        return min(want, self._left)

    def _from_whole(self, whole: bytes, want: int) -> bytes:
        start = self.length - self._left
        self._left -= want
        return whole[start : start + want]

    def close(self) -> None:
        """Skip what is left of the payload: the connection goes on with the next frame."""
        if self._left and self._discard is not None:
            self._discard()
        self._left = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.length - self._left}/{self.length} bytes read>"


class FrameStream(_Payload):
    """The payload of one frame, read in pieces (see ``FramedSocket.recv_stream``).

    Iterate it for chunks of bytes, or :meth:`read`/:meth:`readinto` it; use it
    with ``with``: leaving the block early skips the rest of the frame.

    Attributes:
        length: the payload's size, announced by the frame's header.
        chunk_size: the largest chunk iteration and :meth:`read` return.
    """

    __slots__ = ("_read", "_readinto")

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
        super().__init__(length, whole, discard, chunk_size)
        self._read = read
        self._readinto = readinto

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the payload (``-1``: one chunk); ``b""`` at its end.

        Raises:
            IncompleteFrame: the connection ended inside the frame.
            TimeoutError, OSError: as ``recv()``.
        """
        want = self._want(size)
        if not want:
            return b""
        if self._whole is not None:
            return self._from_whole(self._whole, want)
        assert self._read is not None
        data = self._read(want)
        self._left -= len(data)
        return data

    def readinto(self, buffer: Buffer) -> int:
        """Read payload bytes into ``buffer`` (as much as fits); return how many (0 at the end).

        Raises:
            As :meth:`read`.
        """
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if not want:
            return 0
        if self._whole is not None:
            view[:want] = self._from_whole(self._whole, want)
            return want
        assert self._readinto is not None
        n = self._readinto(view[:want])
        self._left -= n
        return n

    def __iter__(self) -> Iterator[bytes]:
        """The payload's chunks, in order, until its end."""
        while self._left:
            yield self.read()


class AsyncFrameStream(_Payload):
    """The payload of one frame, read in pieces (see ``Connection.recv_stream``).

    ``async for`` it for chunks of bytes, or :meth:`read`/:meth:`readinto` it;
    use it with ``async with``: leaving the block early skips the rest of the frame.

    Attributes:
        length: the payload's size, announced by the frame's header.
        chunk_size: the largest chunk ``async for`` and :meth:`read` return.
    """

    __slots__ = ("_read", "_readinto")

    def __init__(
        self,
        length: int,
        *,
        whole: Optional[bytes] = None,
        read: Optional[Callable[[int], Awaitable[bytes]]] = None,
        readinto: Optional[Callable[[memoryview], Awaitable[int]]] = None,
        discard: Optional[Callable[[], None]] = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__(length, whole, discard, chunk_size)
        self._read = read
        self._readinto = readinto

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the payload (``-1``: one chunk); ``b""`` at its end.

        Raises:
            IncompleteFrame: the connection ended inside the frame.
            TimeoutError, OSError: as ``recv()``.
        """
        want = self._want(size)
        if not want:
            return b""
        if self._whole is not None:
            return self._from_whole(self._whole, want)
        assert self._read is not None
        data = await self._read(want)
        self._left -= len(data)
        return data

    async def readinto(self, buffer: Buffer) -> int:
        """Read payload bytes into ``buffer`` (as much as fits; on asyncio straight
        from the socket); return how many (0 at the end).

        Raises:
            As :meth:`read`.
        """
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if not want:
            return 0
        if self._whole is not None:
            view[:want] = self._from_whole(self._whole, want)
            return want
        if self._readinto is None:
            data = await self.read(want)
            view[: len(data)] = data
            return len(data)
        n = await self._readinto(view[:want])
        self._left -= n
        return n

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while self._left:
            yield await self.read()

    async def aclose(self) -> None:
        """As :meth:`close`."""
        self.close()

    async def __aenter__(self) -> AsyncFrameStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
