"""A tiny RPC over a custom protocol: typed messages.

A message on the wire is one type byte, a 4-byte big-endian length, then the
body, JSON (or msgpack, if installed)::

    Q {"id": 1, "method": "add", "params": [2, 3]}     a request
    R {"id": 1, "result": 5}                           its result
    E {"id": 1, "error": "no method 'pow'"}            or its error

    python examples/rpc.py serve tcp://127.0.0.1:5003 [--msgpack]
    python examples/rpc.py call tcp://127.0.0.1:5003 add 2 3 [--msgpack]

The framing is Netty's ``lengthFieldOffset=1``: ``framekit.LengthPrefixed(4,
length_offset=1, strip=0)`` reads ``[type][length][body]``.  Two small pieces
make messages of it: ``Typed``, a codec whose message is the type byte
followed by the body (so the type byte goes before the length on the wire),
and ``Bodies``, a serializer that turns ``(type, object)`` into that message.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import framekit
from framekit.serializers import JSON, MSGPACK, Serializer

REQUEST, RESULT, ERROR = b"Q", b"R", b"E"


class Typed(framekit.CodecBase):
    """``[type: 1 byte][length: 4 bytes][body]`` on the wire; type + body as a message."""

    def __init__(self) -> None:
        self.frames = framekit.LengthPrefixed(4, length_offset=1, strip=0)

    def encode(self, message: Any) -> bytes:
        message = bytes(message)
        return self.frames.encode(message[1:], prefix=message[:1])

    def decoder(self) -> framekit.Decoder:
        return TypedDecoder(self.frames.decoder())


class TypedDecoder(framekit.DecoderBase):
    def __init__(self, frames: framekit.Decoder) -> None:
        self.frames = frames

    @property
    def pending(self) -> int:
        return self.frames.pending

    def feed(self, data: Any) -> List[bytes]:
        return [frame[:1] + frame[5:] for frame in self.frames.feed(data)]  # drop the length

    def eof(self) -> None:
        self.frames.eof()


class Bodies:
    """A serializer: ``(type, object)`` <-> type byte + encoded body."""

    def __init__(self, body: Serializer) -> None:
        self.body = body

    def dumps(self, message: Tuple[bytes, Any]) -> bytes:
        kind, obj = message
        return kind + self.body.dumps(obj)

    def loads(self, data: bytes) -> Tuple[bytes, Any]:
        return data[:1], self.body.loads(data[1:])


def protocol(use_msgpack: bool = False) -> Dict[str, Any]:
    """The ``codec`` and ``serializer`` both ends pass to connect/serve."""
    if use_msgpack and MSGPACK is None:
        sys.exit("msgpack is not installed: pip install msgpack")
    body = MSGPACK if use_msgpack and MSGPACK is not None else JSON
    return {"codec": Typed(), "serializer": Bodies(body)}


METHODS: Dict[str, Callable[..., Any]] = {
    "add": lambda *numbers: sum(numbers),
    "upper": str.upper,
}


class Service(framekit.FrameHandler):
    """Answers each request with a result or an error, in one frame."""

    def handle_frame(self, message: Tuple[bytes, Any]) -> Tuple[bytes, Any]:
        kind, request = message
        call_id = request.get("id") if isinstance(request, dict) else None
        try:
            if kind != REQUEST:
                raise ValueError(f"expected a request, got type {kind!r}")
            method = METHODS.get(request["method"])
            if method is None:
                raise ValueError(f"no method {request['method']!r}")
            return RESULT, {"id": call_id, "result": method(*request["params"])}
        except Exception as exc:  # the caller gets the error; the server goes on
            return ERROR, {"id": call_id, "error": str(exc)}


class RemoteError(Exception):
    """The server answered with an error."""


def call(conn: framekit.FramedSocket, call_id: int, method: str, *params: Any) -> Any:
    """Call ``method(*params)`` on the server and return its result."""
    conn.send((REQUEST, {"id": call_id, "method": method, "params": list(params)}))
    kind, reply = conn.recv()
    if kind == ERROR:
        raise RemoteError(reply["error"])
    return reply["result"]


def main(argv: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    use_msgpack = "--msgpack" in args
    args = [a for a in args if a != "--msgpack"]
    if args[:1] == ["serve"] and len(args) == 2:
        with framekit.serve(args[1], Service, **protocol(use_msgpack)) as server:
            print(f"listening on {server.address}", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
    elif args[:1] == ["call"] and len(args) >= 3:
        params = [int(p) if p.lstrip("-").isdigit() else p for p in args[3:]]
        with framekit.connect(args[1], timeout=5, **protocol(use_msgpack)) as conn:
            try:
                print(call(conn, 1, args[2], *params))
            except TimeoutError:  # a server that could not read our body skips it
                raise RemoteError(
                    "no answer within 5 s: do both ends use the same body format "
                    "(--msgpack on both, or on neither)?"
                ) from None
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, framekit.FramingError, framekit.SerializationError, RemoteError) as exc:
        # An ordinary mistake (a closed port, an address in use, a remote error, the
        # other end speaking another format) gets one line, not a traceback.
        sys.exit(f"error: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
