"""Attacks on ``recv_batch()``/``batches()``, held replies and the asyncio read path.

Real servers on 127.0.0.1 (and Unix sockets) on every stream transport (blocking,
asyncio on the default loop and on uvloop, anyio on asyncio and on trio), raw-socket
or framekit clients, each test bounded to a few seconds:

* every frame exactly once, in order, whatever the frame sizes, the client's write
  boundaries and the mix of ``recv()``, ``recv_batch()``, iteration, ``recv_into()``
  and ``recv_stream()`` the handler uses on one connection; every reply too;
* errors in the middle of a pipelined burst: ``CorruptedFrame`` (netstring garbage),
  ``FrameTooLarge`` (several, anywhere), ``SerializationError`` (at the start, the
  middle, the end of a batch, several in a row): the frames before come in batches,
  then the error, then (when the stream can go on) the frames after; no batch is empty;
* replies: sent by a handler that returns without asking for more, by another task or
  thread while the reader holds a batch;
* flow control and the server's memory budget under a pipelining client and a slow
  batch handler: nothing lost, no deadlock, the budget back to 0 once connections close;
* the asyncio ``ReadWaiter``: cancelled ``recv()``/``recv_batch()``/``async for`` (default
  loop and uvloop; anyio cancel scopes too) and datagram ``recv()`` lose nothing, an old
  timer never wakes a later wait; ``idle_timeout`` and ``frame_timeout`` on client
  connections raise ``TimeoutError`` and the next read works.

Section 6 holds the regression tests of the bugs this found: an empty batch (``[]``)
from ``recv_batch()``, and ``AssertionError`` from ``recv()``, when a bad frame came first
in input decoded late (``StreamCore._next_batch``); replies held on the blocking and anyio
connections after a batch cut short by a ``SerializationError``.
"""

from __future__ import annotations

import asyncio
import importlib
import queue
import random
import socket
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framekit
import framekit.asyncio
from framekit import (
    BudgetExceeded,
    ConnectionClosed,
    CorruptedFrame,
    FrameTooLarge,
    SerializationError,
)
from framekit.asyncio.flow import ReadWaiter
from framekit.serializers import JSON

from .batch_servers import (
    TIMEOUT,
    TRANSPORTS,
    Running,
    check_transport,
    frame,
    read_frames,
    run_async,
    sleeper,
)

ASYNCIO_LOOPS = ["asyncio", "uvloop"]
#: A few examples each: every example opens a real connection.
FEW = settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    check_transport(request.param)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=TRANSPORTS[1:])
def async_transport(request: pytest.FixtureRequest) -> str:
    check_transport(request.param)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=ASYNCIO_LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    check_transport(request.param)
    return request.param  # type: ignore[no-any-return]


def get(results: queue.Queue[Any]) -> Any:
    return results.get(timeout=TIMEOUT)


def drain(results: queue.Queue[Any]) -> None:
    """Forget what an earlier (failed) example's handler left."""
    while not results.empty():
        results.get_nowait()


# --- 1. order and loss: every read style mixed on one connection ---------------------

OPS = ["recv", "batch", "batch", "iter", "into", "stream"]
MAX_FRAME = 32 * 1024


def mixed_reader(transport: str, results: queue.Queue[Any]) -> Callable[[Any], Any]:
    """A handler that reads with a random mix of every read style (seeded by the first
    frame) and echoes each message, one by one or a batch at a time."""
    if transport == "blocking":

        def handler(conn: Any) -> None:
            rng = random.Random(conn.recv())
            got: List[bytes] = []
            try:
                while True:
                    op = rng.choice(OPS)
                    if op == "recv":
                        new = [conn.recv()]
                    elif op == "batch":
                        new = conn.recv_batch()
                        assert new, "an empty batch"
                    elif op == "iter":
                        want, new = rng.randint(1, 5), []
                        for message in conn:
                            new.append(message)
                            if len(new) == want:
                                break
                        else:
                            got += new
                            for m in new:
                                conn.send(m)
                            break
                    elif op == "into":
                        buf = bytearray(MAX_FRAME)
                        n = conn.recv_into(buf)
                        new = [bytes(buf[:n])]
                    else:
                        with conn.recv_stream(chunk_size=rng.choice([1, 7, 1000, 65536])) as s:
                            new = [b"".join(s)]
                    got += new
                    if rng.random() < 0.5:
                        conn.send_many(new)
                    else:
                        for m in new:
                            conn.send(m)
            except ConnectionClosed:
                pass
            except Exception as exc:  # pragma: no cover - reported by the test
                got.append(exc)  # type: ignore[arg-type]
            results.put(got)

        return handler

    async def ahandler(conn: Any) -> None:
        rng = random.Random(await conn.recv())
        got: List[Any] = []
        try:
            while True:
                op = rng.choice(OPS)
                if op == "recv":
                    new = [await conn.recv()]
                elif op == "batch":
                    new = await conn.recv_batch()
                    assert new, "an empty batch"
                elif op == "iter":
                    want, new, ended = rng.randint(1, 5), [], True
                    async for message in conn:
                        new.append(message)
                        if len(new) == want:
                            ended = False
                            break
                    if ended:
                        got += new
                        for m in new:
                            await conn.send(m)
                        break
                elif op == "into":
                    buf = bytearray(MAX_FRAME)
                    n = await conn.recv_into(buf)
                    new = [bytes(buf[:n])]
                else:
                    stream = await conn.recv_stream(chunk_size=rng.choice([1, 7, 1000, 65536]))
                    async with stream:
                        new = [b"".join([chunk async for chunk in stream])]
                got += new
                if rng.random() < 0.5:
                    await conn.send_many(new)
                else:
                    for m in new:
                        await conn.send(m)
        except ConnectionClosed:
            pass
        except Exception as exc:  # pragma: no cover - reported by the test
            got.append(exc)
        results.put(got)

    return ahandler


def payloads_of(sizes: List[int]) -> List[bytes]:
    return [
        (b"<%d>" % i).ljust(size, b"abcdefghij"[i % 10 : i % 10 + 1])
        for i, size in enumerate(sizes)
    ]


def send_in_pieces(sock: socket.socket, wire: bytes, cuts: List[int], pauses: bool) -> None:
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    for i, (a, b) in enumerate(zip(points, points[1:])):
        sock.sendall(wire[a:b])
        if pauses and i % 3 == 0:
            time.sleep(0.001)


def exchange(
    server: Running, seed: bytes, payloads: List[bytes], cuts: List[int], pauses: bool
) -> List[bytes]:
    """Send ``seed`` then ``payloads`` cut at ``cuts``; return the echoes (all of them,
    read by a thread while sending)."""
    echoes: List[Any] = []
    with server.connect() as sock:

        def read() -> None:
            try:
                echoes.extend(read_frames(sock))
            except Exception as exc:  # pragma: no cover - reported below
                echoes.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        send_in_pieces(sock, frame(seed) + b"".join(map(frame, payloads)), cuts, pauses)
        sock.shutdown(socket.SHUT_WR)
        reader.join(TIMEOUT)
        assert not reader.is_alive(), "the client never got every reply"
    return echoes


def test_every_frame_once_in_order_whatever_the_reads_and_writes(transport: str) -> None:
    results: queue.Queue[Any] = queue.Queue()
    codec = framekit.LengthPrefixed(4, max_frame_size=MAX_FRAME)
    with Running(transport, mixed_reader(transport, results), codec) as server:

        @FEW
        @given(
            sizes=st.lists(
                st.one_of(st.integers(0, 40), st.integers(0, 3000), st.integers(0, MAX_FRAME - 4)),
                min_size=1,
                max_size=60,
            ),
            cuts=st.lists(st.integers(0, 1 << 20), max_size=12),
            pauses=st.booleans(),
            seed=st.binary(min_size=1, max_size=8),
        )
        def check(sizes: List[int], cuts: List[int], pauses: bool, seed: bytes) -> None:
            drain(results)
            payloads = payloads_of(sizes)
            echoes = exchange(server, seed, payloads, cuts, pauses)
            assert get(results) == payloads
            assert echoes == payloads

        check()
        assert server.budget_used() == 0


def pipeline(sock: socket.socket, payloads: List[bytes]) -> List[Any]:
    """Send every payload in one ``sendall`` while a thread reads as many replies."""
    echoes: List[Any] = []

    def read() -> None:
        try:
            echoes.extend(read_frames(sock, len(payloads)))
        except Exception as exc:  # pragma: no cover - reported below
            echoes.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    sock.sendall(b"".join(map(frame, payloads)))
    reader.join(TIMEOUT * 2)
    assert not reader.is_alive(), "stuck: not every reply came"
    return echoes


def test_pipelined_batches_over_a_unix_socket(transport: str, tmp_path: Any) -> None:
    """The same over a Unix socket: a batch handler answering with send_many."""
    if transport == "blocking":

        def handler(conn: Any) -> None:
            for batch in conn.batches():
                conn.send_many(batch)

    else:

        async def handler(conn: Any) -> None:
            async for batch in conn.batches():
                await conn.send_many(batch)

    path = tmp_path / "s"
    payloads = payloads_of([random.Random(i).randint(0, 5000) for i in range(400)])
    with (
        Running(transport, handler, framekit.LengthPrefixed(4), address=f"unix://{path}") as server,
        server.connect() as sock,
    ):
        echoes = pipeline(sock, payloads)
        assert echoes == payloads
        sock.sendall(frame(b"ping"))  # a lone request is answered at once
        assert read_frames(sock, 1) == [b"ping"]


# --- 2. errors in the middle of a pipelined burst ------------------------------------


def batch_collector(
    transport: str, results: queue.Queue[Any], rounds: int = 1
) -> Callable[[Any], Any]:
    """A handler that reads batches until ConnectionClosed, recording each batch (a list)
    and each error (its type); ``rounds``: how many errors in a row end it."""
    if transport == "blocking":

        def handler(conn: Any) -> None:
            got: List[Any] = []
            errors = 0
            while errors < rounds:
                try:
                    got.append(conn.recv_batch())
                except ConnectionClosed:
                    break
                except Exception as exc:
                    got.append(type(exc))
                    errors += 1
            results.put(got)

        return handler

    async def ahandler(conn: Any) -> None:
        got: List[Any] = []
        errors = 0
        while errors < rounds:
            try:
                got.append(await conn.recv_batch())
            except ConnectionClosed:
                break
            except Exception as exc:
                got.append(type(exc))
                errors += 1
        results.put(got)

    return ahandler


def test_a_corrupted_stream_ends_after_every_frame_before_it(transport: str) -> None:
    results: queue.Queue[Any] = queue.Queue()
    codec = framekit.Netstring(max_frame_size=1000)
    with Running(transport, batch_collector(transport, results, rounds=3), codec) as server:
        good = [b"m%d" % i for i in range(300)]
        with server.connect() as sock:
            wire = b"".join(b"%d:%s," % (len(p), p) for p in good)
            sock.sendall(wire + b"xx:garbage," + b"2:no,")
            got = get(results)
        batches = [g for g in got if isinstance(g, list)]
        assert all(batches), "an empty batch"
        assert [m for b in batches for m in b] == good
        # Every frame before the error, then the error, raised again by every later call.
        assert got[len(batches) :] == [CorruptedFrame] * 3
        assert server.budget_used() == 0


def test_frames_too_large_anywhere_in_a_burst(transport: str) -> None:
    results: queue.Queue[Any] = queue.Queue()
    codec = framekit.LengthPrefixed(4, max_frame_size=100)
    with Running(transport, batch_collector(transport, results, rounds=1000), codec) as server:

        @FEW
        @given(st.lists(st.booleans(), min_size=1, max_size=40))
        def check(pattern: List[bool]) -> None:
            drain(results)
            # True: a frame above max_frame_size (skipped, FrameTooLarge); False: a good one.
            wire = [frame(b"X" * 150) if big else frame(b"%d" % i) for i, big in enumerate(pattern)]
            with server.connect() as sock:
                sock.sendall(b"".join(wire))
                sock.shutdown(socket.SHUT_WR)
                got = get(results)
            expected: List[Any] = []
            for i, big in enumerate(pattern):
                expected.append(FrameTooLarge if big else b"%d" % i)
            flat: List[Any] = []
            for g in got:
                if isinstance(g, list):
                    assert g, "an empty batch"
                    flat.extend(g)
                else:
                    flat.append(g)
            assert flat == expected

        check()
        assert server.budget_used() == 0


def test_messages_that_do_not_deserialize_anywhere_in_a_batch(transport: str) -> None:
    results: queue.Queue[Any] = queue.Queue()
    codec = framekit.LengthPrefixed(4, max_frame_size=1000)
    handler = batch_collector(transport, results, rounds=1000)
    with Running(transport, handler, codec, serializer=JSON) as server:

        @FEW
        @given(st.lists(st.booleans(), min_size=1, max_size=40), st.booleans())
        def check(pattern: List[bool], split: bool) -> None:
            drain(results)
            # True: a frame that is not JSON; False: {"n": i}.
            wire = [
                frame(b"{not json %d" % i) if bad else frame(b'{"n": %d}' % i)
                for i, bad in enumerate(pattern)
            ]
            with server.connect() as sock:
                if split:  # a read boundary in the middle
                    half = len(wire) // 2
                    sock.sendall(b"".join(wire[:half]))
                    time.sleep(0.01)
                    sock.sendall(b"".join(wire[half:]))
                else:
                    sock.sendall(b"".join(wire))
                sock.shutdown(socket.SHUT_WR)
                got = get(results)
            expected = [SerializationError if bad else {"n": i} for i, bad in enumerate(pattern)]
            flat: List[Any] = []
            for g in got:
                if isinstance(g, list):
                    assert g, "an empty batch"
                    flat.extend(g)
                else:
                    flat.append(g)
            assert flat == expected
            if not split:  # one read: the good frames between two bad ones form one batch
                runs = "".join("b" if bad else "g" for bad in pattern).split("b")
                assert [len(g) for g in got if isinstance(g, list)] == [len(r) for r in runs if r]

        check()


# --- 3. replies --------------------------------------------------------------------


def test_replies_reach_the_peer_when_the_handler_returns_after_a_batch(transport: str) -> None:
    """send() one by one after recv_batch(), then return without asking for more."""
    if transport == "blocking":

        def handler(conn: Any) -> None:
            for message in conn.recv_batch():
                conn.send(b"re:" + message)

    else:

        async def handler(conn: Any) -> None:
            for message in await conn.recv_batch():
                await conn.send(b"re:" + message)

    with Running(transport, handler, framekit.LengthPrefixed(4)) as server:
        for _ in range(5):
            with server.connect() as sock:
                sock.sendall(b"".join(frame(b"%d" % i) for i in range(30)))
                replies = read_frames(sock)  # until the server closes
            assert replies and replies == [b"re:%d" % i for i in range(len(replies))]


def test_replies_from_another_task_while_the_reader_holds_a_batch(transport: str) -> None:
    """The reader takes a batch and then waits for something else (not input) for long;
    another task (thread) answers every message: the peer gets the answers at once."""
    release = threading.Event()
    if transport == "blocking":

        def handler(conn: Any) -> None:
            batch = conn.recv_batch()
            conn.send(b"first")  # from the reader itself

            def helper() -> None:
                try:
                    for m in batch:
                        conn.send(m)
                except OSError:
                    pass  # the client is gone

            thread = threading.Thread(target=helper)
            thread.start()
            thread.join()
            release.wait(TIMEOUT)  # something unrelated, for long

    else:
        sleep = sleeper(transport)

        async def handler(conn: Any) -> None:
            batch = await conn.recv_batch()
            await conn.send(b"first")

            async def helper() -> None:
                for m in batch:
                    await conn.send(m)

            if transport.startswith("anyio"):
                import anyio

                async with anyio.create_task_group() as tg:
                    tg.start_soon(helper)
            else:
                await asyncio.ensure_future(helper())
            while not release.is_set():
                await sleep(0.01)

    with Running(transport, handler, framekit.LengthPrefixed(4)) as server:
        try:
            with server.connect() as sock:
                sock.sendall(b"".join(frame(b"%d" % i) for i in range(20)))
                # The batch may be a part of the 20 (one read); its echoes come at once,
                # long before the reader is released.
                assert read_frames(sock, 2, timeout=1.0) == [b"first", b"0"]
        finally:
            release.set()


# --- 4. flow control and the memory budget ---------------------------------------------


def test_a_pipelining_client_and_a_slow_batch_handler_with_small_bounds(transport: str) -> None:
    seen: List[int] = []
    if transport == "blocking":

        def handler(conn: Any) -> None:
            for batch in conn.batches():
                seen.append(len(batch))
                time.sleep(0.002)
                conn.send_many(batch)

        options: Dict[str, Any] = {"max_buffered_bytes": 1 << 20}
    else:
        sleep = sleeper(transport)

        async def handler(conn: Any) -> None:
            async for batch in conn.batches():
                seen.append(len(batch))
                await sleep(0.002)
                if len(seen) % 2:
                    await conn.send_many(batch)
                else:
                    for m in batch:
                        await conn.send(m)

        options = {"max_buffered_bytes": 1 << 20}
        if not transport.startswith("anyio"):
            options.update(max_queued_frames=4, max_queued_bytes=600)

    payloads = payloads_of([random.Random(i).randint(4, 300) for i in range(3000)])
    with Running(transport, handler, framekit.LengthPrefixed(4), **options) as server:
        with server.connect() as sock:
            assert pipeline(sock, payloads) == payloads
        assert server.budget_used() == 0
        assert sum(seen) == len(payloads)


def test_the_budget_is_released_however_the_connections_end(transport: str) -> None:
    """Handlers that return in the middle of a batch, raise, or meet a reset peer: once
    every connection is gone, the server's budget is back to 0."""
    if transport == "blocking":

        def handler(conn: Any) -> None:
            first = conn.recv_batch()
            if first[0] == b"raise":
                raise RuntimeError("the handler fails")
            if first[0] == b"return":
                return
            for batch in conn.batches():
                conn.send_many(batch)

    else:

        async def handler(conn: Any) -> None:
            first = await conn.recv_batch()
            if first[0] == b"raise":
                raise RuntimeError("the handler fails")
            if first[0] == b"return":
                return
            async for batch in conn.batches():
                await conn.send_many(batch)

    codec = framekit.LengthPrefixed(4, max_frame_size=1 << 16)
    with Running(transport, handler, codec, max_buffered_bytes=1 << 22) as server:
        for kind in (b"raise", b"return", b"echo"):
            socks = []
            for _ in range(4):
                sock = server.connect()
                # A batch, more frames behind it, and an unfinished large frame.
                sock.sendall(
                    frame(kind) + frame(b"x" * 1000) * 20 + struct.pack(">I", 60000) + b"y" * 30000
                )
                socks.append(sock)
            time.sleep(0.1)
            for i, sock in enumerate(socks):
                if i % 2:  # a reset
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        assert server.budget_used() == 0


def test_frames_before_a_budget_refusal_come_then_budget_exceeded(transport: str) -> None:
    """Small frames, then a large frame's beginning that takes the server over its
    max_buffered_bytes: the small frames come in batches, then BudgetExceeded."""
    results: queue.Queue[Any] = queue.Queue()
    handler = batch_collector(transport, results, rounds=2)
    with Running(transport, handler, framekit.LengthPrefixed(4), max_buffered_bytes=8000) as server:
        with server.connect() as sock:
            small = [b"%d" % i for i in range(300)]
            sock.sendall(b"".join(map(frame, small)) + struct.pack(">I", 60000) + b"z" * 20000)
            got = get(results)
        assert [m for g in got if isinstance(g, list) for m in g] == small
        assert all(got[:-1]) and got[-1] is BudgetExceeded
        assert server.budget_used() == 0


# --- 5. the asyncio read path: ReadWaiter, cancellation, timeouts ----------------------


def test_read_waiter_old_timers_and_cancelled_waits(loop_kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        waiter = ReadWaiter(loop)
        # A wait cancelled with its timer pending: the next wait begins, and that
        # timer never wakes it.
        task = asyncio.ensure_future(waiter.wait(0.05))
        await asyncio.sleep(0)
        task.cancel()
        later = waiter.wait()
        await asyncio.sleep(0.1)
        assert not later.done()
        with pytest.raises(RuntimeError):
            waiter.wait()
        waiter.wake()
        assert later.done()
        # A wait woken before its timer: the timer does not wake the next one.
        first = waiter.wait(0.05)
        waiter.wake()
        await first
        second = waiter.wait()
        await asyncio.sleep(0.1)
        assert not second.done()
        waiter.wake()
        await second
        # A wait that timed out: the next may begin, with its own timer.
        third = waiter.wait(0.01)
        await third
        fourth = waiter.wait(0.03)
        start = loop.time()
        await fourth
        assert loop.time() - start >= 0.02
        # wake() with nobody waiting is a no-op; many cancelled waits in a row.
        waiter.wake()
        for _ in range(200):
            t = asyncio.ensure_future(waiter.wait(0.001))
            await asyncio.sleep(0)
            t.cancel()
            await asyncio.sleep(0)
        last = waiter.wait()
        await asyncio.sleep(0.01)
        assert not last.done()
        waiter.wake()

    run_async(loop_kind, main)


def trickle_server(
    frames: List[bytes], gaps: List[float]
) -> Tuple[socket.socket, threading.Thread, List[Any]]:
    """A raw server that accepts one client and sends it ``frames[i]`` after ``gaps[i]``
    seconds each, then waits for it to close."""
    listener = socket.create_server(("127.0.0.1", 0))
    errors: List[Any] = []

    def run() -> None:
        try:
            listener.settimeout(TIMEOUT)
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for data, gap in zip(frames, gaps):
                    time.sleep(gap)
                    conn.sendall(data)
                conn.settimeout(TIMEOUT)
                conn.recv(1)
        except Exception as exc:  # pragma: no cover - reported by the test
            errors.append(exc)
        finally:
            listener.close()

    thread = threading.Thread(target=run)
    thread.start()
    return listener, thread, errors


@pytest.mark.parametrize("how", ["recv", "recv_batch", "async for"])
def test_cancelled_reads_lose_nothing(async_transport: str, how: str) -> None:
    """Reads cancelled while they wait (asyncio.wait_for on asyncio and uvloop, a cancel
    scope's deadline on anyio), over and over, while frames trickle in: none is lost."""
    transport = async_transport
    rng = random.Random(7)
    payloads = [b"%d" % i for i in range(150)]
    wire = [b"".join(map(frame, payloads[i : i + 3])) for i in range(0, 150, 3)]
    gaps = [rng.choice([0.0, 0.0, 0.001, 0.004]) for _ in wire]
    listener, thread, errors = trickle_server(wire, gaps)
    port = listener.getsockname()[1]

    anyio_backend = transport.split("-")[1] if transport.startswith("anyio") else ""

    async def main() -> Tuple[List[bytes], int]:
        address = f"tcp://127.0.0.1:{port}"
        if anyio_backend:
            import anyio

            fan = importlib.import_module("framekit.anyio")
            conn = await fan.connect(address, framekit.LengthPrefixed(4))
        else:
            conn = await framekit.asyncio.connect(address, framekit.LengthPrefixed(4))
        got: List[bytes] = []
        cancels = 0

        async def one() -> List[bytes]:
            if how == "recv":
                return [await conn.recv()]
            if how == "recv_batch":
                return await conn.recv_batch()  # type: ignore[no-any-return]
            async for message in conn:
                return [message]
            raise ConnectionClosed("end")

        end = time.monotonic() + TIMEOUT
        while len(got) < len(payloads) and time.monotonic() < end:
            timeout = rng.choice([0.0001, 0.001, 0.003])
            if anyio_backend:
                with anyio.move_on_after(timeout) as scope:
                    got += await one()
                cancels += scope.cancelled_caught
                continue
            try:
                got += await asyncio.wait_for(one(), timeout)
            except asyncio.TimeoutError:
                cancels += 1
        await conn.close()
        return got, cancels

    if anyio_backend:
        import anyio

        got, cancels = anyio.run(main, backend=anyio_backend)
    else:
        got, cancels = run_async(transport, main)
    thread.join(TIMEOUT)
    assert not errors
    assert got == payloads
    assert cancels > 10  # many reads were cancelled while waiting


def test_cancelled_datagram_reads_lose_nothing(loop_kind: str) -> None:
    """The datagram endpoint waits with the same ReadWaiter: cancelled recv() calls in a
    row, then every datagram still comes, in order."""
    from framekit.asyncio.datagram import open_datagram

    async def main() -> Tuple[List[bytes], int]:
        endpoint = await open_datagram("udp://127.0.0.1:0", codec=framekit.LengthPrefixed(4))
        address = endpoint.local_address
        got: List[bytes] = []
        cancels = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:

            async def send() -> None:
                for i in range(100):
                    peer.sendto(frame(b"%02d" % i), address)
                    await asyncio.sleep(0.001)

            sender = asyncio.ensure_future(send())
            end = time.monotonic() + TIMEOUT
            while len(got) < 100 and time.monotonic() < end:
                try:
                    got.append(await asyncio.wait_for(endpoint.recv(), 0.0005))
                except asyncio.TimeoutError:
                    cancels += 1
            await sender
        await endpoint.close()
        return got, cancels

    got, cancels = run_async(loop_kind, main)
    assert got == [b"%02d" % i for i in range(100)]
    assert cancels > 10


def test_a_timed_out_read_loses_nothing_and_the_next_one_works(transport: str) -> None:
    """idle_timeout and frame_timeout on a client connection: TimeoutError, then the
    frame arrives and the next read (recv or recv_batch) returns it."""
    head = frame(b"half and half")
    wire = [frame(b"a"), head[:7], head[7:], frame(b"b") + frame(b"c")]
    gaps = [0.25, 0.0, 0.25, 0.25]
    listener, thread, errors = trickle_server(wire, gaps)
    address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    options = {"idle_timeout": 0.1, "frame_timeout": 0.1}
    codec = framekit.LengthPrefixed(4)

    def expect(got: List[Any]) -> None:
        thread.join(TIMEOUT)
        assert not errors
        messages = [m for g in got if isinstance(g, list) for m in g]
        assert messages == [b"a", b"half and half", b"b", b"c"]
        assert got.count(TimeoutError) >= 3  # before each of the three late pieces

    if transport == "blocking":
        got: List[Any] = []
        with framekit.connect(address, codec, **options) as conn:
            while sum(len(g) for g in got if isinstance(g, list)) < 4:
                try:
                    got.append(conn.recv_batch() if len(got) % 2 else [conn.recv()])
                except TimeoutError:
                    got.append(TimeoutError)
        expect(got)
        return

    async def main() -> List[Any]:
        if transport.startswith("anyio"):
            fan = importlib.import_module("framekit.anyio")
            conn = await fan.connect(address, codec, **options)
        else:
            conn = await framekit.asyncio.connect(address, codec, **options)
        got: List[Any] = []
        try:
            while sum(len(g) for g in got if isinstance(g, list)) < 4:
                try:
                    got.append(await conn.recv_batch() if len(got) % 2 else [await conn.recv()])
                except TimeoutError:
                    got.append(TimeoutError)
        finally:
            await conn.close()
        return got

    if transport.startswith("anyio"):
        import anyio

        expect(anyio.run(main, backend=transport.split("-")[1]))
    else:
        expect(run_async(transport, main))


# --- 6. bugs found (fixed) -----------------------------------------------------------------


def test_no_empty_batch_when_an_error_follows_a_stream(transport: str) -> None:
    """A frame read as a stream, then (in the same read) a frame above max_stream_size
    and a good one: recv_batch() gives FrameTooLarge, then [b"after"]; never []."""
    results: queue.Queue[Any] = queue.Queue()
    if transport == "blocking":

        def handler(conn: Any) -> None:
            with conn.recv_stream() as stream:
                got: List[Any] = [len(b"".join(stream))]
            for _ in range(2):
                try:
                    got.append(conn.recv_batch())
                except FrameTooLarge as exc:
                    got.append(type(exc))
            results.put(got)

    else:

        async def handler(conn: Any) -> None:
            async with await conn.recv_stream() as stream:
                got: List[Any] = [len(b"".join([c async for c in stream]))]
            for _ in range(2):
                try:
                    got.append(await conn.recv_batch())
                except FrameTooLarge as exc:
                    got.append(type(exc))
            results.put(got)

    codec = framekit.LengthPrefixed(4, max_frame_size=100)
    server = Running(transport, handler, codec, max_stream_size=10_000)
    with server, server.connect() as sock:
        sock.sendall(frame(b"s" * 2000) + frame(b"x" * 50_000) + frame(b"after"))
        got = get(results)
    assert got == [2000, FrameTooLarge, [b"after"]]


@pytest.mark.parametrize("read", ["recv_batch", "recv"])
def test_no_empty_batch_when_an_error_arrives_while_a_batch_is_in_use(
    loop_kind: str, read: str
) -> None:
    results: queue.Queue[Any] = queue.Queue()
    arrived = threading.Event()

    async def handler(conn: Any) -> None:
        got: List[Any] = [await conn.recv()]  # b"1": b"2" still waits in the batch
        while not arrived.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the bad frame is read meanwhile
        for _ in range(3):
            try:
                got.append(await conn.recv_batch() if read == "recv_batch" else [await conn.recv()])
            except Exception as exc:
                got.append(type(exc))
        results.put(got)

    codec = framekit.LengthPrefixed(4, max_frame_size=100)
    with Running(loop_kind, handler, codec) as server, server.connect() as sock:
        sock.sendall(frame(b"1") + frame(b"2"))
        time.sleep(0.1)
        sock.sendall(frame(b"x" * 500) + frame(b"3"))
        arrived.set()
        got = get(results)
    assert got == [b"1", [b"2"], FrameTooLarge, [b"3"]]


@pytest.mark.parametrize(
    "kind",
    [
        "blocking",
        "asyncio",
        "uvloop",
        "anyio-asyncio",
        "anyio-trio",
    ],
)
def test_replies_to_a_batch_cut_short_are_not_held(kind: str) -> None:
    """A batch that ends before a frame that does not deserialize: the replies sent to it
    one by one reach the peer while the handler does something slow, as for any batch
    (README: blocking and anyio write each at once, asyncio at the end of the iteration)."""
    check_transport(kind)
    release = threading.Event()
    if kind == "blocking":

        def handler(conn: Any) -> None:
            for m in conn.recv_batch():
                conn.send({"re": m})
            release.wait(TIMEOUT)

    else:
        sleep = sleeper(kind)

        async def handler(conn: Any) -> None:
            for m in await conn.recv_batch():
                await conn.send({"re": m})
            while not release.is_set():
                await sleep(0.01)

    codec = framekit.LengthPrefixed(4)
    with Running(kind, handler, codec, serializer=JSON) as server:
        try:
            with server.connect() as sock:
                sock.sendall(frame(b"1") + frame(b"not json") + frame(b"2"))
                assert read_frames(sock, 1, timeout=1.0) == [b'{"re":1}']
        finally:
            release.set()
