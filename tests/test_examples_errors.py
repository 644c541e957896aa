"""The examples answer ordinary mistakes with one line on stderr, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Iterator, List

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
WAIT = 20.0


def run(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, f"{EXAMPLES}/{name}.py", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines: List[str] = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.mark.parametrize(
    "argv",
    [["echo_client"], ["chat", "join", "{url}", "bob"], ["rpc", "call", "{url}", "add", "1"]],
    ids=["echo_client", "chat", "rpc"],
)
def test_a_closed_port(argv: List[str], closed_port: int) -> None:
    url = f"tcp://127.0.0.1:{closed_port}"
    args = [a.format(url=url) for a in argv[1:]] or [url]
    line = one_line(run(argv[0], *args))
    assert line == (
        f"error: cannot connect to {url}: Connection refused (nothing is listening at that address)"
    )


@pytest.fixture
def rpc_server() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, f"{EXAMPLES}/rpc.py", "serve", "tcp://127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().split()[-1]
    finally:
        proc.terminate()
        proc.wait(WAIT)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_remote_error(rpc_server: str) -> None:
    assert one_line(run("rpc", "call", rpc_server, "pow", "2", "8")) == "error: no method 'pow'"


@pytest.mark.skipif(
    __import__("framekit").serializers.MSGPACK is None, reason="msgpack is not installed"
)
def test_a_serializer_mismatch(rpc_server: str) -> None:
    line = one_line(run("rpc", "call", rpc_server, "add", "2", "3", "--msgpack"))
    assert line.startswith("error: no answer within 5 s: do both ends use the same body format")


def test_an_address_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        url = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        assert one_line(run("echo_server", url)) == f"error: cannot bind {url}: address in use"
        line = one_line(run("echo_server_asyncio", url))  # asyncio words it its own way
        assert line.startswith("error: ") and "in use" in line
