"""Unix socket files: permissions, cleanup, stale files, live servers, abstract names."""

from __future__ import annotations

import errno
import os
import socket
import stat
import time
from typing import Any, Callable

import pytest

import framekit

from ..conftest import LIVE_UNIX_SOCKETS, live_unix_socket
from .helpers import connect_to, echo, running


@pytest.fixture(params=["unix", "unixgram"])
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _handler(scheme: str) -> Any:
    return echo if scheme == "unix" else (lambda frame, address: frame)


def test_file_mode_is_0600_and_removed_at_shutdown(scheme: str, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s.sock")
    old_umask = os.umask(0)  # even a permissive umask gives 0600
    try:
        server = framekit.serve(f"{scheme}://{path}", _handler(scheme))
    finally:
        os.umask(old_umask)
    with server:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert _mode(path) == 0o600
        assert server.address == f"{scheme}://{path}"
    assert not os.path.exists(path)


def test_unix_mode(scheme: str, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s.sock")
    with framekit.serve(f"{scheme}://{path}", _handler(scheme), unix_mode=0o660):
        assert _mode(path) == 0o660


def test_stale_file_is_replaced(scheme: str, sock_dir: str, LP: Callable[..., Any]) -> None:
    path = os.path.join(sock_dir, "s.sock")
    kind = socket.SOCK_STREAM if scheme == "unix" else socket.SOCK_DGRAM
    dead = socket.socket(socket.AF_UNIX, kind)
    dead.bind(path)
    dead.close()  # the file stays behind, as after a crash
    assert os.path.exists(path)
    server = framekit.serve(f"{scheme}://{path}", _handler(scheme), LP(4)).start()
    with server, connect_to(server, LP(4)) as conn:
        conn.send(b"fresh")
        assert conn.recv() == b"fresh"


def test_live_server_gives_address_in_use(scheme: str, sock_dir: str) -> None:
    address = f"{scheme}://{sock_dir}/s.sock"
    with framekit.serve(address, _handler(scheme)):
        with pytest.raises(OSError, match="address in use") as info:
            framekit.serve(address, _handler(scheme))
        assert info.value.errno == errno.EADDRINUSE
        assert address in str(info.value)


@pytest.mark.parametrize("live", LIVE_UNIX_SOCKETS)
def test_any_live_socket_gives_address_in_use(scheme: str, live: str, sock_dir: str) -> None:
    """Only a refused connect means stale: a live socket of the other type
    (EPROTOTYPE), a connected datagram socket (EPERM) or a full backlog
    (EAGAIN) keeps its file."""
    path = os.path.join(sock_dir, "s.sock")
    with live_unix_socket(path, live):
        inode = os.stat(path).st_ino
        with pytest.raises(OSError, match="address in use") as info:
            framekit.serve(f"{scheme}://{path}", _handler(scheme))
        assert info.value.errno == errno.EADDRINUSE
        assert os.stat(path).st_ino == inode


def test_live_server_file_survives_a_failed_bind(sock_dir: str) -> None:
    address = f"unix://{sock_dir}/s.sock"
    with running(address, echo) as server:
        with pytest.raises(OSError):
            framekit.serve(address, echo)
        with connect_to(server) as conn:
            conn.send(b"still here")
            assert conn.recv() == b"still here"


def test_a_file_that_is_not_a_socket_is_left_alone(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "data.txt")
    with open(path, "w") as f:
        f.write("precious")
    with pytest.raises(OSError, match="not a socket"):
        framekit.serve(f"unix://{path}", echo)
    with open(path) as f:
        assert f.read() == "precious"


def test_a_replaced_file_is_not_removed(sock_dir: str) -> None:
    """At shutdown only the file this server created is removed."""
    path = os.path.join(sock_dir, "s.sock")
    server = framekit.serve(f"unix://{path}", echo)
    os.unlink(path)
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(path)  # another server took the path meanwhile
        server.shutdown()
        assert os.path.exists(path)


def test_abstract_name_has_no_file(scheme: str, sock_dir: str) -> None:
    name = f"framekit-{scheme}-{os.getpid()}"
    with running(f"{scheme}:@{name}", _handler(scheme)) as server:
        assert server.address == f"{scheme}:@{name}"
        assert os.listdir(sock_dir) == []
        with connect_to(server) as conn:
            conn.send(b"abstract")
            assert conn.recv() == b"abstract"


def test_reuse_port_is_for_ip_only(sock_dir: str) -> None:
    with pytest.raises(ValueError, match="reuse_port"):
        framekit.serve(f"unix://{sock_dir}/s.sock", echo, reuse_port=True)


def test_two_servers_on_one_stale_file(
    scheme: str, sock_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another server removes the stale file and binds while this one probes it.

    The probe is refused (the other is not listening yet); this server must not
    remove the other's new file and bind over it.
    """
    path = os.path.join(sock_dir, "s.sock")
    kind = socket.SOCK_STREAM if scheme == "unix" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_UNIX, kind) as dead:
        dead.bind(path)  # the stale file...
    time.sleep(0.05)  # ...from a server long gone (its ctime is clock ticks older)
    other = socket.socket(socket.AF_UNIX, kind)

    class Probe(socket.socket):
        def connect(self, address: Any) -> None:
            try:
                super().connect(address)
            finally:  # meanwhile the other server takes the path
                os.unlink(path)
                other.bind(path)

    monkeypatch.setattr(framekit._sockets.socket, "socket", Probe)
    with other:
        with pytest.raises(OSError, match="address in use") as info:
            framekit.serve(f"{scheme}://{path}", _handler(scheme))
        assert info.value.errno == errno.EADDRINUSE
        assert other.getsockname() == path
        monkeypatch.undo()
        if kind == socket.SOCK_STREAM:
            other.listen(1)
            with socket.socket(socket.AF_UNIX, kind) as client:
                client.connect(path)  # the file still leads to the other server
        else:
            with socket.socket(socket.AF_UNIX, kind) as client:
                client.sendto(b"ping", path)
                assert other.recv(16) == b"ping"


def test_listen_failure_removes_the_unix_file(
    sock_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(sock_dir, "s.sock")

    def failing_listen(self: socket.socket, backlog: int = 0) -> None:
        raise OSError(errno.EOPNOTSUPP, "listen failed")

    monkeypatch.setattr(socket.socket, "listen", failing_listen)
    with pytest.raises(OSError, match="listen failed"):
        framekit.serve(f"unix://{path}", echo)
    assert not os.path.exists(path)
