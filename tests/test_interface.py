"""The codec interface: every codec works through Codec/Decoder alone; the bases derive the rest."""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any, Callable, List

import pytest

import framekit
from framekit import Codec, CodecBase, Decoder, DecoderBase, FrameTooLarge, IncompleteFrame
from framekit.codecs.interface import Buffer


class Upper(CodecBase):
    """A toy framing: a payload, then b"!", written against the bases only."""

    def decoder(self) -> UpperDecoder:
        return UpperDecoder()

    def encode(self, payload: Buffer) -> bytes:
        return bytes(payload).upper() + b"!"


class UpperDecoder(DecoderBase):
    def __init__(self) -> None:
        self.pending = 0  # a plain attribute: DecoderBase must not get in the way
        self._buf = bytearray()

    def feed(self, data: Buffer) -> List[bytes]:
        self._buf += data
        *frames, rest = bytes(self._buf).split(b"!")
        self._buf = bytearray(rest)
        self.pending = len(rest)
        if any(len(f) > 8 for f in frames):
            raise FrameTooLarge("too long", frames=[f for f in frames if len(f) <= 8])
        return frames

    def eof(self) -> None:
        if self.pending:
            raise IncompleteFrame("cut off", pending=self.pending)


def codecs(backend: ModuleType) -> List[Any]:
    return [
        backend.LengthPrefixed(4),
        backend.LengthPrefixed("varint"),
        framekit.Delimited(b"\r\n"),
        framekit.Netstring(),
        Upper(),
    ]


def transport_like(codec: Any, payloads: List[bytes], seed: int) -> List[bytes]:
    """Send and receive the way the transports do: only through the interface."""
    assert isinstance(codec, Codec)
    wire = b"".join(b"".join(map(bytes, codec.encode_parts(p))) for p in payloads)
    assert wire == codec.encode_many(payloads)
    assert wire == b"".join(codec.encode(p) for p in payloads)
    decoder = codec.decoder()
    assert isinstance(decoder, Decoder)
    rng = random.Random(seed)
    frames: List[bytes] = []
    pos = 0
    while pos < len(wire):
        view = decoder.get_buffer(rng.choice([-1, 1, 3]))
        n = min(rng.randint(1, 7), len(view), len(wire) - pos)
        view[:n] = wire[pos : pos + n]
        del view
        frames += decoder.buffer_updated(n)
        pos += n
    assert decoder.pending == 0
    decoder.eof()
    return frames


@pytest.mark.parametrize("seed", range(5))
def test_every_codec_through_the_interface_alone(backend: ModuleType, seed: int) -> None:
    payloads = [b"hello", b"", b"world" * 30, b"x"]
    for codec in codecs(backend):
        if isinstance(codec, Upper):
            sent = [p for p in payloads if len(p) <= 8]
            want = [p.upper() for p in sent]
        else:
            sent = want = payloads
        assert transport_like(codec, sent, seed) == want, codec


def test_length_prefixed_is_a_codec(LP: Callable[..., Any]) -> None:
    codec = LP(2)
    assert isinstance(codec, Codec)
    assert isinstance(codec.decoder(), Decoder)


def test_protocols_reject_what_lacks_the_methods() -> None:
    assert not isinstance(object(), Codec)
    assert not isinstance(b"", Decoder)
    assert not isinstance(Upper(), Decoder)


def test_codec_base_derives_encode_many_and_parts() -> None:
    codec = Upper()
    assert codec.encode_many([b"a", b"b"]) == b"A!B!"
    assert codec.encode_many(iter([])) == b""
    assert codec.encode_parts(b"a") == (b"A!",)


def test_bases_leave_the_essentials_to_subclasses() -> None:
    with pytest.raises(NotImplementedError):
        CodecBase().decoder()
    with pytest.raises(NotImplementedError):
        CodecBase().encode(b"x")
    with pytest.raises(NotImplementedError):
        DecoderBase().feed(b"x")
    with pytest.raises(NotImplementedError):
        DecoderBase().eof()


def test_decoder_base_buffers() -> None:
    decoder = Upper().decoder()
    view = decoder.get_buffer()
    assert len(view) == 64 * 1024
    assert len(decoder.get_buffer(200_000)) == 200_000
    assert len(decoder.get_buffer(10)) >= 10
    with pytest.raises(ValueError, match="offered"):
        decoder.buffer_updated(200_001)
    # Frames survive the reuse of the scratch buffer.
    view = decoder.get_buffer(4)
    view[:4] = b"ab!c"
    first = decoder.buffer_updated(4)
    view[:4] = b"zz!!"
    assert first == [b"ab"]
    assert decoder.buffer_updated(0) == []  # the offer was used up
    with pytest.raises(ValueError):
        decoder.buffer_updated(1)
    view = decoder.get_buffer()
    view[:3] = b"d!e"
    assert decoder.buffer_updated(3) == [b"cd"]
    assert decoder.pending == 1


def test_decoder_base_errors_pass_through_buffer_updated() -> None:
    decoder = Upper().decoder()
    data = b"ok!" + b"x" * 20 + b"!"
    view = decoder.get_buffer(len(data))
    view[: len(data)] = data
    with pytest.raises(FrameTooLarge) as info:
        decoder.buffer_updated(len(data))
    assert info.value.frames == [b"ok"]
    assert decoder.get_buffer(1) is not None  # still usable
    assert decoder.feed(b"y!") == [b"y"]


def test_two_decoders_do_not_share_a_scratch_buffer() -> None:
    a = Upper().decoder()
    b = Upper().decoder()
    va = a.get_buffer(8)
    vb = b.get_buffer(8)
    va[:2] = b"a!"
    vb[:2] = b"b!"
    assert a.buffer_updated(2) == [b"a"]
    assert b.buffer_updated(2) == [b"b"]
