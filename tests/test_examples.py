"""Every program in examples/ runs and does what its docstring says.

Servers run either as real programs (a subprocess, stopped at the end) or
in-process through the functions the example defines, always on port 0; the
test side talks to them with the codec backend under test.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
from types import ModuleType
from typing import Any, Iterator, List

import pytest

import framekit

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
WAIT = 15.0


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", f"{EXAMPLES}/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Program:
    """``python examples/<name>.py ARGS...`` with stdout read line by line."""

    def __init__(self, name: str, *args: str, stdin: bytes = b"") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, f"{EXAMPLES}/{name}.py", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: List[str] = []
        self._got_line = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.proc.stdin is not None
        self.proc.stdin.write(stdin)
        self.proc.stdin.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._got_line:
                self.lines.append(raw.decode().rstrip("\n"))
                self._got_line.notify_all()

    def listening(self) -> str:
        """Wait for "listening on URL"; return the URL."""
        with self._got_line:
            self._got_line.wait_for(lambda: bool(self.lines), WAIT)
        assert self.lines and self.lines[0].startswith("listening on "), self.lines
        return self.lines[0].split()[-1]

    def finish(self) -> List[str]:
        """Wait for the program to end by itself; return its stdout lines."""
        assert self.proc.wait(WAIT) == 0, self.proc.stderr.read() if self.proc.stderr else ""
        self._reader.join(WAIT)
        return self.lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(WAIT)
        self._reader.join(WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def program() -> Iterator[Any]:
    started: List[Program] = []

    def start(name: str, *args: str, stdin: bytes = b"") -> Program:
        started.append(Program(name, *args, stdin=stdin))
        return started[-1]

    yield start
    for p in started:
        p.stop()


# --- the upper-case echo server and its client ---------------------------------------------


def test_echo_server_and_client(program: Any, LP: Any) -> None:
    url = program("echo_server", "tcp://127.0.0.1:0").listening()
    client = program("echo_client", url, stdin=b"hello\nframed world\nbye\nnot sent\n")
    assert client.finish() == ["HELLO", "FRAMED WORLD"]
    # Two messages in one write, and a long one: answered message by message.
    with framekit.connect(url, LP(4), timeout=5) as conn:
        conn.socket.sendall(LP(4).encode_many([b"one", b"two"]))
        conn.send(b"x" * 200_000)
        assert [conn.recv() for _ in range(3)] == [b"ONE", b"TWO", b"X" * 200_000]


def test_echo_server_asyncio(program: Any, LP: Any, sock_dir: str) -> None:
    url = program("echo_server_asyncio", f"unix://{sock_dir}/echo.sock").listening()
    with framekit.connect(url, LP(4), timeout=5) as conn:
        conn.send_many([b"async", b"io"])
        assert [conn.recv(), conn.recv()] == [b"ASYNC", b"IO"]
    assert program("echo_client", url, stdin=b"too\n").finish() == ["TOO"]


# --- the chat room -------------------------------------------------------------------------


def test_chat_room_broadcasts_to_the_others(LP: Any) -> None:
    chat = load("chat")
    with chat.serve("tcp://127.0.0.1:0").start() as server:
        members = {}
        for name, here in (("alice", "nobody yet"), ("bob", "alice"), ("carol", "alice, bob")):
            members[name] = framekit.connect(server.address, LP(4), timeout=5)
            members[name].send(name.encode())
            assert members[name].recv() == f"* welcome {name}; here: {here}".encode()
        alice, bob, carol = members.values()
        assert alice.recv() == b"* bob joined"
        assert alice.recv() == b"* carol joined"
        assert bob.recv() == b"* carol joined"
        alice.send(b"hi all")
        bob.send(b"hey")
        assert [carol.recv(), carol.recv()] in (
            [b"alice: hi all", b"bob: hey"],
            [b"bob: hey", b"alice: hi all"],
        )
        assert alice.recv() == b"bob: hey"  # never her own message
        assert bob.recv() == b"alice: hi all"
        carol.close()
        assert alice.recv() == bob.recv() == b"* carol left"
        alice.close()
        bob.close()


def test_chat_join_from_a_terminal(program: Any, LP: Any) -> None:
    chat = load("chat")
    with chat.serve("tcp://127.0.0.1:0").start() as server:
        with framekit.connect(server.address, LP(4), timeout=5) as bob:
            bob.send(b"bob")
            assert bob.recv() == b"* welcome bob; here: nobody yet"
            alice = program("chat", "join", server.address, "alice", stdin=b"hello bob\n")
            assert bob.recv() == b"* alice joined"
            assert bob.recv() == b"alice: hello bob"
            assert bob.recv() == b"* alice left"  # her stdin ended
        assert alice.finish() == ["* welcome alice; here: bob"]


# --- typed-message RPC ---------------------------------------------------------------------


@pytest.mark.parametrize("use_msgpack", [False, True], ids=["json", "msgpack"])
def test_rpc(use_msgpack: bool) -> None:
    rpc = load("rpc")
    if use_msgpack and framekit.serializers.MSGPACK is None:
        pytest.skip("msgpack is not installed")
    proto = rpc.protocol(use_msgpack)
    with (
        framekit.serve("tcp://127.0.0.1:0", rpc.Service, **proto).start() as server,
        framekit.connect(server.address, timeout=5, **proto) as conn,
    ):
        assert rpc.call(conn, 1, "add", 2, 3, 4) == 9
        assert rpc.call(conn, 2, "upper", "typed") == "TYPED"
        with pytest.raises(rpc.RemoteError, match="no method 'pow'"):
            rpc.call(conn, 3, "pow", 2, 8)
        assert rpc.call(conn, 4, "add", 1) == 1  # an error costs nothing else


def test_rpc_wire_format(LP: Any) -> None:
    rpc = load("rpc")
    raw = rpc.Typed().encode(b'Q{"id": 7, "method": "add", "params": [1, 2]}')
    assert raw[:5] == b"Q\x00\x00\x00\x2c"  # type byte, then the body's length
    server = framekit.serve("tcp://127.0.0.1:0", rpc.Service, **rpc.protocol())
    port = int(server.address.rsplit(":", 1)[1])
    with server.start(), socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw[:3])  # in two pieces, as TCP may deliver it
        s.sendall(raw[3:])
        reply = LP(4, length_offset=1, strip=0).decoder()
        frames: List[bytes] = []
        for _ in range(100):  # until the whole reply is in
            data = s.recv(100)
            frames += reply.feed(data)
            if frames or not data:
                break
    assert frames == [b'R\x00\x00\x00\x13{"id":7,"result":3}']


def test_rpc_command_line(program: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = program("rpc", "serve", "tcp://127.0.0.1:0").listening()
    load("rpc").main(["call", url, "add", "20", "22"])
    assert capsys.readouterr().out == "42\n"


# --- UDP ---------------------------------------------------------------------------------


def test_udp(LP: Any, capsys: pytest.CaptureFixture[str]) -> None:
    udp = load("udp")
    with framekit.serve("udp://127.0.0.1:0", udp.handle).start() as server:
        port = int(server.address.rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bad:
            bad.sendto(LP(4).encode(b"cut short")[:-3], ("127.0.0.1", port))  # refused, logged
        udp.main(["send", server.address, "one", "datagram"])
        assert capsys.readouterr().out == "ONE\nDATAGRAM\n"
        with framekit.connect(server.address, LP(4), timeout=5) as conn:
            conn.send(b"still there")
            assert conn.recv() == b"STILL THERE"


def test_udp_as_a_program(program: Any) -> None:
    url = program("udp", "serve", "udp://127.0.0.1:0").listening()
    assert program("udp", "send", url, "a", "b").finish() == ["A", "B"]
