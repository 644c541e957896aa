"""codec= and serializer= are checked the same way by every transport, when it is made."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

import framekit
import framekit.asyncio

CODEC = re.escape("framekit.codecs.interface.Codec")


class NotACodec:
    def encode(self, payload: bytes) -> bytes:  # no decoder(), encode_many, encode_parts
        return payload


class NotASerializer:
    def dumps(self, obj: object) -> bytes:  # no loads()
        return b""


def test_blocking_transports_check_codec_and_serializer() -> None:
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(TypeError, match=CODEC):
            framekit.FramedSocket(a, NotACodec())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="dumps"):
            framekit.FramedSocket(a, serializer=NotASerializer())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=CODEC):
        framekit.serve("tcp://127.0.0.1:0", lambda conn: None, NotACodec())  # type: ignore[arg-type]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
        pytest.raises(TypeError, match=CODEC),
    ):
        framekit.DatagramSocket(s, NotACodec())  # type: ignore[arg-type]


def test_asyncio_transports_check_codec() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match=CODEC):
            await framekit.asyncio.serve(
                "tcp://127.0.0.1:0",
                lambda conn: None,  # type: ignore[arg-type, return-value]
                NotACodec(),  # type: ignore[arg-type]
            )

    asyncio.run(main())
