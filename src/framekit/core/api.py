"""The part of every connection's public API that is the same on every transport.

Design notes
------------
A blocking ``FramedSocket``, an asyncio ``Connection`` and an anyio
``Connection`` differ in how they wait, never in what they are: their codec,
serializer, queue state, codec switching.  Those attributes read and write
the connection's core, and are written once, here, as mixins each transport's
class inherits (:class:`StreamAPI`, :class:`DatagramAPI`).  They declare no
slots of their own, so a class with ``__slots__`` keeps them; the class sets
``self._core``.
"""

from __future__ import annotations

from typing import Optional

from ..codecs.interface import Codec
from ..serializers import Serializer
from .datagram import DatagramCore
from .options import check_serializer, make_codec
from .stream import StreamCore

__all__ = ["DatagramAPI", "StreamAPI"]


class StreamAPI:
    """What a stream connection is, on every transport (a mixin: ``self._core``)."""

    __slots__ = ()
    _core: StreamCore

    @property
    def codec(self) -> Codec:
        """The codec in use (see :meth:`switch_codec`)."""
        return self._core.codec

    @property
    def serializer(self) -> Optional[Serializer]:
        """The serializer in use, or None; may be replaced at any time."""
        return self._core.serializer

    @serializer.setter
    def serializer(self, serializer: Optional[Serializer]) -> None:
        self._core.serializer = check_serializer(serializer)

    @property
    def core(self) -> StreamCore:
        """The sans-IO connection core (documented internal: counters, queue state)."""
        return self._core

    @property
    def queued_frames(self) -> int:
        """Decoded messages waiting for ``recv()``."""
        return self._core.queued_frames

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting for ``recv()``: decoded, held back, or partial frames."""
        return self._core.queued_bytes

    def switch_codec(self, codec: Codec) -> None:
        """Decode with ``codec`` from the frame after the last one returned.

        Messages already decoded but not returned yet, and bytes still
        buffered, are decoded again by the new codec: nothing is lost and
        nothing is decoded twice.  Encoding uses the new codec too.

        Raises:
            TypeError: ``codec`` is not a codec, or the current codec cannot
                hand back the bytes it holds (see :class:`framekit.Decoder`).
            ValueError: the current decoder cannot go back to that point.
        """
        self._core.switch_codec(make_codec(codec))


class DatagramAPI:
    """What a datagram socket is, on every transport (a mixin: ``self._core``)."""

    __slots__ = ()
    _core: DatagramCore

    @property
    def codec(self) -> Codec:
        """The codec of every datagram."""
        return self._core.codec

    @property
    def serializer(self) -> Optional[Serializer]:
        """The serializer in use, or None; may be replaced at any time."""
        return self._core.serializer

    @serializer.setter
    def serializer(self, serializer: Optional[Serializer]) -> None:
        self._core.serializer = check_serializer(serializer)

    @property
    def max_datagram_size(self) -> int:
        """The largest datagram sent or accepted."""
        return self._core.max_datagram_size

    @property
    def core(self) -> DatagramCore:
        """The sans-IO datagram core (documented internal: counters, queue state)."""
        return self._core

    @property
    def dropped(self) -> int:
        """Datagrams dropped because too many frames waited unread."""
        return self._core.dropped

    @property
    def queued_frames(self) -> int:
        """Decoded frames waiting for ``recv()``."""
        return self._core.queued_frames
