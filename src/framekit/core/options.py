"""Checks of the codec= and serializer= arguments every transport takes.

Design notes
------------
Bad arguments fail when a transport is made (``connect()``, ``serve()``,
``FramedSocket(...)``...), with a message
that names them, not later inside a protocol callback where asyncio would only
log them.  One function per argument, used by every entry point, so the
rules and messages cannot drift between them.
"""

from __future__ import annotations

from typing import Optional

from ..codecs.backend import LengthPrefixed
from ..codecs.interface import Codec
from ..serializers import Serializer

__all__ = ["check_serializer", "make_codec"]


def make_codec(codec: Optional[Codec]) -> Codec:
    """Return ``codec``, or the default ``LengthPrefixed()`` for None.

    Raises:
        TypeError: ``codec`` does not implement :class:`framekit.codecs.interface.Codec`.
    """
    if codec is None:
        return LengthPrefixed()
    if not isinstance(codec, Codec):
        raise TypeError(
            f"codec must implement framekit.codecs.interface.Codec "
            f"(decoder, encode, encode_many, encode_parts), not {type(codec).__name__}"
        )
    return codec


def check_serializer(serializer: Optional[Serializer]) -> Optional[Serializer]:
    """Return ``serializer`` if it is None or has ``dumps`` and ``loads``.

    Raises:
        TypeError: it has not.
    """
    if serializer is not None and not isinstance(serializer, Serializer):
        raise TypeError(
            f"serializer must have dumps(obj) -> bytes and loads(bytes) -> obj, "
            f"not {type(serializer).__name__}"
        )
    return serializer
