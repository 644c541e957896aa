"""framekit.serializers.Msgspec: typed messages, validated; a bad one costs that frame only."""

from __future__ import annotations

import sys
from typing import Any, List, Union

import pytest

import framekit
from framekit.serializers import Msgspec

msgspec = pytest.importorskip("msgspec")


class Add(msgspec.Struct, tag=True):
    a: int
    b: int


class Sum(msgspec.Struct, tag=True):
    value: int


Message = Union[Add, Sum]


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_typed_messages_over_a_connection(fmt: str, LP: Any) -> None:
    protocol = {"codec": LP(4), "serializer": Msgspec(Message, format=fmt)}

    def calculator(conn: Any) -> None:
        for request in conn:
            assert isinstance(request, Add)
            conn.send(Sum(request.a + request.b))

    with (
        framekit.serve("tcp://127.0.0.1:0", calculator, **protocol).start() as server,
        framekit.connect(server.address, timeout=5, **protocol) as conn,
    ):
        conn.send(Add(2, 3))
        assert conn.recv() == Sum(5)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_a_bad_message_costs_that_frame_only(fmt: str, LP: Any) -> None:
    raw = msgspec.msgpack if fmt == "msgpack" else msgspec.json
    bad: List[bytes] = [
        raw.encode({"type": "Add", "a": "two", "b": 3}),  # a str where an int must be
        raw.encode({"type": "Product", "value": 6}),  # a type this side does not know
        b"\xc1 not even the format",
    ]

    def server_side(conn: Any) -> None:
        conn.recv()
        for frame in bad:
            conn.send(frame)
        conn.send(raw.encode({"type": "Sum", "value": 5}))

    with framekit.serve("tcp://127.0.0.1:0", server_side, LP(4)).start() as server:
        serializer = Msgspec(Message, format=fmt)
        with framekit.connect(server.address, LP(4), serializer=serializer, timeout=5) as conn:
            conn.send(Add(2, 3))
            for frame in bad:
                with pytest.raises(framekit.SerializationError) as info:
                    conn.recv()
                assert info.value.frame == frame
                assert isinstance(info.value.__cause__, msgspec.DecodeError)
            assert conn.recv() == Sum(5)  # the stream is still in step


def test_validation_message_names_the_field() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int`, got `str` - at `\$.a`"):
        Msgspec(Message).loads(msgspec.msgpack.encode({"type": "Add", "a": "x", "b": 1}))


def test_any_type_and_repr_and_bad_format() -> None:
    plain = Msgspec()
    assert plain.loads(plain.dumps({"x": [1, 2]})) == {"x": [1, 2]}
    assert repr(Msgspec(Add, format="json")) == "framekit.serializers.Msgspec(Add, format='json')"
    with pytest.raises(ValueError, match="format must be"):
        Msgspec(Add, format="yaml")


def test_without_msgspec_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)
    with pytest.raises(ImportError, match=r"pip install 'framekit\[msgspec\]'"):
        Msgspec(Add)
    import framekit.serializers  # the module itself never needed it

    assert framekit.serializers.JSON is not None
