"""One table of bad arguments, run through every public constructor and function of
every transport: the same argument gets the same exception type and message everywhere.

Each entry point takes the arguments its signature has; an argument is tried on
every entry point that takes it.  The arguments are checked when the transport is
made, before any socket is opened (the connect targets are never contacted).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import socket
from typing import Any, Callable, Dict, List, Tuple

import pytest

import framekit
import framekit.anyio as fan
import framekit.asyncio as fa
from framekit.core import options


class NotACodec:
    def encode(self, payload: bytes) -> bytes:  # no decoder(), encode_many, encode_parts
        return payload


class NotASerializer:
    def dumps(self, obj: object) -> bytes:  # no loads()
        return b""


#: (argument, bad value, exception type, the exact message)
BAD: List[Tuple[str, Any, type, str]] = [
    (
        "codec",
        NotACodec(),
        TypeError,
        "codec must implement framekit.Codec (decoder, encode, encode_many, encode_parts), "
        "not NotACodec",
    ),
    (
        "serializer",
        NotASerializer(),
        TypeError,
        "serializer must have dumps(obj) -> bytes and loads(bytes) -> obj, not NotASerializer",
    ),
    ("max_connections", 0, ValueError, "max_connections must be at least 1, got 0"),
    ("max_connections", "10", TypeError, "max_connections must be an int, not str"),
    ("max_connections", True, TypeError, "max_connections must be an int, not bool"),
    ("max_datagram_size", 0, ValueError, "max_datagram_size must be at least 1, got 0"),
    ("max_datagram_size", 1.5, TypeError, "max_datagram_size must be an int, not float"),
    ("max_queued_frames", 0, ValueError, "max_queued_frames must be at least 1, got 0"),
    ("max_buffered_bytes", -5, ValueError, "max_buffered_bytes must be at least 1, got -5"),
    ("max_buffered_bytes", 1e9, TypeError, "max_buffered_bytes must be an int, not float"),
    ("max_queued_bytes", "x", TypeError, "max_queued_bytes must be an int, not str"),
    (
        "idle_timeout",
        0,
        ValueError,
        "idle_timeout must be a positive number of seconds or None, got 0",
    ),
    (
        "idle_timeout",
        "1",
        TypeError,
        "idle_timeout must be a number of seconds or None, not str",
    ),
    (
        "frame_timeout",
        math.inf,
        ValueError,
        "frame_timeout must be a positive number of seconds or None, got inf",
    ),
    (
        "frame_timeout",
        -1.0,
        ValueError,
        "frame_timeout must be a positive number of seconds or None, got -1.0",
    ),
    (
        "handshake_timeout",
        math.nan,
        ValueError,
        "handshake_timeout must be a positive number of seconds or None, got nan",
    ),
]


def _socketpair_stream() -> socket.socket:
    a, b = socket.socketpair()
    b.close()
    return a


def _dgram() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


async def _echo(conn: Any) -> None:  # pragma: no cover - never runs
    pass


def _echo_sync(conn: Any) -> None:  # pragma: no cover - never runs
    pass


#: name -> (callable, positional arguments factory, is it a coroutine function)
ENTRY_POINTS: Dict[str, Tuple[Callable[..., Any], Callable[[], List[Any]]]] = {
    "framekit.connect": (framekit.connect, lambda: ["tcp://127.0.0.1:1"]),
    "framekit.serve": (framekit.serve, lambda: ["tcp://127.0.0.1:0", _echo_sync]),
    "framekit.Server": (framekit.Server, lambda: ["tcp://127.0.0.1:0", _echo_sync]),
    "framekit.FramedSocket": (framekit.FramedSocket, lambda: [_socketpair_stream()]),
    "framekit.DatagramSocket": (framekit.DatagramSocket, lambda: [_dgram()]),
    "framekit.asyncio.connect": (fa.connect, lambda: ["tcp://127.0.0.1:1"]),
    "framekit.asyncio.serve": (fa.serve, lambda: ["tcp://127.0.0.1:0", _echo]),
    "framekit.asyncio.open_datagram": (fa.open_datagram, lambda: ["udp://127.0.0.1:0"]),
    "framekit.asyncio.FramedProtocol": (fa.FramedProtocol, lambda: []),
    "framekit.anyio.connect": (fan.connect, lambda: ["tcp://127.0.0.1:1"]),
    "framekit.anyio.serve": (fan.serve, lambda: ["tcp://127.0.0.1:0", _echo]),
    "framekit.anyio.open_datagram": (fan.open_datagram, lambda: ["udp://127.0.0.1:0"]),
}


def _cases() -> List[Any]:
    cases = []
    for name, (func, _) in ENTRY_POINTS.items():
        params = inspect.signature(func).parameters
        for arg, value, exc_type, message in BAD:
            if arg in params:
                cases.append(
                    pytest.param(name, arg, value, exc_type, message, id=f"{name}-{arg}={value!r}")
                )
    return cases


def _call(name: str, arg: str, value: Any) -> None:
    func, positional = ENTRY_POINTS[name]
    args = positional()
    kwargs = {arg: value}
    if name == "framekit.asyncio.FramedProtocol" and arg != "codec":
        kwargs["codec"] = framekit.LengthPrefixed()
    try:
        if inspect.iscoroutinefunction(func) or name == "framekit.asyncio.FramedProtocol":

            async def main() -> None:
                result = func(*args, **kwargs)
                if inspect.isawaitable(result):
                    await result

            asyncio.run(main())
        else:
            result = func(*args, **kwargs)
            close = getattr(result, "close", None) or getattr(result, "shutdown", None)
            if close is not None:  # pragma: no cover - only if the check failed to raise
                close()
    finally:
        for a in args:
            if isinstance(a, socket.socket):
                a.close()


@pytest.mark.parametrize(("name", "arg", "value", "exc_type", "message"), _cases())
def test_every_entry_point_refuses_the_same_way(
    name: str, arg: str, value: Any, exc_type: type, message: str
) -> None:
    with pytest.raises(exc_type) as info:
        _call(name, arg, value)
    assert type(info.value) is exc_type
    assert str(info.value) == message


def test_every_argument_is_tried_on_every_transport() -> None:
    """The table is not vacuous: each argument that every transport takes is tried on each."""
    tried: Dict[str, set] = {}
    for name, (func, _) in ENTRY_POINTS.items():
        params = inspect.signature(func).parameters
        for arg, *_rest in BAD:
            if arg in params:
                tried.setdefault(arg, set()).add(name.split(".")[1])
    for arg in ("codec", "serializer", "max_connections", "max_datagram_size", "idle_timeout"):
        assert {"asyncio", "connect", "serve"} & tried[arg], arg
        assert "asyncio" in tried[arg], arg
        assert "anyio" in tried[arg], arg
        assert tried[arg] - {"asyncio", "anyio"}, arg


SERVERS = ("framekit.serve", "framekit.Server", "framekit.asyncio.serve", "framekit.anyio.serve")


@pytest.mark.parametrize("role", ["servers", "clients"])
def test_transports_share_their_defaults(role: str) -> None:
    """The same parameter has the same default in every server entry point, and in
    every client one, blocking, asyncio or anyio (clients have no frame_timeout by
    default)."""
    defaults: Dict[str, set] = {}
    for name, (func, _) in ENTRY_POINTS.items():
        if (name in SERVERS) != (role == "servers"):
            continue
        for param in inspect.signature(func).parameters.values():
            if param.default is not inspect.Parameter.empty:
                defaults.setdefault(param.name, set()).add(repr(param.default))
    for name, values in defaults.items():
        assert len(values) == 1, (name, values)
    if role == "servers":
        assert defaults["backlog"] == {repr(options.DEFAULT_BACKLOG)}
        assert defaults["handshake_timeout"] == {repr(options.HANDSHAKE_TIMEOUT)}
        assert defaults["frame_timeout"] == {repr(options.FRAME_TIMEOUT)}
    else:
        assert defaults["frame_timeout"] == {"None"}


@pytest.mark.parametrize("name", SERVERS)
def test_every_server_refuses_a_handler_it_cannot_call(name: str) -> None:
    func, positional = ENTRY_POINTS[name]
    address = positional()[0]
    blocking = name.count(".") == 1
    expected = "callable or a FrameHandler subclass" if blocking else "an async function"

    async def main() -> None:
        await func(address, 42)

    with pytest.raises(TypeError) as info:
        if inspect.iscoroutinefunction(func):
            asyncio.run(main())
        else:
            func(address, 42)
    assert str(info.value) == f"handler must be {expected}, not 42"
