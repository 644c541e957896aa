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
  through ``dataReceived``; ``stringReceived`` keeps or counts each frame.
  Its ``LineReceiver`` (``delimiter = b"\\n"``) decodes the newline-terminated
  stream of the ``Lines`` scenarios the same way, a ``lineReceived`` per line.

In "stream" mode a run drops every frame but returns how many there were, and
the harness checks that count after every timed run (framekit's runner does
the same with ``len()`` of each feed's list).  Peers are iterated in C where
their API allows it (``list.extend`` over the unpacker, or, to count, a
zero-length ``deque`` over ``zip(frames, itertools.count())``;
``iter(reader.gets, False)``), so the Python loop around them costs one step
per feed, as it does for framekit.  Twisted calls a Python method per frame by
design, and so it pays for one.

Each peer is imported only when a runner is built: they are optional (the
``bench`` extra) and a missing one is skipped with a note.
"""

from __future__ import annotations

import collections
import functools
import itertools
from typing import Any, Callable, List, Optional

from .harness import ROLE_PEER, Contestant, Runner
from .workloads import DecodeWorkload

__all__ = ["line_receiver_contestant", "peer_contestants", "resp_stream", "msgpack_stream"]

#: Drops whatever iterable it is given, iterating it in C.
_drop: Callable[[Any], None] = collections.deque(maxlen=0).extend


def msgpack_stream(payloads: List[bytes]) -> bytes:
    """``payloads`` as back-to-back msgpack ``bin`` objects."""
    import msgpack

    return b"".join(map(msgpack.packb, payloads))


def resp_stream(payloads: List[bytes]) -> bytes:
    """``payloads`` as back-to-back RESP bulk strings."""
    return b"".join([b"$%d\r\n%s\r\n" % (len(p), p) for p in payloads])


class _Sink:
    """Where a run's frames go: kept in :attr:`frames`, or dropped and counted.

    ``sink.extend(iterable)`` consumes the frames in C either way; ``output()``
    is what the run returns: the frames, or their count.
    """

    def __init__(self, keep: bool) -> None:
        self.frames: Optional[List[bytes]] = [] if keep else None
        self._counter = itertools.count()
        if self.frames is not None:
            self.extend: Callable[[Any], None] = self.frames.extend
        else:
            counter = self._counter
            self.extend = lambda frames: _drop(zip(frames, counter))

    def output(self) -> Any:
        if self.frames is not None:
            return self.frames
        # zip() takes a frame before a number, so the next number is the count.
        return next(self._counter)


def _make_msgpack(w: DecodeWorkload, keep: bool) -> Runner:
    import msgpack

    chunks = w.chunks_of("msgpack", msgpack_stream)
    limit = max(2 * len(w.wire), 1 << 20)
    unpacker_class = msgpack.Unpacker

    def run() -> Any:
        sink = _Sink(keep)
        extend = sink.extend
        unpacker = unpacker_class(max_buffer_size=limit)
        feed = unpacker.feed
        for chunk in chunks:
            feed(chunk)
            extend(unpacker)
        return sink.output()

    return run


def _make_hiredis(w: DecodeWorkload, keep: bool) -> Runner:
    import hiredis

    chunks = w.chunks_of("resp", resp_stream)
    reader_class = hiredis.Reader

    def run() -> Any:
        sink = _Sink(keep)
        extend = sink.extend
        reader = reader_class()
        feed = reader.feed
        gets = reader.gets
        for chunk in chunks:
            feed(chunk)
            extend(iter(gets, False))
        return sink.output()

    return run


@functools.cache
def _twisted_receiver() -> Any:
    from twisted.protocols.basic import Int32StringReceiver

    class Receiver(Int32StringReceiver):
        """Drops every frame, as a handler that is done with it would, counting them."""

        MAX_LENGTH = 1 << 30
        count = 0

        def stringReceived(self, string: bytes) -> None:
            self.count += 1

    return Receiver


def _make_twisted(w: DecodeWorkload, keep: bool) -> Runner:
    receiver_class = _twisted_receiver()
    chunks = w.chunks

    def run() -> Any:
        proto = receiver_class()
        frames: Optional[List[bytes]] = None
        if keep:
            frames = []
            proto.stringReceived = frames.append
        data_received = proto.dataReceived
        for chunk in chunks:
            data_received(chunk)
        return proto.count if frames is None else frames

    return run


@functools.cache
def _line_receiver() -> Any:
    from twisted.protocols.basic import LineReceiver

    class Receiver(LineReceiver):
        """Drops every line, as a handler that is done with it would, counting them."""

        delimiter = b"\n"
        MAX_LENGTH = 1 << 30
        count = 0

        def lineReceived(self, line: bytes) -> None:
            self.count += 1

    return Receiver


def _make_line_receiver(w: DecodeWorkload, keep: bool) -> Runner:
    receiver_class = _line_receiver()
    chunks = w.chunks

    def run() -> Any:
        proto = receiver_class()
        frames: Optional[List[bytes]] = None
        if keep:
            frames = []
            proto.lineReceived = frames.append
        data_received = proto.dataReceived
        for chunk in chunks:
            data_received(chunk)
        return proto.count if frames is None else frames

    return run


def line_receiver_contestant() -> Contestant:
    """Twisted's ``LineReceiver`` on a newline-terminated stream (skipped when not installed)."""
    return Contestant(
        "twisted",
        "Twisted LineReceiver",
        ROLE_PEER,
        _make_line_receiver,
        needs=("twisted.protocols.basic",),
    )


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
