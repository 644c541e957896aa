"""Exceptions shared by every part of framekit.

Design notes
------------
Both codec backends (the pure-Python reference in ``framekit.codecs.length_prefixed`` and the Cython
twin in ``_speedups``) import and raise these very classes, so ``except
framekit.FrameTooLarge`` works whichever backend is loaded.  Nothing here may
depend on a backend.

Every decoding error carries ``.frames``: the complete frames that were decoded
in the same call before the bad bytes were met.  A caller that catches the error
must deliver those frames first; nothing that arrived intact is ever lost.

``FramingError`` derives from ``ValueError`` because a framing error is bad
input data.  ``ConnectionClosed`` derives from ``ConnectionError`` because a
clean end of stream is a connection event, not a data error.
"""

from __future__ import annotations

from typing import Any, List

__all__ = [
    "FramingError",
    "FrameTooLarge",
    "CorruptedFrame",
    "IncompleteFrame",
    "BudgetExceeded",
    "ConnectionClosed",
    "SerializationError",
]


class FramingError(ValueError):
    """Base class of every error raised while decoding a framed stream.

    Attributes:
        frames: complete frames decoded by the same call before the error.
            Deliver them before handling the error.
        address: for datagram transports, the sender of the bad datagram;
            ``None`` for streams.
    """

    frames: List[bytes]
    address: Any

    def __init__(
        self, message: str, *, frames: List[bytes] | None = None, address: Any = None
    ) -> None:
        super().__init__(message)
        self.frames = [] if frames is None else frames
        self.address = address


class FrameTooLarge(FramingError):
    """A frame's adjusted length is above ``max_frame_size``.

    The decoder discards exactly ``frame_length`` bytes (even across later
    reads) and then carries on with the next frame: the stream stays in sync.

    Attributes:
        frame_length: the adjusted length the header announced, header included.
        max_frame_size: the configured maximum.
    """

    frame_length: int
    max_frame_size: int

    def __init__(
        self,
        message: str,
        *,
        frame_length: int = 0,
        max_frame_size: int = 0,
        frames: List[bytes] | None = None,
        address: Any = None,
    ) -> None:
        super().__init__(message, frames=frames, address=address)
        self.frame_length = frame_length
        self.max_frame_size = max_frame_size


class CorruptedFrame(FramingError):
    """The bytes cannot be a valid frame (negative or too-short length, a varint
    that is too long, ``strip`` beyond the frame, or a malformed datagram).

    After a corrupted length field a stream decoder is *broken*: every later
    call raises ``CorruptedFrame`` again, because there is no safe way to find
    the next frame boundary.
    """


class IncompleteFrame(FramingError):
    """The stream ended in the middle of a frame.

    Attributes:
        pending: how many bytes of the unfinished frame were buffered.
        expected: the full length of that frame if its header had arrived,
            else ``None``.
        missing: how many bytes were cut off, if known, else ``None``.
    """

    pending: int
    expected: int | None

    def __init__(
        self,
        message: str,
        *,
        pending: int = 0,
        expected: int | None = None,
        frames: List[bytes] | None = None,
        address: Any = None,
    ) -> None:
        super().__init__(message, frames=frames, address=address)
        self.pending = pending
        self.expected = expected

    @property
    def missing(self) -> int | None:
        return None if self.expected is None else self.expected - self.pending


class ConnectionClosed(ConnectionError):
    """The peer closed the connection cleanly, between two frames."""


class BudgetExceeded(ConnectionError):
    """A server's memory budget (``max_buffered_bytes``) is used up, and this
    connection's input would have taken more: it was refused, and the server
    closes it.  Messages received before are delivered first.

    Attributes:
        budget: the server's ``max_buffered_bytes``.
    """

    budget: int

    def __init__(self, message: str, *, budget: int = 0) -> None:
        super().__init__(message)
        self.budget = budget


class SerializationError(ValueError):
    """A frame could not be turned into an object (or an object into bytes).

    Attributes:
        frame: the raw frame that failed to deserialize (``None`` when
            serializing failed).
        address: for datagram transports, the sender of that frame; ``None``
            for streams.
    """

    frame: bytes | None
    address: Any

    def __init__(self, message: str, *, frame: bytes | None = None, address: Any = None) -> None:
        super().__init__(message)
        self.frame = frame
        self.address = address
