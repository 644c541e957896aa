"""framekit.serializers: objects in, frames out, and clear errors on bad frames."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any, Callable, List

import pytest

import framekit
from framekit import SerializationError, serializers
from framekit.serializers import JSON, Serializer, dumps, loads

OBJECTS = [None, True, 0, -7, 2.5, "", "héllo ✓", [1, [2, {}]], {"a": [1, "b"], "é": None}]


def test_json_round_trip() -> None:
    for obj in OBJECTS:
        frame = dumps(JSON, obj)
        assert type(frame) is bytes
        assert loads(JSON, frame) == obj
    assert dumps(JSON, {"a": [1, 2]}) == b'{"a":[1,2]}'  # compact
    assert dumps(JSON, "é") == '"é"'.encode()  # UTF-8, not \\u escapes
    assert repr(JSON) == "framekit.serializers.JSON"


def test_msgpack_round_trip() -> None:
    pytest.importorskip("msgpack")
    assert serializers.MSGPACK is not None
    msgpack = serializers.MSGPACK
    for obj in [*OBJECTS, b"\x00raw bytes", {"nested": [b"x", 1.5]}]:
        assert loads(msgpack, dumps(msgpack, obj)) == obj
    assert loads(msgpack, dumps(msgpack, "text")) == "text"  # str stays str
    assert repr(msgpack) == "framekit.serializers.MSGPACK"


def test_msgpack_is_optional() -> None:
    """Without msgpack installed, MSGPACK is None and the module still imports."""
    spec = importlib.util.find_spec("framekit.serializers")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("msgpack")
    sys.modules["msgpack"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["msgpack"]
        else:
            sys.modules["msgpack"] = saved
    assert module.MSGPACK is None
    assert module.loads(module.JSON, b"[1]") == [1]


@pytest.mark.parametrize(
    "frame",
    [b"{not json", b"", b"\xff\xfe\xfa", b"[1] [2]", b"[" * 100_000 + b"]" * 100_000],
    ids=["syntax", "empty", "not-utf8", "trailing", "too-deep"],
)
def test_bad_frame_raises_serialization_error_with_the_frame(frame: bytes) -> None:
    with pytest.raises(SerializationError) as info:
        loads(JSON, frame)
    assert info.value.frame is frame
    assert info.value.__cause__ is not None
    assert len(str(info.value)) < 400  # the frame is quoted, but only its start


def test_bad_msgpack_frame() -> None:
    pytest.importorskip("msgpack")
    assert serializers.MSGPACK is not None
    with pytest.raises(SerializationError) as info:
        loads(serializers.MSGPACK, b"\xc1")  # a byte msgpack never uses
    assert info.value.frame == b"\xc1"


def test_unserializable_object() -> None:
    with pytest.raises(SerializationError, match="cannot serialize set") as info:
        dumps(JSON, {1, 2})
    assert info.value.frame is None
    with pytest.raises(SerializationError):
        dumps(JSON, "\ud800")  # a lone surrogate is not UTF-8


class Text:
    """A user's serializer: any object with dumps and loads will do."""

    def dumps(self, obj: Any) -> Any:
        return obj

    def loads(self, data: bytes) -> Any:
        return data.decode("ascii")


def test_any_object_with_dumps_and_loads_is_a_serializer() -> None:
    assert isinstance(Text(), Serializer)
    assert isinstance(JSON, Serializer)
    assert not isinstance(object(), Serializer)
    assert loads(Text(), b"abc") == "abc"
    assert dumps(Text(), bytearray(b"ba")) == b"ba"
    assert type(dumps(Text(), bytearray(b"ba"))) is bytes
    with pytest.raises(SerializationError, match="returned str, not bytes"):
        dumps(Text(), "not bytes")


def test_no_pickle_ships() -> None:
    assert not hasattr(serializers, "PICKLE")
    assert "pickle" not in vars(serializers)
    assert sorted(serializers.__all__) == sorted(
        ["JSON", "MSGPACK", "JSONSerializer", "Msgspec", "Serializer", "dumps", "loads"]
    )
    assert framekit.serializers is serializers


def codecs() -> List[Callable[[], Any]]:
    return [
        lambda: framekit.LengthPrefixed(4),
        lambda: framekit.Delimited(),
        lambda: framekit.Netstring(),
    ]


@pytest.mark.parametrize("make", codecs(), ids=["length", "lines", "netstring"])
def test_bad_frame_then_good_frames(make: Callable[[], Any]) -> None:
    """A frame that does not deserialize costs that frame only."""
    codec = make()
    bad = b"{oops"
    wire = codec.encode_many([dumps(JSON, {"n": 1}), bad, dumps(JSON, {"n": 2})])
    received: List[Any] = []
    errors: List[SerializationError] = []
    for frame in codec.decoder().feed(wire):
        try:
            received.append(loads(JSON, frame))
        except SerializationError as exc:
            errors.append(exc)
    assert received == [{"n": 1}, {"n": 2}]
    assert [e.frame for e in errors] == [bad]


def test_module_is_the_one_exported() -> None:
    assert isinstance(serializers, ModuleType)
    assert "serializers" in framekit.__all__
