"""Serializers: objects in, frames out, and back.

Design notes
------------
A serializer is any object with ``dumps(obj) -> bytes`` and
``loads(frame) -> obj``.  Transports that take ``serializer=`` call
:func:`dumps` and :func:`loads` below, which turn any failure into a
:class:`framekit.SerializationError` carrying the raw frame, so a frame that
does not deserialize never kills a connection: the caller gets a clear error
and the next ``recv()`` reads the next frame.

Nothing here unpickles: pickle executes code chosen by whoever wrote the bytes,
so no pickle serializer ships.  Bring your own if both ends trust each other.

:class:`Msgspec` (the optional ``msgspec`` extra) adds typed messages:
``Msgspec(Union[Add, Sum])`` decodes each frame straight into those types
(``msgspec.Struct`` classes, dataclasses, TypedDicts...) and validates it on
the way: a frame of the wrong shape raises :class:`framekit.SerializationError`
like any other bad frame, and costs that frame only.  msgspec is imported
when a ``Msgspec`` is made, never with this module.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Protocol, runtime_checkable

from .errors import SerializationError

__all__ = ["JSON", "MSGPACK", "JSONSerializer", "Msgspec", "Serializer", "dumps", "loads"]


@runtime_checkable
class Serializer(Protocol):
    """What ``serializer=`` accepts: any object with these two methods.

    Either may raise any ``Exception`` on bad input; :func:`dumps` and
    :func:`loads` turn it into :class:`framekit.SerializationError`.
    """

    def dumps(self, obj: Any) -> bytes:
        """Return the payload bytes for ``obj``."""
        ...

    def loads(self, data: bytes) -> Any:
        """Return the object a payload holds."""
        ...


class JSONSerializer:
    """UTF-8 JSON, compact separators."""

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data)

    def __repr__(self) -> str:
        return "framekit.serializers.JSON"


class _MsgpackSerializer:
    """msgpack with str and bytes kept apart (``use_bin_type``/``raw=False``)."""

    def __init__(self, msgpack: Any) -> None:
        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def dumps(self, obj: Any) -> bytes:
        return self._packb(obj, use_bin_type=True)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        return self._unpackb(data, raw=False)

    def __repr__(self) -> str:
        return "framekit.serializers.MSGPACK"


class Msgspec:
    """Typed, validated messages with msgspec, as MessagePack (default) or JSON.

    Args:
        type: what every frame must decode to: a ``msgspec.Struct`` class, a
            ``Union`` of tagged Structs (``Struct, tag=True``), a dataclass, a
            TypedDict, ``list[int]``...; ``Any`` (the default) accepts anything
            the format can carry, without validation.
        format: ``"msgpack"`` or ``"json"``.

    ``loads`` raises ``msgspec.ValidationError`` (or ``DecodeError``) for a
    frame that is not a valid ``type``; the transports turn that into
    :class:`framekit.SerializationError`, which carries the frame, and the
    connection goes on.  ``dumps`` encodes any supported object (msgspec does
    not check it against ``type``: validation is on the receiving side).

    Raises:
        ImportError: msgspec is not installed (``pip install 'framekit[msgspec]'``).
        ValueError: an unknown ``format``.
    """

    def __init__(self, type: Any = Any, *, format: str = "msgpack") -> None:
        try:
            import msgspec
        except ImportError:
            raise ImportError(
                "framekit.serializers.Msgspec needs msgspec: pip install 'framekit[msgspec]'"
            ) from None
        if format == "msgpack":
            module: Any = msgspec.msgpack
        elif format == "json":
            module = msgspec.json
        else:
            raise ValueError(f"format must be 'msgpack' or 'json', not {format!r}")
        self.type = type
        self.format = format
        self._encode = module.Encoder().encode
        self._decode = module.Decoder(type).decode

    def dumps(self, obj: Any) -> bytes:
        return self._encode(obj)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        return self._decode(data)

    def __repr__(self) -> str:
        name = getattr(self.type, "__name__", None) or repr(self.type)
        return f"framekit.serializers.Msgspec({name}, format={self.format!r})"


JSON = JSONSerializer()

MSGPACK: Optional[Serializer]
try:
    import msgpack as _msgpack
except ImportError:  # msgpack is an optional extra: pip install framekit[msgpack]
    MSGPACK = None
else:
    MSGPACK = _MsgpackSerializer(_msgpack)


def dumps(serializer: Serializer, obj: Any) -> bytes:
    """Serialize ``obj`` for sending.

    Returns:
        ``serializer.dumps(obj)``, as ``bytes``.

    Raises:
        SerializationError: ``dumps`` failed or did not return bytes
            (``.frame`` is ``None``; the original error is the ``__cause__``).
    """
    try:
        data = serializer.dumps(obj)
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {type(obj).__name__} with {serializer!r}: {exc}"
        ) from exc
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"{serializer!r}.dumps returned {type(data).__name__}, not bytes")
    return bytes(data) if not isinstance(data, bytes) else data


def loads(serializer: Serializer, frame: bytes) -> Any:
    """Deserialize a received frame.

    Returns:
        ``serializer.loads(frame)``.

    Raises:
        SerializationError: ``loads`` failed; ``.frame`` is the raw frame and
            the original error is the ``__cause__``.  Only this frame is lost:
            the stream is still in step and the next frame can be read.
    """
    try:
        return serializer.loads(frame)
    except Exception as exc:
        shown = frame[:40] + (b"..." if len(frame) > 40 else b"")
        raise SerializationError(
            f"cannot deserialize a {len(frame)}-byte frame with {serializer!r}: {exc} "
            f"(frame starts {shown!r})",
            frame=frame,
        ) from exc
