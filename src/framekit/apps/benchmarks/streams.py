"""Frames too large to hold, end to end: one huge frame received as a stream, a file sent as one.

Design notes
------------
Two comparisons over a loopback socket, each a single frame of ``1 GiB x scale``
(the comparison is named by the nominal size; the rows' MB/s count what was sent),
with the sender process of :mod:`.sender` on the other end:

* **Receiving** (:class:`StreamWorkload`): the sender process sends the frame,
  made as it goes; the contestant connects and reads it to its end.
  framekit's ``recv_stream()`` iterated (blocking; asyncio on the default loop
  and on uvloop), the blocking stream's ``readinto()`` into one 256 KiB buffer,
  and ``recv_into()`` of the whole frame into a buffer allocated (and touched)
  beforehand, on both transports; against raw ``recv_into`` of the same bytes
  into one 256 KiB buffer (the floor, as in the end-to-end rows), raw
  ``recv_into`` into the same frame-sized buffer (the best ``recv_into`` can
  do: the same cold memory), and asyncio's own ``BufferedProtocol`` without
  framing on both loops.
* **Sending a file** (:class:`SendFileWorkload`): the contestant sends a file
  (written once per session, in the page cache) as one frame, and the sender
  process drains it as fast as ``recv_into`` goes.  framekit's ``send_file()``
  (blocking; asyncio on both loops) against the loop people write, ``f.read()``
  of 256 KiB then ``sendall`` (blocking), or ``StreamWriter.write`` and
  ``drain()`` (asyncio, both loops), and the floor: a hand-made header, then
  ``socket.sendfile`` of the file, no framing library at all.

Every run returns a :class:`Received`: how many payload bytes came through,
and in the check run (before anything is timed) their sha256, which must equal
that of the payload (and, for a file sent, the 4 header bytes the drain saw).
The timed runs compare the byte count only: hashing 1 GiB would cost more than
moving it.  The timer covers the connect and the whole transfer (for a
sender, until the drain answers, which it does once the sender has shut its
side down and every byte is in).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import shutil
import socket
import struct
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from ...addresses import parse_address
from .harness import ROLE_FLOOR, ROLE_FRAMEKIT, ROLE_PEER, Contestant, Session
from .receivers import RAW, CountingProtocol, _AsyncRun, _connect, _new_loop, _Run
from .sender import Sender
from .workloads import stream_chunks, stream_digest

__all__ = [
    "BIG_FRAME",
    "RAW",
    "RAW_SENDFILE",
    "Received",
    "SendFileWorkload",
    "StreamData",
    "StreamWorkload",
    "send_file_contestants",
    "stream_contestants",
]

#: The nominal size of the frame, before the session's scale.
BIG_FRAME = 1 << 30
#: The floor of the file senders: a header, then ``socket.sendfile``.
RAW_SENDFILE = "raw-sendfile"
#: Bytes per read of the raw floors and of the loops that read a file.
CHUNK = 256 * 1024
_HEADER = struct.Struct(">I")


@dataclass(frozen=True)
class Received:
    """What came through a run.

    Attributes:
        nbytes: payload bytes (the header not counted).
        sha256: their sha256 in hex (check runs), or None (timed runs: counted only).
        head: the bytes before the payload, in hex, when the receiver saw them raw.
    """

    nbytes: int
    sha256: Optional[str] = None
    head: Optional[str] = None


class StreamData:
    """The session's payloads of each length: their sha256, and files holding them.

    A session resource (:meth:`close` removes the files).
    """

    def __init__(self) -> None:
        self._digests: Dict[int, str] = {}
        self._files: Dict[int, str] = {}
        self._dir: Optional[str] = None

    def digest(self, length: int) -> str:
        """The sha256 (hex) of the ``length``-byte payload (computed once)."""
        if length not in self._digests:
            self._digests[length] = stream_digest(length)
        return self._digests[length]

    def file(self, length: int) -> str:
        """The path of a file holding the ``length``-byte payload (written once)."""
        path = self._files.get(length)
        if path is None:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="fkb-file-")
            path = os.path.join(self._dir, f"payload-{length}")
            digest = hashlib.sha256()
            with open(path, "wb") as f:
                for chunk in stream_chunks(length):
                    f.write(chunk)
                    digest.update(chunk)
            self._digests[length] = digest.hexdigest()
            self._files[length] = path
        return path

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._files.clear()


class _BigFrame:
    """What both workloads share: one frame of ``length`` bytes over ``transport``."""

    frames = 1

    def __init__(self, session: Session, transport: str, length: int) -> None:
        self.sender = session.resource("sender", Sender)
        self.data = session.resource("stream-data", StreamData)
        self.transport = transport
        self.address = self.sender.addresses[transport]
        self.length = length
        self.payload_bytes = length
        self.header = _HEADER.pack(length)
        #: For framekit's connections: ``max_stream_size`` counts the header too.
        self.max_stream_size = length + _HEADER.size
        self.sha256 = ""

    def verify(self, output: Any) -> Optional[str]:
        """Check a run's :class:`Received`: the byte count, and the sha256 and header if given.

        Returns:
            ``None`` if right, else what is wrong.
        """
        if not isinstance(output, Received):
            return f"unexpected output {type(output).__name__}: a run must return Received"
        if output.nbytes != self.length:
            return f"{output.nbytes} payload bytes instead of {self.length}"
        if output.sha256 is not None and output.sha256 != self.sha256:
            return "the payload's sha256 differs"
        if output.head is not None and output.head != self.header.hex():
            return f"the header was {output.head}, not {self.header.hex()}"
        return None


class StreamWorkload(_BigFrame):
    """One ``length``-byte frame sent by the sender process, for a receiver to read."""

    def __init__(self, session: Session, transport: str, length: int) -> None:
        super().__init__(session, transport, length)
        self.sha256 = self.data.digest(length)
        self._buffer: Optional[bytearray] = None

    def arm(self) -> None:
        """Have the sender send the frame to the next connection."""
        self.sender.arm_stream(self.transport, self.length)

    def frame_buffer(self) -> bytearray:
        """A buffer for the whole frame, header included, allocated (and zeroed) once."""
        if self._buffer is None:
            self._buffer = bytearray(self.length + _HEADER.size)
        return self._buffer


class SendFileWorkload(_BigFrame):
    """A ``length``-byte file, for a sender to send as one frame to the draining sender process."""

    def __init__(self, session: Session, transport: str, length: int) -> None:
        super().__init__(session, transport, length)
        self.path = self.data.file(length)
        self.sha256 = self.data.digest(length)


class _Drained:
    """A send-file run's view of the workload: arming means "drain the next connection"."""

    def __init__(self, w: SendFileWorkload, keep: bool) -> None:
        self.sender = w.sender
        self.address = w.address
        self._w = w
        self._keep = keep

    def arm(self) -> None:
        self.sender.arm_drain(self._w.transport, _HEADER.size, self._keep)


def _received(nbytes: int, digest: Any) -> Received:
    return Received(nbytes, None if digest is None else digest.hexdigest())


def _codec() -> Any:
    return importlib.import_module("framekit._speedups").LengthPrefixed(4)


# --- receiving one big frame ------------------------------------------------------


def _make_stream_blocking(readinto: bool) -> Callable[[StreamWorkload, bool], _Run]:
    def make(w: StreamWorkload, keep: bool) -> _Run:
        import framekit

        codec = _codec()

        def receive() -> Received:
            digest = hashlib.sha256() if keep else None
            total = 0
            conn = framekit.connect(w.address, codec, max_stream_size=w.max_stream_size)
            assert isinstance(conn, framekit.FramedSocket)
            with conn, conn.recv_stream() as stream:
                if readinto:
                    buffer = bytearray(CHUNK)
                    view = memoryview(buffer)
                    while True:
                        n = stream.readinto(buffer)
                        if not n:
                            break
                        total += n
                        if digest is not None:
                            digest.update(view[:n])
                else:
                    for chunk in stream:
                        total += len(chunk)
                        if digest is not None:
                            digest.update(chunk)
            return _received(total, digest)

        return _Run(w, receive)

    return make


def _make_recv_into_blocking(w: StreamWorkload, keep: bool) -> _Run:
    import framekit

    codec = _codec()
    buffer = w.frame_buffer()

    def receive() -> Received:
        conn = framekit.connect(w.address, codec, max_stream_size=w.max_stream_size)
        assert isinstance(conn, framekit.FramedSocket)
        with conn:
            n = conn.recv_into(buffer)
        return _received(n, hashlib.sha256(memoryview(buffer)[:n]) if keep else None)

    return _Run(w, receive)


def _make_stream_asyncio(
    loop_kind: str, readinto: bool = False
) -> Callable[[StreamWorkload, bool], _Run]:
    def make(w: StreamWorkload, keep: bool) -> _Run:
        fk_asyncio = importlib.import_module("framekit.asyncio")
        codec = _codec()

        async def receive() -> Received:
            digest = hashlib.sha256() if keep else None
            total = 0
            conn = await fk_asyncio.connect(w.address, codec, max_stream_size=w.max_stream_size)
            try:
                async with await conn.recv_stream() as stream:
                    if readinto:
                        buffer = bytearray(CHUNK)
                        view = memoryview(buffer)
                        while True:
                            n = await stream.readinto(buffer)
                            if not n:
                                break
                            total += n
                            if digest is not None:
                                digest.update(view[:n])
                    else:
                        async for chunk in stream:
                            total += len(chunk)
                            if digest is not None:
                                digest.update(chunk)
            finally:
                await conn.close()
            return _received(total, digest)

        return _AsyncRun(w, _new_loop(loop_kind), receive)

    return make


def _make_recv_into_asyncio(loop_kind: str) -> Callable[[StreamWorkload, bool], _Run]:
    def make(w: StreamWorkload, keep: bool) -> _Run:
        fk_asyncio = importlib.import_module("framekit.asyncio")
        codec = _codec()
        buffer = w.frame_buffer()

        async def receive() -> Received:
            conn = await fk_asyncio.connect(w.address, codec, max_stream_size=w.max_stream_size)
            try:
                n: int = await conn.recv_into(buffer)
            finally:
                await conn.close()
            return _received(n, hashlib.sha256(memoryview(buffer)[:n]) if keep else None)

        return _AsyncRun(w, _new_loop(loop_kind), receive)

    return make


def _make_raw(w: StreamWorkload, keep: bool) -> _Run:
    """Raw ``recv_into`` of the frame's bytes into one reused buffer: the floor."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)

    def receive() -> Received:
        digest = hashlib.sha256() if keep else None
        total = 0
        with _connect(w) as sock:
            recv_into = sock.recv_into
            if digest is None:
                while True:
                    n = recv_into(buffer)
                    if not n:
                        break
                    total += n
            else:  # the check run: hash the payload as it comes (the header is not hashed)
                while True:
                    n = recv_into(buffer)
                    if not n:
                        break
                    digest.update(view[max(0, _HEADER.size - total) : n])
                    total += n
        return _received(total - _HEADER.size, digest)

    return _Run(w, receive)


def _make_raw_whole(w: StreamWorkload, keep: bool) -> _Run:
    """Raw ``recv_into`` of the frame's bytes into the frame-sized buffer, in place."""
    buffer = w.frame_buffer()

    def receive() -> Received:
        view = memoryview(buffer)
        size = len(view)
        total = 0
        with _connect(w) as sock:
            recv_into = sock.recv_into
            while total < size:
                n = recv_into(view[total:])
                if not n:
                    break
                total += n
        digest = hashlib.sha256(view[_HEADER.size : total]) if keep else None
        return _received(total - _HEADER.size, digest)

    return _Run(w, receive)


class _RawProtocol(CountingProtocol):
    """asyncio's zero-copy receive path without framing: counts (and in a check, hashes)."""

    def __init__(self, done: asyncio.Future[int], keep: bool) -> None:
        super().__init__(done)
        self.buffer = bytearray(CHUNK)
        self.view = memoryview(self.buffer)
        self.digest = hashlib.sha256() if keep else None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        if self.digest is not None:
            self.digest.update(self.view[max(0, _HEADER.size - self.total) : nbytes])
        self.total += nbytes


def _make_raw_asyncio(loop_kind: str) -> Callable[[StreamWorkload, bool], _Run]:
    def make(w: StreamWorkload, keep: bool) -> _Run:
        async def receive() -> Received:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[int] = loop.create_future()
            transport, protocol = await _create_connection(w.address, _RawProtocol(done, keep))
            try:
                total = await done
            finally:
                transport.close()
            return _received(total - _HEADER.size, protocol.digest)

        return _AsyncRun(w, _new_loop(loop_kind), receive)

    return make


async def _create_connection(address: str, protocol: _RawProtocol) -> Any:
    loop = asyncio.get_running_loop()
    addr = parse_address(address)
    if addr.is_unix:
        return await loop.create_unix_connection(lambda: protocol, addr.path)
    assert addr.host is not None and addr.port is not None
    return await loop.create_connection(lambda: protocol, addr.host, addr.port)


def stream_contestants() -> List[Contestant]:
    """Every receiver of one big frame (those whose modules are missing are skipped)."""
    fk_async = ("framekit.asyncio:connect", "framekit._speedups")
    return [
        Contestant(
            "blocking",
            "framekit blocking recv_stream",
            ROLE_FRAMEKIT,
            _make_stream_blocking(readinto=False),
            needs=("framekit:connect", "framekit._speedups"),
        ),
        Contestant(
            "blocking-readinto",
            "framekit blocking recv_stream, readinto",
            ROLE_FRAMEKIT,
            _make_stream_blocking(readinto=True),
            needs=("framekit:connect", "framekit._speedups"),
        ),
        Contestant(
            "asyncio",
            "framekit asyncio recv_stream",
            ROLE_FRAMEKIT,
            _make_stream_asyncio("asyncio"),
            needs=fk_async,
        ),
        Contestant(
            "asyncio-uvloop",
            "framekit asyncio recv_stream (uvloop)",
            ROLE_FRAMEKIT,
            _make_stream_asyncio("uvloop"),
            needs=(*fk_async, "uvloop"),
        ),
        Contestant(
            "asyncio-readinto",
            "framekit asyncio recv_stream, readinto",
            ROLE_FRAMEKIT,
            _make_stream_asyncio("asyncio", readinto=True),
            needs=fk_async,
        ),
        Contestant(
            "asyncio-readinto-uvloop",
            "framekit asyncio recv_stream, readinto (uvloop)",
            ROLE_FRAMEKIT,
            _make_stream_asyncio("uvloop", readinto=True),
            needs=(*fk_async, "uvloop"),
        ),
        Contestant(
            "recv-into",
            "framekit blocking recv_into, whole frame",
            ROLE_FRAMEKIT,
            _make_recv_into_blocking,
            needs=("framekit:connect", "framekit._speedups"),
        ),
        Contestant(
            "recv-into-asyncio",
            "framekit asyncio recv_into, whole frame",
            ROLE_FRAMEKIT,
            _make_recv_into_asyncio("asyncio"),
            needs=fk_async,
        ),
        Contestant(
            "raw-asyncio",
            "raw asyncio BufferedProtocol (no framing)",
            ROLE_PEER,
            _make_raw_asyncio("asyncio"),
        ),
        Contestant(
            "raw-asyncio-uvloop",
            "raw asyncio BufferedProtocol (uvloop)",
            ROLE_PEER,
            _make_raw_asyncio("uvloop"),
            needs=("uvloop",),
        ),
        Contestant(
            "raw-recv-into-whole",
            "raw recv_into, whole frame (no framing)",
            ROLE_FLOOR,
            _make_raw_whole,
        ),
        Contestant(RAW, "raw recv_into (no framing)", ROLE_FLOOR, _make_raw),
    ]


# --- sending a file as one frame ------------------------------------------------------


def _answer(data: bytes) -> Received:
    """The drain's answer (a JSON payload) as a :class:`Received`."""
    answer = json.loads(data)
    return Received(int(answer["bytes"]), answer["sha256"], answer["head"])


def _read_answer(sock: socket.socket) -> Received:
    """Read the drain's answer frame from a plain socket, until the drain closes."""
    data = bytearray()
    while True:
        packet = sock.recv(65536)
        if not packet:
            break
        data += packet
    (n,) = _HEADER.unpack_from(data)
    return _answer(bytes(data[_HEADER.size : _HEADER.size + n]))


def _make_send_file_blocking(w: SendFileWorkload, keep: bool) -> _Run:
    import framekit

    codec = _codec()

    def send() -> Received:
        conn = framekit.connect(w.address, codec, max_stream_size=w.max_stream_size)
        assert isinstance(conn, framekit.FramedSocket)
        with conn, open(w.path, "rb") as f:
            conn.send_file(f)
            conn.socket.shutdown(socket.SHUT_WR)
            return _answer(conn.recv())

    return _Run(_Drained(w, keep), send)


def _make_sendall_loop(w: SendFileWorkload, keep: bool) -> _Run:
    drained = _Drained(w, keep)

    def send() -> Received:
        with _connect(drained) as sock, open(w.path, "rb") as f:
            sock.sendall(w.header)
            read = f.read
            sendall = sock.sendall
            while True:
                chunk = read(CHUNK)
                if not chunk:
                    break
                sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            return _read_answer(sock)

    return _Run(drained, send)


def _make_raw_sendfile(w: SendFileWorkload, keep: bool) -> _Run:
    drained = _Drained(w, keep)

    def send() -> Received:
        with _connect(drained) as sock, open(w.path, "rb") as f:
            sock.sendall(w.header)
            sock.sendfile(f)
            sock.shutdown(socket.SHUT_WR)
            return _read_answer(sock)

    return _Run(drained, send)


def _make_send_file_asyncio(loop_kind: str) -> Callable[[SendFileWorkload, bool], _Run]:
    def make(w: SendFileWorkload, keep: bool) -> _Run:
        fk_asyncio = importlib.import_module("framekit.asyncio")
        codec = _codec()

        async def send() -> Received:
            conn = await fk_asyncio.connect(w.address, codec, max_stream_size=w.max_stream_size)
            try:
                with open(w.path, "rb") as f:
                    await conn.send_file(f)
                conn.write_eof()
                return _answer(await conn.recv())
            finally:
                await conn.close()

        return _AsyncRun(_Drained(w, keep), _new_loop(loop_kind), send)

    return make


def _make_writer_loop(loop_kind: str) -> Callable[[SendFileWorkload, bool], _Run]:
    def make(w: SendFileWorkload, keep: bool) -> _Run:
        async def send() -> Received:
            addr = parse_address(w.address)
            if addr.is_unix:
                reader, writer = await asyncio.open_unix_connection(addr.path)
            else:
                reader, writer = await asyncio.open_connection(addr.host, addr.port)
            try:
                writer.write(w.header)
                with open(w.path, "rb") as f:
                    while True:
                        chunk = f.read(CHUNK)
                        if not chunk:
                            break
                        writer.write(chunk)
                        await writer.drain()
                writer.write_eof()
                data = await reader.read()
            finally:
                writer.close()
            (n,) = _HEADER.unpack_from(data)
            return _answer(data[_HEADER.size : _HEADER.size + n])

        return _AsyncRun(_Drained(w, keep), _new_loop(loop_kind), send)

    return make


def send_file_contestants() -> List[Contestant]:
    """Every sender of a file as one frame (those whose modules are missing are skipped)."""
    fk_async = ("framekit.asyncio:connect", "framekit._speedups")
    return [
        Contestant(
            "send-file",
            "framekit blocking send_file",
            ROLE_FRAMEKIT,
            _make_send_file_blocking,
            needs=("framekit:connect", "framekit._speedups"),
        ),
        Contestant(
            "send-file-asyncio",
            "framekit asyncio send_file",
            ROLE_FRAMEKIT,
            _make_send_file_asyncio("asyncio"),
            needs=fk_async,
        ),
        Contestant(
            "send-file-asyncio-uvloop",
            "framekit asyncio send_file (uvloop)",
            ROLE_FRAMEKIT,
            _make_send_file_asyncio("uvloop"),
            needs=(*fk_async, "uvloop"),
        ),
        Contestant("sendall-loop", "read 256 KiB + sendall loop", ROLE_PEER, _make_sendall_loop),
        Contestant(
            "writer-loop",
            "asyncio read 256 KiB + write/drain loop",
            ROLE_PEER,
            _make_writer_loop("asyncio"),
        ),
        Contestant(
            "writer-loop-uvloop",
            "asyncio read 256 KiB + write/drain loop (uvloop)",
            ROLE_PEER,
            _make_writer_loop("uvloop"),
            needs=("uvloop",),
        ),
        Contestant(
            RAW_SENDFILE,
            "header + socket.sendfile (no framing)",
            ROLE_FLOOR,
            _make_raw_sendfile,
        ),
    ]
