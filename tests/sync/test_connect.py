"""connect() to every stream transport: addresses, IPv6, Unix, TLS."""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any, Callable, Tuple

import pytest

import framekit
from framekit.sync import FramedSocket

from ..conftest import needs_ipv6
from .helpers import TIMEOUT, LogWatcher, connect_to, echo, join, running, start_thread

Contexts = Tuple[ssl.SSLContext, ssl.SSLContext]


@pytest.mark.parametrize(
    ("address", "bad_part"),
    [
        ("tcp://127.0.0.1", "missing port"),
        ("tcp://:5001", "missing host"),
        ("tcp://127.0.0.1:99999", "99999"),
        ("tcp://127.0.0.1:http", "'http'"),
        ("ftp://127.0.0.1:21", "'ftp'"),
        ("tcp://::1:5001", "brackets"),
        ("unix://relative.sock", "absolute"),
        ("unix:@", "empty abstract"),
        (("127.0.0.1", "80"), "'80'"),
    ],
)
def test_bad_address(address: Any, bad_part: str) -> None:
    with pytest.raises(ValueError, match=bad_part):
        framekit.connect(address)


def _echo_once(address: Any, codec: Any, **kwargs: Any) -> None:
    with framekit.connect(address, codec, timeout=TIMEOUT, **kwargs) as conn:
        assert isinstance(conn, FramedSocket)
        conn.send(b"over " + str(address).encode())
        assert conn.recv() == b"over " + str(address).encode()


@pytest.mark.parametrize(
    "bind",
    [
        "tcp://127.0.0.1:0",
        "tcp://localhost:0",
        pytest.param("tcp://[::1]:0", marks=needs_ipv6),
        "unix://{dir}/s.sock",
        "unix:@framekit-test-{pid}",
    ],
)
def test_stream_transports(bind: str, sock_dir: str, LP: Callable[..., Any]) -> None:
    address = bind.format(dir=sock_dir, pid=os.getpid())
    with running(address, echo, LP(4)) as server:
        _echo_once(server.address, LP(4))


def test_tuple_address_means_tcp(LP: Callable[..., Any]) -> None:
    with running(("127.0.0.1", 0), echo, LP(4)) as server:
        _echo_once(("127.0.0.1", server.socket.getsockname()[1]), LP(4))


def test_timeout_stays_on_the_socket() -> None:
    with running("tcp://127.0.0.1:0", echo) as server:
        with framekit.connect(server.address, timeout=2.5) as conn:
            assert conn.socket.gettimeout() == 2.5
        with framekit.connect(server.address) as conn:
            assert conn.socket.gettimeout() is None


def test_refused_names_the_address() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError, match=f"tcp://127.0.0.1:{port}"):
        framekit.connect(f"tcp://127.0.0.1:{port}", timeout=TIMEOUT)


def test_missing_unix_socket_names_the_path(sock_dir: str) -> None:
    address = f"unix://{sock_dir}/nobody.sock"
    with pytest.raises(FileNotFoundError, match=address):
        framekit.connect(address, timeout=TIMEOUT)


def test_option_that_does_not_fit_the_address(tls_contexts: Contexts) -> None:
    with pytest.raises(ValueError, match="max_datagram_size"):
        framekit.connect("tcp://127.0.0.1:1", max_datagram_size=100)
    with pytest.raises(ValueError, match="TLS is not available for datagrams"):
        framekit.connect("udp://127.0.0.1:1", ssl=tls_contexts[1])
    with pytest.raises(TypeError, match="SSLContext"):
        framekit.connect("tls://127.0.0.1:1", ssl=True)  # type: ignore[arg-type]


# --- TLS ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bind",
    ["tls://127.0.0.1:0", "tls://localhost:0", pytest.param("tls://[::1]:0", marks=needs_ipv6)],
)
def test_tls(bind: str, tls_contexts: Contexts, LP: Callable[..., Any]) -> None:
    server_ctx, client_ctx = tls_contexts
    with running(bind, echo, LP(4), ssl=server_ctx) as server:
        if "localhost" in bind:
            assert server.address.startswith("tls://localhost:")  # verified by name
        with connect_to(server, LP(4), ssl=client_ctx) as conn:
            assert isinstance(conn, FramedSocket) and isinstance(conn.socket, ssl.SSLSocket)
            big = os.urandom(1 << 20)
            conn.send(b"small")
            conn.send(big)
            conn.send_many([b"a", b"b"])
            assert [conn.recv() for _ in range(4)] == [b"small", big, b"a", b"b"]


def test_tls_over_unix_socket(sock_dir: str, tls_contexts: Contexts) -> None:
    server_ctx, client_ctx = tls_contexts
    with running(f"unix://{sock_dir}/tls.sock", echo, ssl=server_ctx) as server:
        _echo_once(server.address, None, ssl=client_ctx, server_hostname="localhost")


def test_tls_verifies_by_default(tls_contexts: Contexts, logs: LogWatcher) -> None:
    """Without ssl=, the system trust store is used: the test CA is not in it."""
    with running("tls://127.0.0.1:0", echo, ssl=tls_contexts[0]) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            connect_to(server)
        logs.wait_for("TLS error")


def test_slow_tls_client_does_not_block_others(tls_contexts: Contexts, logs: LogWatcher) -> None:
    """The handshake runs in the connection's thread, not in the accept loop."""
    server_ctx, client_ctx = tls_contexts
    with running("tls://127.0.0.1:0", echo, ssl=server_ctx) as server:
        host, port = server.socket.getsockname()
        with socket.create_connection((host, port), timeout=TIMEOUT) as silent:
            _echo_once(server.address, None, ssl=client_ctx)
            with socket.create_connection((host, port), timeout=TIMEOUT) as garbage:
                garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
                logs.wait_for("TLS error")
            _echo_once(server.address, None, ssl=client_ctx)
            assert silent.fileno() != -1  # still stuck in its handshake at shutdown


def test_tls_handshake_timeout(tls_contexts: Contexts, logs: LogWatcher) -> None:
    server_ctx = tls_contexts[0]
    with running("tls://127.0.0.1:0", echo, ssl=server_ctx, handshake_timeout=0.1) as server:
        silent = socket.create_connection(server.socket.getsockname(), timeout=TIMEOUT)
        with silent:
            logs.wait_for("the TLS handshake took more than 0.1 s")
            assert silent.recv(1) == b""  # the server gave up on it


def test_shutdown_with_tls_clients_connected(tls_contexts: Contexts, logs: LogWatcher) -> None:
    server_ctx, client_ctx = tls_contexts
    server = framekit.serve("tls://127.0.0.1:0", echo, ssl=server_ctx).start()
    clients = [connect_to(server, ssl=client_ctx) for _ in range(3)]
    try:
        for client in clients:
            client.send(b"ping")
            assert client.recv() == b"ping"
        server.shutdown()  # each handler is blocked reading a TLS record
        for client in clients:
            with pytest.raises((ConnectionError, ssl.SSLError)):
                client.recv()
    finally:
        for client in clients:
            client.close()
    assert not logs.find("still running")


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        (b"\x00\x00\x00\x05hello", framekit.ConnectionClosed),  # cut between frames
        (b"\x00\x00\x00\x05hello\x00\x00\x00\x09cut", framekit.IncompleteFrame),  # inside one
    ],
    ids=["between-frames", "inside-a-frame"],
)
def test_tls_close_without_close_notify(tls_contexts: Contexts, sent: bytes, error: type) -> None:
    """A TCP close without close_notify (ragged EOF) is an EOF, as documented.

    Python's own SSLSocket.close() sends no close_notify either; only the
    framing tells a cut inside a frame.
    """
    server_ctx, client_ctx = tls_contexts
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve_once() -> None:
            raw, _ = listener.accept()
            with server_ctx.wrap_socket(raw, server_side=True) as tls:
                tls.sendall(sent)
                socket.socket.shutdown(tls, socket.SHUT_RDWR)  # FIN, no close_notify

        thread = start_thread(serve_once)
        port = listener.getsockname()[1]
        with framekit.connect(f"tls://127.0.0.1:{port}", ssl=client_ctx, timeout=TIMEOUT) as conn:
            assert conn.recv() == b"hello"
            with pytest.raises(error):
                conn.recv()
        join(thread)
