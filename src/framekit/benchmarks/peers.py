"""What users already use to cut a byte stream into messages: msgpack, hiredis, Twisted.

Design notes
------------
Each peer decodes the *equivalent* stream in its own wire format: the same
payloads, cut into feeds of the same size, so a run yields the same frames.

* msgpack's ``Unpacker`` is fed a stream of ``bin`` objects (``packb(payload)``
  back to back) and iterated.
* hiredis' ``Reader`` is fed RESP bulk strings (``$<n>\\r\\n<data>\\r\\n``) and
  drained with ``gets()`` until it returns ``False``.
* Twisted's ``Int32StringReceiver`` gets the very same 4-byte-prefixed chunks
  through ``dataReceived``; ``stringReceived`` keeps or drops each frame.

Peers are iterated in C where their API allows it (``list.extend`` or a
zero-length ``deque`` over the unpacker, ``iter(reader.gets, False)``), so the
Python loop around them costs one step per feed, as it does for framekit.
Twisted calls a Python method per frame by design, and so it pays for one.

Each peer is imported only when a runner is built: they are optional (the
``bench`` extra) and a missing one is skipped with a note.
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable, List, Optional, Tuple

from .harness import ROLE_PEER, Contestant, Runner
from .workloads import DecodeWorkload

__all__ = ["peer_contestants", "resp_stream", "msgpack_stream"]

#: Drops whatever iterable it is given, iterating it in C.
_drop: Callable[[Any], None] = collections.deque(maxlen=0).extend


def msgpack_stream(payloads: List[bytes]) -> bytes:
    """``payloads`` as back-to-back msgpack ``bin`` objects."""
    import msgpack

    return b"".join(map(msgpack.packb, payloads))


def resp_stream(payloads: List[bytes]) -> bytes:
    """``payloads`` as back-to-back RESP bulk strings."""
    return b"".join([b"$%d\r\n%s\r\n" % (len(p), p) for p in payloads])


def _sink(keep: bool) -> Tuple[Optional[List[bytes]], Callable[[Any], None]]:
    """``(frames, extend)``: a list to keep frames in and its ``extend``, or ``(None, drop)``."""
    if keep:
        frames: List[bytes] = []
        return frames, frames.extend
    return None, _drop


def _make_msgpack(w: DecodeWorkload, keep: bool) -> Runner:
    import msgpack

    chunks = w.chunks_of("msgpack", msgpack_stream)
    limit = max(2 * len(w.wire), 1 << 20)
    unpacker_class = msgpack.Unpacker

    def run() -> Optional[List[bytes]]:
        frames, extend = _sink(keep)
        unpacker = unpacker_class(max_buffer_size=limit)
        feed = unpacker.feed
        for chunk in chunks:
            feed(chunk)
            extend(unpacker)
        return frames

    return run


def _make_hiredis(w: DecodeWorkload, keep: bool) -> Runner:
    import hiredis

    chunks = w.chunks_of("resp", resp_stream)
    reader_class = hiredis.Reader

    def run() -> Optional[List[bytes]]:
        frames, extend = _sink(keep)
        reader = reader_class()
        feed = reader.feed
        gets = reader.gets
        for chunk in chunks:
            feed(chunk)
            extend(iter(gets, False))
        return frames

    return run


@functools.cache
def _twisted_receiver() -> Any:
    from twisted.protocols.basic import Int32StringReceiver

    class Receiver(Int32StringReceiver):
        """Drops every frame, as a handler that is done with it would."""

        MAX_LENGTH = 1 << 30

        def stringReceived(self, string: bytes) -> None:
            pass

    return Receiver


def _make_twisted(w: DecodeWorkload, keep: bool) -> Runner:
    receiver_class = _twisted_receiver()
    chunks = w.chunks

    def run() -> Optional[List[bytes]]:
        proto = receiver_class()
        frames: Optional[List[bytes]] = None
        if keep:
            frames = []
            proto.stringReceived = frames.append
        data_received = proto.dataReceived
        for chunk in chunks:
            data_received(chunk)
        return frames

    return run


def peer_contestants() -> List[Contestant]:
    """msgpack, hiredis and Twisted decoders (each skipped when not installed)."""
    return [
        Contestant("msgpack", "msgpack Unpacker", ROLE_PEER, _make_msgpack, needs=("msgpack",)),
        Contestant("hiredis", "hiredis Reader", ROLE_PEER, _make_hiredis, needs=("hiredis",)),
        Contestant(
            "twisted",
            "Twisted Int32StringReceiver",
            ROLE_PEER,
            _make_twisted,
            needs=("twisted.protocols.basic",),
        ),
    ]
