"""End-to-end contestants: receivers of a stream blasted by another process.

Design notes
------------
Each run, the :class:`~framekit.apps.benchmarks.sender.Sender` process is armed
(outside the timer), then the receiver under test connects over loopback TCP
or a Unix socket, reads every frame until the sender closes, and closes.  The
timer covers the connect and the whole transfer; arming the sender and waiting
for its acknowledgement are the runner's ``before``/``after`` hooks.

Receivers:

* framekit's blocking ``connect()`` → ``FramedSocket``, iterated;
* framekit's asyncio transport, on the default loop and on uvloop;
* the naive recv-exactly loop (``recv`` until 4 bytes, then until ``n``);
* asyncio's ``StreamReader.readexactly``, on the same two loops;
* raw ``recv_into`` of the same bytes into one buffer, no framing: the limit;
* the same without framing on asyncio (a ``BufferedProtocol`` that counts
  bytes, on both loops): what the event loop itself costs, so that the gap
  between framekit's asyncio transport and the limit can be told apart from
  the gap between asyncio and a blocking loop;
* framekit's anyio transport and the hand-written anyio loop it replaces
  (``BufferedByteReceiveStream.receive_exactly``: 4 bytes, then ``n``), each on
  both of anyio's backends, asyncio and trio.  Each run is one ``anyio.run()``,
  so both pay for starting and stopping the event loop inside the timer (well
  under a millisecond, the same for both; a blocking portal kept outside the
  timer would leave a thread behind whenever a front-end skips the teardown).

Every receiver handles a frame the way the simplest real handler would: it
counts it (a run returns the count, checked after every timed run), or, in the
check run, keeps it (all frames are compared with the expected ones before any
run is timed).  Blocking sockets have no timeout, as in most programs (a
timeout adds a ``poll()`` before every ``recv``); a run cannot hang on them
because the sender's own sockets time out and closing them ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import socket
import struct
from typing import Any, Awaitable, Callable, List, Optional, Protocol

from ...addresses import parse_address
from .harness import (
    ROLE_FLOOR,
    ROLE_FRAMEKIT,
    ROLE_PEER,
    ROLE_PYTHON,
    Contestant,
    Session,
    interrupted,
    on_interrupt,
)
from .sender import Sender
from .workloads import frame_count, make_payloads, verify_frames

__all__ = [
    "RAW",
    "ArmedWorkload",
    "EndToEndWorkload",
    "receiver_contestants",
]

RAW = "raw-recv-into"

_unpack = struct.Struct(">I").unpack
#: Bytes in the sender's pre-encoded buffer (a few hundred frames of 64 B, four of 64 KiB).
_BUFFER_BYTES = 256 * 1024
_RECV_SIZE = 256 * 1024


class EndToEndWorkload:
    """One end-to-end run: ``repeats`` times a buffer of ``per_buffer`` frames over ``transport``.

    Args:
        session: provides the sender process (started on first use).
        transport: ``"tcp"`` or ``"unix"``.
        size: payload size.
        budget: bytes of stream per run (times the session's scale).
    """

    def __init__(self, session: Session, transport: str, size: int, budget: int) -> None:
        self.sender = session.resource("sender", Sender)
        self.transport = transport
        self.address = self.sender.addresses[transport]
        self.size = size
        count = frame_count(size, budget, session.scale)
        self.per_buffer = min(count, max(1, _BUFFER_BYTES // (size + 4)))
        self.repeats = math.ceil(count / self.per_buffer)
        self.frames = self.per_buffer * self.repeats
        self.payload_bytes = size * self.frames
        self.frame_size = size + 4
        self.payloads = make_payloads(size, self.per_buffer)
        self.buffer = b"".join(struct.pack(">I", size) + p for p in self.payloads)

    def arm(self) -> None:
        """Have the sender blast the next connection."""
        self.sender.arm(self.transport, self.size, self.per_buffer, self.repeats)

    def verify(self, output: Any) -> Optional[str]:
        """Check a run's output: a frame count, the frames, or (raw) the bytes received.

        Returns:
            ``None`` if right, else what is wrong.
        """
        if output is None:
            return "no output: a run must return its frames or how many there were"
        if isinstance(output, int):
            return None if output == self.frames else f"{output} frames instead of {self.frames}"
        if isinstance(output, (bytes, bytearray, memoryview)):
            view = memoryview(output)
            if len(view) != len(self.buffer) * self.repeats:
                return f"{len(view)} bytes instead of {len(self.buffer) * self.repeats}"
            step = len(self.buffer)
            for i in range(self.repeats):
                if view[i * step : (i + 1) * step] != self.buffer:
                    return f"the bytes of repeat {i} differ"
            return None
        if isinstance(output, list):
            if len(output) != self.frames:
                return f"{len(output)} frames instead of {self.frames}"
            k = self.per_buffer
            for i in range(self.repeats):
                wrong = verify_frames(output[i * k : (i + 1) * k], self.payloads)
                if wrong is not None:
                    return f"repeat {i}: {wrong}"
            return None
        return f"unexpected output type {type(output).__name__}"


class ArmedWorkload(Protocol):
    """What the runners below need of a workload: where to connect, and a sender to arm."""

    sender: Sender
    address: str

    def arm(self) -> None: ...


class _Run:
    """A runner whose hooks arm the sender and collect its acknowledgement."""

    def __init__(self, w: ArmedWorkload, receive: Callable[[], Any]) -> None:
        self._w = w
        self._receive = receive

    def before(self) -> None:
        self._w.arm()

    def __call__(self) -> Any:
        return self._receive()

    def after(self) -> None:
        self._w.sender.wait()


class _AsyncRun(_Run):
    """A :class:`_Run` whose receive is a coroutine, run on a loop made outside the timer.

    Ctrl-C must not raise ``KeyboardInterrupt`` inside the loop's callbacks
    (uvloop then logs a traceback, or leaves the loop marked as running), so
    while the loop runs, the session's SIGINT handler cancels the run instead
    (:func:`~framekit.apps.benchmarks.harness.on_interrupt`), and :meth:`_run`
    raises ``KeyboardInterrupt`` once out of the loop.
    """

    def __init__(
        self,
        w: ArmedWorkload,
        new_loop: Callable[[], asyncio.AbstractEventLoop],
        main: Callable[[], Awaitable[Any]],
    ) -> None:
        super().__init__(w, self._run)
        self._new_loop = new_loop
        self._main = main
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def before(self) -> None:
        self._loop = self._new_loop()
        super().before()

    def _run(self) -> Any:
        loop = self._loop
        assert loop is not None
        task: asyncio.Task[Any] = loop.create_task(self._main())  # type: ignore[arg-type]
        with on_interrupt(lambda: loop.call_soon_threadsafe(task.cancel)):
            try:
                output = loop.run_until_complete(task)
            except asyncio.CancelledError:
                if interrupted():
                    raise KeyboardInterrupt from None
                raise
        if interrupted():
            raise KeyboardInterrupt
        return output

    def after(self) -> None:
        try:
            self.abort()
        finally:
            super().after()

    def abort(self) -> None:
        """Close the loop, and nothing else (an interrupted run: no acknowledgement to wait for)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            with contextlib.suppress(Exception):
                loop.close()


def _connect(w: ArmedWorkload) -> socket.socket:
    addr = parse_address(w.address)
    sock = socket.socket(addr.family, socket.SOCK_STREAM)
    try:
        sock.connect(addr.sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


# --- blocking receivers ---------------------------------------------------------


def _make_raw(w: EndToEndWorkload, keep: bool) -> _Run:
    def receive() -> Any:
        with _connect(w) as sock:
            if keep:
                data = bytearray(len(w.buffer) * w.repeats + _RECV_SIZE)
                view = memoryview(data)
                total = 0
                while True:
                    n = sock.recv_into(view[total:])
                    if not n:
                        return view[:total]
                    total += n
            buf = bytearray(_RECV_SIZE)
            recv_into = sock.recv_into
            total = 0
            while True:
                n = recv_into(buf)
                if not n:
                    break
                total += n
        # A frame count, as the framed receivers return; any stray byte makes it wrong.
        return total // w.frame_size if total % w.frame_size == 0 else -total

    return _Run(w, receive)


def _recv_exactly(sock: socket.socket, n: int) -> Optional[bytes]:
    """The classic ``recvall``: ``recv`` until ``n`` bytes; ``None`` at EOF."""
    data = bytearray()
    while len(data) < n:
        packet = sock.recv(n - len(data))
        if not packet:
            return None
        data += packet
    return bytes(data)


def _make_naive(w: EndToEndWorkload, keep: bool) -> _Run:
    def receive() -> Any:
        frames: Optional[List[bytes]] = [] if keep else None
        count = 0
        with _connect(w) as sock:
            while True:
                header = _recv_exactly(sock, 4)
                if header is None:
                    break
                payload = _recv_exactly(sock, _unpack(header)[0])
                if payload is None:
                    raise ConnectionError("the stream ended inside a frame")
                count += 1
                if frames is not None:
                    frames.append(payload)
        return count if frames is None else frames

    return _Run(w, receive)


def _make_framekit_blocking(module: str) -> Callable[[EndToEndWorkload, bool], _Run]:
    def make(w: EndToEndWorkload, keep: bool) -> _Run:
        import framekit

        codec = importlib.import_module(module).LengthPrefixed(4)

        def receive() -> Any:
            with framekit.connect(w.address, codec) as fs:
                if keep:
                    return list(fs)
                count = 0
                for _ in fs:
                    count += 1
                return count

        return _Run(w, receive)

    return make


# --- asyncio receivers ----------------------------------------------------------


def _new_loop(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        return importlib.import_module("uvloop").new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop


async def _open_stream(w: EndToEndWorkload) -> Any:
    addr = parse_address(w.address)
    if addr.is_unix:
        return await asyncio.open_unix_connection(addr.path)
    return await asyncio.open_connection(addr.host, addr.port)


def _make_readexactly(loop_kind: str) -> Callable[[EndToEndWorkload, bool], _Run]:
    def make(w: EndToEndWorkload, keep: bool) -> _Run:
        async def receive() -> Any:
            frames: Optional[List[bytes]] = [] if keep else None
            count = 0
            reader, writer = await _open_stream(w)
            try:
                readexactly = reader.readexactly
                while True:
                    try:
                        header = await readexactly(4)
                    except asyncio.IncompleteReadError as exc:
                        if exc.partial:
                            raise
                        break
                    payload = await readexactly(_unpack(header)[0])
                    count += 1
                    if frames is not None:
                        frames.append(payload)
            finally:
                writer.close()
            return count if frames is None else frames

        return _AsyncRun(w, _new_loop(loop_kind), receive)

    return make


class CountingProtocol(asyncio.BufferedProtocol):
    """A raw receiver with no framing: counts bytes in ``total``; ``done`` gets the
    count when the peer closes (or the error)."""

    def __init__(self, done: asyncio.Future[int]) -> None:
        self.total = 0
        self.done = done

    def buffer_updated(self, nbytes: int) -> None:
        self.total += nbytes

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(self.total)
            else:
                self.done.set_exception(exc)


class _RawProtocol(CountingProtocol):
    """asyncio's own zero-copy receive path with no framing: the asyncio limit."""

    def __init__(self, size: int, done: asyncio.Future[int]) -> None:
        super().__init__(done)
        self.view = memoryview(bytearray(size))
        self.keep = size > _RECV_SIZE

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.total :] if self.keep else self.view


def _make_raw_asyncio(loop_kind: str) -> Callable[[EndToEndWorkload, bool], _Run]:
    def make(w: EndToEndWorkload, keep: bool) -> _Run:
        async def receive() -> Any:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[int] = loop.create_future()
            size = len(w.buffer) * w.repeats + _RECV_SIZE + 1 if keep else _RECV_SIZE
            addr = parse_address(w.address)
            if addr.is_unix:
                conn = loop.create_unix_connection(lambda: _RawProtocol(size, done), addr.path)
            else:
                assert addr.host is not None and addr.port is not None
                conn = loop.create_connection(
                    lambda: _RawProtocol(size, done), addr.host, addr.port
                )
            transport, protocol = await conn
            try:
                total = await done
            finally:
                transport.close()
            if keep:
                return protocol.view[:total]
            return total // w.frame_size if total % w.frame_size == 0 else -total

        return _AsyncRun(w, _new_loop(loop_kind), receive)

    return make


def _make_framekit_asyncio(loop_kind: str) -> Callable[[EndToEndWorkload, bool], _Run]:
    def make(w: EndToEndWorkload, keep: bool) -> _Run:
        fk_asyncio = importlib.import_module("framekit.asyncio")
        codec = importlib.import_module("framekit._speedups").LengthPrefixed(4)

        async def receive() -> Any:
            conn = await fk_asyncio.connect(w.address, codec)
            try:
                if keep:
                    return [frame async for frame in conn]
                count = 0
                async for _ in conn:
                    count += 1
                return count
            finally:
                await conn.close()

        return _AsyncRun(w, _new_loop(loop_kind), receive)

    return make


# --- anyio receivers ------------------------------------------------------------


def _anyio_run(w: EndToEndWorkload, backend: str, main: Callable[[], Awaitable[Any]]) -> _Run:
    """A :class:`_Run` whose receive is ``anyio.run(main)`` on ``backend``.

    Ctrl-C must not raise inside the event loop (trio and asyncio would leave
    it half torn down), so while it runs SIGINT only sets the session's flag,
    and a watcher task cancels the run when it sees it.
    """
    anyio = importlib.import_module("anyio")

    async def guarded() -> Any:
        results: List[Any] = []
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while not interrupted():
                    await anyio.sleep(0.05)
                group.cancel_scope.cancel()

            group.start_soon(watch)
            results.append(await main())
            group.cancel_scope.cancel()
        return results[0] if results else None

    def run() -> Any:
        with on_interrupt(lambda: None):  # the flag is enough: the watcher stops the run
            output = anyio.run(guarded, backend=backend)
        if interrupted():
            raise KeyboardInterrupt
        return output

    return _Run(w, run)


async def _open_anyio_stream(w: EndToEndWorkload) -> Any:
    anyio = importlib.import_module("anyio")
    addr = parse_address(w.address)
    if addr.is_unix:
        return await anyio.connect_unix(addr.path)
    return await anyio.connect_tcp(addr.host, addr.port)


def _make_receive_exactly(backend: str) -> Callable[[EndToEndWorkload, bool], _Run]:
    def make(w: EndToEndWorkload, keep: bool) -> _Run:
        anyio = importlib.import_module("anyio")
        buffered = importlib.import_module("anyio.streams.buffered")

        async def receive() -> Any:
            frames: Optional[List[bytes]] = [] if keep else None
            count = 0
            stream = await _open_anyio_stream(w)
            try:
                reader = buffered.BufferedByteReceiveStream(stream)
                receive_exactly = reader.receive_exactly
                while True:
                    try:
                        header = await receive_exactly(4)
                    except anyio.IncompleteRead:
                        if reader.buffer:
                            raise
                        break
                    payload = await receive_exactly(_unpack(header)[0])
                    count += 1
                    if frames is not None:
                        frames.append(payload)
            finally:
                await stream.aclose()
            return count if frames is None else frames

        return _anyio_run(w, backend, receive)

    return make


def _make_framekit_anyio(backend: str) -> Callable[[EndToEndWorkload, bool], _Run]:
    def make(w: EndToEndWorkload, keep: bool) -> _Run:
        fk_anyio = importlib.import_module("framekit.anyio")
        codec = importlib.import_module("framekit._speedups").LengthPrefixed(4)

        async def receive() -> Any:
            conn = await fk_anyio.connect(w.address, codec)
            try:
                if keep:
                    return [frame async for frame in conn]
                count = 0
                async for _ in conn:
                    count += 1
                return count
            finally:
                await conn.aclose()

        return _anyio_run(w, backend, receive)

    return make


def receiver_contestants() -> List[Contestant]:
    """Every end-to-end receiver (those whose modules are missing are skipped)."""
    return [
        Contestant(
            "blocking",
            "framekit blocking (cython)",
            ROLE_FRAMEKIT,
            _make_framekit_blocking("framekit._speedups"),
            needs=("framekit:connect", "framekit._speedups"),
        ),
        Contestant(
            "blocking-python",
            "framekit blocking (python)",
            ROLE_PYTHON,
            _make_framekit_blocking("framekit.codecs.length_prefixed"),
            needs=("framekit:connect",),
        ),
        Contestant(
            "asyncio",
            "framekit asyncio",
            ROLE_FRAMEKIT,
            _make_framekit_asyncio("asyncio"),
            needs=("framekit.asyncio:connect", "framekit._speedups"),
        ),
        Contestant(
            "asyncio-uvloop",
            "framekit asyncio (uvloop)",
            ROLE_FRAMEKIT,
            _make_framekit_asyncio("uvloop"),
            needs=("framekit.asyncio:connect", "framekit._speedups", "uvloop"),
        ),
        Contestant("naive", "naive recv-exactly loop", ROLE_PEER, _make_naive),
        Contestant("readexactly", "asyncio readexactly", ROLE_PEER, _make_readexactly("asyncio")),
        Contestant(
            "readexactly-uvloop",
            "asyncio readexactly (uvloop)",
            ROLE_PEER,
            _make_readexactly("uvloop"),
            needs=("uvloop",),
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
            "anyio",
            "framekit anyio (asyncio)",
            ROLE_FRAMEKIT,
            _make_framekit_anyio("asyncio"),
            needs=("framekit.anyio:connect", "framekit._speedups"),
        ),
        Contestant(
            "anyio-trio",
            "framekit anyio (trio)",
            ROLE_FRAMEKIT,
            _make_framekit_anyio("trio"),
            needs=("framekit.anyio:connect", "framekit._speedups", "trio"),
        ),
        Contestant(
            "receive-exactly",
            "anyio receive_exactly (asyncio)",
            ROLE_PEER,
            _make_receive_exactly("asyncio"),
            needs=("anyio.streams.buffered",),
        ),
        Contestant(
            "receive-exactly-trio",
            "anyio receive_exactly (trio)",
            ROLE_PEER,
            _make_receive_exactly("trio"),
            needs=("anyio.streams.buffered", "trio"),
        ),
        Contestant(RAW, "raw recv_into (no framing)", ROLE_FLOOR, _make_raw),
    ]
