"""A toy transport: what docs/architecture.md says a new transport needs, and nothing more.

It moves bytes between a connected stream socket and a StreamCore, which does
all the framing.  tests/test_transport_matrix.py runs it like the real ones.
"""

from __future__ import annotations

import socket
from typing import Any, Iterator, Optional

from framekit.core import StreamCore
from framekit.core.options import check_serializer, make_codec
from framekit.errors import ConnectionClosed


class ToyConnection:
    """Blocking, one thread, no timeouts: send() and recv() whole messages."""

    def __init__(self, sock: socket.socket, codec: Any = None, *, serializer: Any = None) -> None:
        self.sock = sock
        self.core = StreamCore(make_codec(codec), check_serializer(serializer))

    @property
    def serializer(self) -> Any:
        return self.core.serializer

    @serializer.setter
    def serializer(self, value: Any) -> None:
        self.core.serializer = check_serializer(value)

    def recv(self) -> Any:
        core = self.core
        for message in core.messages:  # a message already decoded: no I/O
            return message
        while not core.next_batch():  # raises queued errors and the end, in order
            self.flush()  # the peer may be waiting for our replies
            n = self.sock.recv_into(core.get_buffer())
            if n:
                core.buffer_updated(n)
            else:
                core.receive_eof()
        for message in core.messages:
            return message
        raise AssertionError("a batch was made current")

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self.recv()
            except ConnectionClosed:
                return

    def send(self, payload: Any, *, prefix: Optional[bytes] = None) -> None:
        self.core.write(payload, prefix)
        if not self.core.coalescing:  # replies to a batch go out together
            self.flush()

    def flush(self) -> None:
        parts = self.core.take_outgoing()
        if parts:
            self.sock.sendall(b"".join(parts))

    def close(self) -> None:
        self.flush()
        self.sock.close()

    def __enter__(self) -> ToyConnection:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
