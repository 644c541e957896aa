"""serve()/Server over TCP and Unix sockets: handlers, concurrency, faults, shutdown."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import struct
import threading
from typing import Any, Callable, List

import pytest

import framekit
from framekit import serializers
from framekit.sync import server as server_module

from .helpers import TIMEOUT, LogWatcher, connect_to, echo, join, running, start_thread


class Seen:
    """Frames a handler saw, from any thread, with a way to wait for them."""

    def __init__(self) -> None:
        self.items: List[Any] = []
        self._cond = threading.Condition()

    def add(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, item: Any) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: item in self.items, TIMEOUT), self.items


def wait_closed(sock: socket.socket) -> None:
    """Read until the server closes this connection (EOF or reset)."""
    sock.settimeout(TIMEOUT)
    for _ in range(1000):
        try:
            if not sock.recv(65536):
                return
        except ConnectionResetError:
            return
    pytest.fail("the server kept the connection open")


@pytest.fixture(params=["tcp", "unix"])
def address(request: pytest.FixtureRequest, sock_dir: str) -> str:
    """A server address to bind: TCP on loopback or a Unix socket file."""
    if request.param == "tcp":
        return "tcp://127.0.0.1:0"
    return f"unix://{sock_dir}/server.sock"


def test_callable_handler(address: str, LP: Callable[..., Any]) -> None:
    with running(address, echo, LP(4)) as server, connect_to(server, LP(4)) as conn:
        conn.send(b"hello")
        conn.send_many([b"a", b"b"])
        assert [conn.recv() for _ in range(3)] == [b"hello", b"a", b"b"]


def test_address_has_the_real_port(LP: Callable[..., Any]) -> None:
    with framekit.serve(("127.0.0.1", 0), echo, LP(4)) as server:
        assert server.address.startswith("tcp://127.0.0.1:")
        assert not server.address.endswith(":0")
        assert server.socket.getsockname()[1] == int(server.address.rsplit(":", 1)[1])
        assert server.address in repr(server)


def test_frame_handler_lifecycle(address: str, LP: Callable[..., Any]) -> None:
    events = Seen()

    class Handler(framekit.FrameHandler):
        def setup(self) -> None:
            events.add(("setup", type(self.conn).__name__, self.server is server))

        def handle_frame(self, frame: Any, address: Any = None) -> Any:
            events.add(("frame", frame))
            return None if frame == b"quiet" else frame.upper()

        def finish(self) -> None:
            events.add("finish")

    with running(address, Handler, LP(4)) as server:
        with connect_to(server, LP(4)) as conn:
            conn.send_many([b"abc", b"quiet", b"def"])
            assert conn.recv() == b"ABC"
            assert conn.recv() == b"DEF"  # no reply to "quiet"
        events.wait_for("finish")
    assert events.items == [
        ("setup", "FramedSocket", True),
        ("frame", b"abc"),
        ("frame", b"quiet"),
        ("frame", b"def"),
        "finish",
    ]


@pytest.mark.parametrize("batched", [False, True])
def test_frame_handler_answers_a_pipelined_read_in_order_with_one_write(
    LP: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, batched: bool
) -> None:
    served: List[Any] = []
    writes: List[Any] = []
    write = framekit.FramedSocket._write_parts

    def counted(conn: Any, parts: List[Any]) -> None:
        writes.append(conn)
        write(conn, parts)

    monkeypatch.setattr(framekit.FramedSocket, "_write_parts", counted)

    class Handler(framekit.FrameHandler):
        batch_replies = batched

        def setup(self) -> None:
            served.append(self.conn)

        def handle_frame(self, frame: Any, address: Any = None) -> Any:
            return frame.upper()

    payloads = [b"frame %d" % i for i in range(300)]
    with running("tcp://127.0.0.1:0", Handler, LP(4)) as server, connect_to(server, LP(4)) as conn:
        conn.send_many(payloads)  # one write: the server reads it in one or a few reads
        assert [conn.recv() for _ in payloads] == [p.upper() for p in payloads]
    server_writes = [c for c in writes if c is served[0]]
    assert 1 <= len(server_writes) <= 5, len(server_writes)  # a write per read, not per frame


@pytest.mark.parametrize("batched", [False, True])
def test_frame_handler_answers_the_frames_before_one_that_fails(
    LP: Callable[..., Any], logs: LogWatcher, batched: bool
) -> None:
    """A batch's replies go out together, but an exception in handle_frame, or a reply that
    cannot be framed, still lets the replies to the frames before it reach the peer."""

    class Handler(framekit.FrameHandler):
        batch_replies = batched

        def handle_frame(self, frame: Any, address: Any = None) -> Any:
            if frame == b"raise":
                raise RuntimeError("handler bug")
            if frame == b"huge":
                return b"x" * 2000  # above the server codec's max_frame_size
            return frame

    with running("tcp://127.0.0.1:0", Handler, LP(4, max_frame_size=1000)) as server:
        for bad in (b"raise", b"huge"):
            with connect_to(server, LP(4, max_frame_size=4000)) as conn:
                conn.send_many([b"one", b"two", bad, b"never"])
                assert [conn.recv(), conn.recv()] == [b"one", b"two"]
                with pytest.raises((ConnectionError, framekit.ConnectionClosed)):
                    conn.recv()
    logs.wait_for("handler failed", level=40)


def test_frame_handler_must_override_handle_frame(logs: LogWatcher) -> None:
    with running("tcp://127.0.0.1:0", framekit.FrameHandler) as server, connect_to(server) as conn:
        conn.send(b"x")
        logs.wait_for("handler failed", level=40)
    assert "must override handle_frame" in str(logs.find("handler failed")[0].exc_info)


@pytest.mark.parametrize("batched", [False, True])
def test_serializer(address: str, LP: Callable[..., Any], logs: LogWatcher, batched: bool) -> None:
    class Adder(framekit.FrameHandler):
        batch_replies = batched

        def handle_frame(self, frame: Any, address: Any = None) -> Any:
            return {"sum": sum(frame["numbers"])}

    json = serializers.JSON
    server = framekit.serve(address, Adder, LP(4), serializer=json).start()
    with server, connect_to(server, LP(4), serializer=json) as conn:
        conn.send({"numbers": [1, 2, 3]})
        assert conn.recv() == {"sum": 6}
        conn.socket.sendall(LP(4).encode(b"not json"))
        logs.wait_for("skipping a frame")
        conn.send({"numbers": [4]})  # the connection survived the bad frame
        assert conn.recv() == {"sum": 4}


def test_fifty_concurrent_clients(address: str, LP: Callable[..., Any]) -> None:
    """All 50 are connected at once; each gets its own answers."""
    with running(address, echo, LP(4)) as server:
        clients = [connect_to(server, LP(4)) for _ in range(50)]
        try:
            for i, client in enumerate(clients):
                client.send_many([b"%d-%d" % (i, k) for k in range(20)])
            for i, client in enumerate(clients):
                assert [client.recv() for _ in range(20)] == [b"%d-%d" % (i, k) for k in range(20)]
            assert server.active_connections == 50
        finally:
            for client in clients:
                client.close()


def test_max_connections(LP: Callable[..., Any], logs: LogWatcher) -> None:
    with running("tcp://127.0.0.1:0", echo, LP(4), max_connections=2) as server:
        first = connect_to(server, LP(4))
        second = connect_to(server, LP(4))
        for conn in (first, second):
            conn.send(b"in")
            assert conn.recv() == b"in"
        third = connect_to(server, LP(4))
        with third, pytest.raises(ConnectionError):  # closed at once, not left hanging
            third.recv()
        logs.wait_for("max_connections (2) reached")
        first.close()
        # Once the first is gone its slot is free again (its thread ends shortly).
        for _ in range(100):
            with connect_to(server, LP(4)) as fourth:
                try:
                    fourth.send(b"again")
                    if fourth.recv() == b"again":
                        break
                except ConnectionError:
                    continue
        else:
            pytest.fail("the freed slot was never reused")
        second.close()


# --- faults: each client misbehaves in its own way -------------------------


def oversized(sock: socket.socket, codec: Any, seen: Seen) -> None:
    sock.sendall(codec.encode(b"before") + codec.header(5000, max_frame_size=1 << 20) + b"x" * 100)


def corrupted_header(sock: socket.socket, codec: Any, seen: Seen) -> None:
    sock.sendall(codec.encode(b"before") + b"\xff" * 8 + codec.encode(b"after"))


def garbage(sock: socket.socket, codec: Any, seen: Seen) -> None:
    sock.sendall(codec.encode(b"before") + b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")


def disconnect_mid_frame(sock: socket.socket, codec: Any, seen: Seen) -> None:
    sock.sendall(codec.encode(b"before") + codec.encode(b"0123456789")[:12])
    sock.close()


def reset_mid_frame(sock: socket.socket, codec: Any, seen: Seen) -> None:
    sock.sendall(codec.encode(b"before") + codec.encode(b"0123456789")[:12])
    seen.wait_for(b"before")  # a reset may discard what the server has not read yet
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def handler_exception(sock: socket.socket, codec: Any, seen: Seen) -> None:
    sock.sendall(codec.encode_many([b"before", b"boom", b"after"]))


FAULTS = [
    (oversized, "bad input: FrameTooLarge: frame of 5008 bytes exceeds max_frame_size 1024"),
    (corrupted_header, "bad input: CorruptedFrame: negative length field"),
    (garbage, "bad input: FrameTooLarge: frame of"),
    (disconnect_mid_frame, "bad input: IncompleteFrame: stream ended inside a 18-byte frame"),
    (reset_mid_frame, "lost"),
    (handler_exception, "handler failed"),
]


@pytest.mark.parametrize(("fault", "logged"), FAULTS, ids=[f.__name__ for f, _ in FAULTS])
def test_fault_closes_only_that_connection(
    fault: Callable[[socket.socket, Any, Seen], None],
    logged: str,
    LP: Callable[..., Any],
    logs: LogWatcher,
) -> None:
    codec = LP(8, max_frame_size=1024)
    seen = Seen()

    def handler(conn: Any) -> None:
        for frame in conn:
            seen.add(frame)
            if frame == b"boom":
                raise RuntimeError("the handler broke")
            if frame != b"before":  # a reply to a client that hung up would reset it
                conn.send(frame)

    with running("tcp://127.0.0.1:0", handler, codec) as server:
        host, port = server.socket.getsockname()
        with connect_to(server, codec) as bystander:
            bystander.send(b"hi")
            assert bystander.recv() == b"hi"
            bad = socket.create_connection((host, port), timeout=TIMEOUT)
            with bad:
                fault(bad, codec, seen)
                # A reset is the network's doing (INFO); anything else is the client's.
                least = logging.INFO if logged == "lost" else logging.WARNING
                record = logs.wait_for(logged, least)
                if bad.fileno() != -1:
                    wait_closed(bad)
            assert record.levelno >= least
            assert "127.0.0.1:" in record.getMessage()  # names the client
            # Frames that arrived whole before the bad bytes were handled.
            assert b"before" in seen.items
            assert b"after" not in seen.items
            # The server keeps serving the other client, and new ones.
            bystander.send(b"still there?")
            assert bystander.recv() == b"still there?"
        with connect_to(server, codec) as newcomer:
            newcomer.send(b"new")
            assert newcomer.recv() == b"new"


def test_handler_exception_is_logged_with_traceback(logs: LogWatcher) -> None:
    def handler(conn: Any) -> None:
        conn.recv()
        raise KeyError("no such thing")

    with running("tcp://127.0.0.1:0", handler) as server, connect_to(server) as conn:
        conn.send(b"x")
        record = logs.wait_for("handler failed", level=40)
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_half_close(address: str, LP: Callable[..., Any]) -> None:
    def count(conn: Any) -> None:
        frames = list(conn)  # until the client shuts down its side
        conn.send(b"%d frames" % len(frames))

    with running(address, count, LP(4)) as server, connect_to(server, LP(4)) as conn:
        conn.send_many([b"x"] * 7)
        conn.socket.shutdown(socket.SHUT_WR)
        assert conn.recv() == b"7 frames"
        with pytest.raises(framekit.ConnectionClosed):
            conn.recv()


def test_one_mib_frames_through_a_server(address: str, LP: Callable[..., Any]) -> None:
    payloads = [os.urandom(1 << 20) for _ in range(2)]
    with running(address, echo, LP(4)) as server, connect_to(server, LP(4)) as conn:
        thread = start_thread(lambda: [conn.send(p) for p in payloads])
        assert [conn.recv() for _ in payloads] == payloads
        join(thread)


# --- lifecycle ---------------------------------------------------------------


def test_shutdown_with_clients_connected(address: str, logs: LogWatcher) -> None:
    started = Seen()

    def handler(conn: Any) -> None:
        started.add(conn)
        for frame in conn:  # blocked in recv until shutdown wakes it
            conn.send(frame)

    server = framekit.serve(address, handler).start()
    clients = [connect_to(server) for _ in range(5)]
    try:
        for client in clients:
            client.send(b"ping")
            assert client.recv() == b"ping"
        assert server.active_connections == 5
        server.shutdown()
        assert server.active_connections == 0
        for client in clients:
            with pytest.raises(ConnectionError):
                client.recv()
        with pytest.raises(OSError):
            connect_to(server)
    finally:
        for client in clients:
            client.close()
    assert not logs.find("still running")
    server.shutdown()  # twice: harmless


def test_shutdown_from_a_handler(LP: Callable[..., Any]) -> None:
    threads = []

    class Stopper(framekit.FrameHandler):
        def handle_frame(self, frame: Any, address: Any = None) -> Any:
            threads.append(threading.current_thread())
            self.server.shutdown()
            return b"bye"

    server = framekit.serve("tcp://127.0.0.1:0", Stopper, LP(4)).start()
    with connect_to(server, LP(4)) as conn:
        conn.send(b"stop")
        # The handler's own thread is not joined by itself: no deadlock.
        with pytest.raises(ConnectionError):
            conn.recv()
            conn.recv()
    join(server._thread)  # type: ignore[arg-type]
    join(threads[0])  # shutdown() could not join the thread it ran in


def test_serve_forever_in_caller_thread() -> None:
    server = framekit.serve("tcp://127.0.0.1:0", echo)
    thread = start_thread(server.serve_forever)
    with connect_to(server) as conn:
        conn.send(b"x")
        assert conn.recv() == b"x"
    with pytest.raises(RuntimeError, match="already serving"):
        server.serve_forever()
    server.shutdown()
    join(thread)
    server.serve_forever()  # returns at once once shut down


def test_start_twice_is_an_error() -> None:
    with framekit.serve("tcp://127.0.0.1:0", echo) as server:
        server.start()
        with pytest.raises(RuntimeError, match="already started"):
            server.start()


def test_shutdown_before_serving_closes_the_socket() -> None:
    server = framekit.serve("tcp://127.0.0.1:0", echo)
    server.shutdown()
    assert server.socket.fileno() == -1


def test_port_in_use() -> None:
    with framekit.serve("tcp://127.0.0.1:0", echo) as server:
        with pytest.raises(OSError, match="address in use") as info:
            framekit.serve(server.address, echo)
        assert server.address in str(info.value)


def test_bad_arguments(tls_contexts: Any) -> None:
    with pytest.raises(ValueError, match="unknown scheme"):
        framekit.serve("http://127.0.0.1:0", echo)
    with pytest.raises(TypeError, match="callable"):
        framekit.serve("tcp://127.0.0.1:0", b"not a handler")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_connections"):
        framekit.serve("tcp://127.0.0.1:0", echo, max_connections=0)
    with pytest.raises(ValueError, match="max_connections is for stream"):
        framekit.serve("udp://127.0.0.1:0", echo, max_connections=3)
    with pytest.raises(ValueError, match="max_datagram_size"):
        framekit.serve("tcp://127.0.0.1:0", echo, max_datagram_size=100)
    with pytest.raises(ValueError, match="needs ssl="):
        framekit.serve("tls://127.0.0.1:0", echo)
    with pytest.raises(ValueError, match="TLS is not available for datagrams"):
        framekit.serve("udp://127.0.0.1:0", echo, ssl=tls_contexts[0])


def test_shutdown_wakes_a_handler_blocked_in_send(logs: LogWatcher) -> None:
    """A client that never reads fills the socket buffers; shutdown still ends its thread."""
    sending = Seen()

    def flood(conn: Any) -> None:
        big = b"x" * (1 << 20)
        for i in range(1000):
            conn.send(big)
            sending.add(i)

    server = framekit.serve("tcp://127.0.0.1:0", flood).start()
    with socket.create_connection(server.socket.getsockname(), timeout=TIMEOUT) as lazy:
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sending.wait_for(0)  # the first frames went out; soon it blocks in send
        server.shutdown()
    assert server.active_connections == 0
    assert not logs.find("still running")


def test_tcp_nodelay_on_both_ends() -> None:
    def report(conn: Any) -> None:
        conn.recv()
        conn.send(b"%d" % conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    with running("tcp://127.0.0.1:0", report) as server, connect_to(server) as conn:
        assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        conn.send(b"?")
        assert conn.recv() == b"1"


# --- regressions -------------------------------------------------------------


def test_accept_loop_survives_a_socket_it_cannot_set_up(
    monkeypatch: pytest.MonkeyPatch, logs: LogWatcher
) -> None:
    """macOS fails TCP_NODELAY with EINVAL on a connection reset before accept."""
    real = server_module.set_nodelay
    calls = []

    def flaky(sock: socket.socket) -> None:
        calls.append(sock)
        if len(calls) == 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        real(sock)

    monkeypatch.setattr(server_module, "set_nodelay", flaky)
    with running("tcp://127.0.0.1:0", echo) as server:
        with connect_to(server) as first, pytest.raises(ConnectionError):
            first.recv()  # dropped: closed at once
        logs.wait_for("cannot set it up: [Errno 22] Invalid argument")
        with connect_to(server) as second:
            second.send(b"still accepting")
            assert second.recv() == b"still accepting"
        assert calls[0].fileno() == -1  # the dropped socket was closed


def test_accept_loop_survives_an_unexpected_error(
    monkeypatch: pytest.MonkeyPatch, logs: LogWatcher
) -> None:
    real = server_module._Client
    calls = []

    def flaky(*args: Any) -> Any:
        calls.append(args[0])
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(*args)

    monkeypatch.setattr(server_module, "_Client", flaky)
    with running("tcp://127.0.0.1:0", echo) as server:
        with connect_to(server) as first, pytest.raises(ConnectionError):
            first.recv()
        record = logs.wait_for("accepting a connection failed", logging.ERROR)
        assert record.exc_info is not None and "a bug" in str(record.exc_info[1])
        with connect_to(server) as second:
            second.send(b"still accepting")
            assert second.recv() == b"still accepting"
        assert calls[0].fileno() == -1


def _wake_pair_closed(server: Any) -> bool:
    return bool(server._wake_r.fileno() == -1 and server._wake_w.fileno() == -1)


def test_shutdown_from_a_datagram_handler_still_replies() -> None:
    def stop(frame: bytes, address: Any) -> bytes:
        server.shutdown()
        return b"bye"

    server = framekit.serve("udp://127.0.0.1:0", stop).start()
    with connect_to(server) as conn:
        conn.send(b"stop")
        assert conn.recv() == b"bye"
    join(server._thread)  # type: ignore[arg-type]
    assert server.socket.fileno() == -1
    assert _wake_pair_closed(server)


def test_shutdown_from_a_signal_handler_in_the_serving_thread() -> None:
    """serve_forever() in the main thread, shutdown() from a signal handler there."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread")
    server = framekit.serve("tcp://127.0.0.1:0", echo)
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: server.shutdown())
    try:
        with connect_to(server) as conn:
            main = threading.main_thread().ident
            assert main is not None

            def poke() -> None:
                conn.send(b"x")
                assert conn.recv() == b"x"  # the loop is serving
                signal.pthread_kill(main, signal.SIGUSR1)

            thread = start_thread(poke)
            server.serve_forever()  # returns once the handler shut it down
            join(thread)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert server.socket.fileno() == -1
    assert _wake_pair_closed(server)


def test_loop_that_outlives_the_shutdown_timeout_closes_its_sockets(logs: LogWatcher) -> None:
    release = threading.Event()
    handling = threading.Event()

    def slow(frame: bytes, address: Any) -> bytes:
        handling.set()
        release.wait(TIMEOUT)
        return b"late"

    server = framekit.serve("udp://127.0.0.1:0", slow).start()
    with connect_to(server) as conn:
        conn.send(b"hi")
        assert handling.wait(TIMEOUT)
        server.shutdown(timeout=0.1)  # the loop is still in the handler
        assert server.socket.fileno() != -1  # not closed under the loop's feet
        release.set()
        assert conn.recv() == b"late"
    join(server._thread)  # type: ignore[arg-type]
    assert server.socket.fileno() == -1
    assert _wake_pair_closed(server)


class Py39Timeout(OSError):
    """``socket.timeout`` as Python 3.9 has it: not ``TimeoutError``."""


def test_python39_socket_timeout_in_a_handler_is_a_lost_connection(
    monkeypatch: pytest.MonkeyPatch, logs: LogWatcher
) -> None:
    monkeypatch.setattr(socket, "timeout", Py39Timeout)

    def times_out(conn: Any) -> None:
        conn.recv()
        raise Py39Timeout("timed out")

    with running("tcp://127.0.0.1:0", times_out) as server, connect_to(server) as conn:
        conn.send(b"x")
        logs.wait_for("timed out")
    assert not logs.find("handler failed")


def test_max_connections_refusal_is_a_connection_error_after_sending(
    logs: LogWatcher,
) -> None:
    """The client sent data the server never read: a reset, not a clean close."""
    with (
        running("tcp://127.0.0.1:0", echo, max_connections=1) as server,
        connect_to(server) as first,
    ):
        first.send(b"in")
        assert first.recv() == b"in"
        for _ in range(3):
            with connect_to(server) as extra, pytest.raises(ConnectionError):
                extra.send(b"hello")
                extra.recv()
