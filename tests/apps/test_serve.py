"""``framekit serve``: echo handlers in-process, and the command as a real process."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
from typing import Any, Callable, List

import pytest

import framekit
from framekit.apps.cli import main
from framekit.apps.commands.serve import EchoHandler, UpperHandler

from .conftest import CLIProcess, error_lines

Start = Callable[..., CLIProcess]


def log_lines(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == "framekit"]


# --- the handlers, in-process, on both backends --------------------------------------------


def test_upper_and_echo_handlers(LP: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "framekit")
    with (
        framekit.serve("tcp://127.0.0.1:0", UpperHandler, LP(4)).start() as server,
        framekit.connect(server.address, LP(4), timeout=5) as conn,
    ):
        for message in (b"hello", "wörld".encode(), b"\xff\xfebin"):
            conn.send(message)
        replies = [conn.recv() for _ in range(3)]
    assert replies == [b"HELLO", "WÖRLD".encode(), b"\xff\xfeBIN"]
    with (
        framekit.serve("tcp://127.0.0.1:0", EchoHandler, LP(4)).start() as server,
        framekit.connect(server.address, LP(4), timeout=5) as conn,
    ):
        conn.send(b"As Is")
        assert conn.recv() == b"As Is"
    lines = log_lines(caplog)
    assert any(re.fullmatch(r"127\.0\.0\.1:\d+ connected", line) for line in lines)
    assert any(line.endswith("disconnected after 3 frame(s)") for line in lines)


def test_a_bad_client_gets_one_log_line(
    LP: Any, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "framekit")
    with framekit.serve(f"unix://{sock_dir}/s.sock", EchoHandler, LP(4)).start() as server:
        with socket.socket(socket.AF_UNIX) as bad:
            bad.settimeout(5)
            bad.connect(f"{sock_dir}/s.sock")
            bad.sendall(LP(4).encode(b"fine") + b"\xff\xff\xff\xffgarbage")
            assert bad.recv(100) == LP(4).encode(b"fine")  # what came whole is answered
            assert bad.recv(100) == b""  # then the connection is closed
        with framekit.connect(server.address, LP(4), timeout=5) as good:
            good.send(b"still serving")
            assert good.recv() == b"still serving"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert re.fullmatch(r"bad client unix client #\d+: .*max_frame_size.*", warnings[0])


def test_datagram_peers_are_logged_once(LP: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "framekit")
    with (
        framekit.serve("udp://127.0.0.1:0", UpperHandler, LP(4)).start() as server,
        framekit.connect(server.address, LP(4), timeout=5) as conn,
    ):
        for message in (b"a", b"b"):
            conn.send(message)
            assert conn.recv() == message.upper()
    assert len([line for line in log_lines(caplog) if line.startswith("datagrams from")]) == 1


# --- the command --------------------------------------------------------------------------


def send(address: str, *messages: str) -> int:
    return main(["send", "--timeout", "5", address, *messages])


def test_ctrl_c_shuts_down_and_removes_the_socket_file(
    cli_process: Start, sock_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = os.path.join(sock_dir, "echo.sock")
    server = cli_process("serve", "--upper", f"unix://{path}")
    address = server.listening()
    assert address == f"unix://{path}"
    assert os.path.exists(path)
    assert send(address, "hello", "world") == 0
    assert capsys.readouterr().out == "HELLO\nWORLD\n"
    with socket.socket(socket.AF_UNIX) as bad:  # a client that sends garbage
        bad.connect(path)
        bad.sendall(b"\x7f\xff\xff\xff")
        bad.settimeout(5)
        assert bad.recv(10) == b""
    server.wait_for("bad client")
    with socket.socket(socket.AF_UNIX) as idle:  # a client still connected at Ctrl-C
        idle.connect(path)
        server.wait_for(r"#3 connected")
        assert server.interrupt() == 0
    assert not os.path.exists(path)
    lines = server.lines
    assert "Traceback" not in server.stderr
    assert any(line.endswith("disconnected after 2 frame(s)") for line in lines)
    assert len([line for line in lines if "bad client" in line]) == 1
    assert "framekit serve: shutting down" in lines
    assert any(line.endswith("#3 disconnected after 0 frame(s)") for line in lines)  # shutdown


def test_sigterm_stops_a_udp_server(cli_process: Start, capsys: pytest.CaptureFixture[str]) -> None:
    server = cli_process("serve", "udp://127.0.0.1:0")
    address = server.listening()
    assert send(address, "ping") == 0
    assert capsys.readouterr().out == "ping\n"
    server.wait_for("datagrams from 127.0.0.1:")
    server.proc.terminate()
    assert server.wait() == 0
    assert "Traceback" not in server.stderr


def test_tls_server(cli_process: Start, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = cli_process("serve", "--certfile", str(tmp_path / "server.pem"), "tls://localhost:0")
    address = server.listening()
    assert main(["send", "--cafile", str(tmp_path / "ca.pem"), address, "over tls"]) == 0
    assert capsys.readouterr().out == "over tls\n"
    assert server.interrupt() == 0


def test_serve_and_send_lines(cli_process: Start, capsys: pytest.CaptureFixture[str]) -> None:
    """``--codec lines`` is framekit.Lines at both ends: a client may end lines with \\r\\n."""
    server = cli_process("serve", "--upper", "--codec", "lines", "tcp://127.0.0.1:0")
    address = server.listening()
    assert main(["send", "--timeout", "5", "--codec", "lines", address, "hello", "a\rb"]) == 0
    assert capsys.readouterr().out == "HELLO\nA\rB\n"
    host, port = address[len("tcp://") :].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"crlf\r\nlf\n")
        got = b""
        while got.count(b"\n") < 2:
            got += raw.recv(100)
    assert got == b"CRLF\nLF\n"  # replies end with newline=b"\n"
    assert server.interrupt() == 0


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_workers_share_the_port(cli_process: Start, capsys: pytest.CaptureFixture[str]) -> None:
    server = cli_process("serve", "--upper", "--workers", "2", "tcp://127.0.0.1:0")
    first = server.wait_for(r"worker 1 \(pid (\d+)\) listening on (\S+)")
    second = server.wait_for(r"worker 2 \(pid (\d+)\) listening on (\S+)")
    assert first.group(2) == second.group(2)  # one port for both
    pids = {int(first.group(1)), int(second.group(1))}
    assert server.proc.pid in pids and len(pids) == 2
    for n in range(8):
        assert send(first.group(2), f"client {n}") == 0
    assert capsys.readouterr().out == "".join(f"CLIENT {n}\n" for n in range(8))
    assert server.interrupt() == 0
    (child,) = pids - {server.proc.pid}
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(child, 0)
    assert "Traceback" not in server.stderr


# --- bad input ------------------------------------------------------------------------------


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and error_lines(err) == err.splitlines(), err
    return err


def test_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", f"tcp://127.0.0.1:{port}"]) == 1
    assert f"cannot bind tcp://127.0.0.1:{port}: address in use" in one_error(capsys)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--workers", "2", "unix:///tmp/x.sock"], "--workers needs a tcp:// or tls://"),
        (["--workers", "2", "udp://127.0.0.1:0"], "--workers needs a tcp:// or tls://"),
        (["--workers", "0", "tcp://127.0.0.1:0"], "--workers must be at least 1"),
        (["--preset", "nope", "tcp://127.0.0.1:0"], "unknown preset 'nope'"),
        (["tls://127.0.0.1:0"], "needs --certfile"),
        (["--certfile", "/no/such.pem", "tls://127.0.0.1:0"], "/no/such.pem"),
    ],
)
def test_refused_before_serving(
    capsys: pytest.CaptureFixture[str], argv: List[str], words: str
) -> None:
    assert main(["serve", *argv]) == 1  # returns: it never started serving
    assert words in one_error(capsys)


def test_ctrl_c_works_even_if_sigint_was_ignored_at_start(sock_dir: str) -> None:
    # A shell without job control starts background commands with SIGINT
    # ignored, and children inherit that: the server must still stop on it.
    path = os.path.join(sock_dir, "ignored.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "framekit", "serve", f"unix://{path}"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert "listening on" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert not os.path.exists(path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


def test_serve_defaults_bound_what_clients_can_hold() -> None:
    """framekit serve faces whoever connects: its defaults cap connections, idle and slow
    clients, TLS handshakes and memory (see the README's table of defaults)."""
    from framekit.apps.cli import build_parser
    from framekit.apps.commands import serve as serve_command

    args = build_parser().parse_args(["serve", "tcp://127.0.0.1:0"])
    assert args.max_connections == serve_command.DEFAULT_MAX_CONNECTIONS == 1000
    assert args.idle_timeout == serve_command.DEFAULT_IDLE_TIMEOUT == 300
    assert args.frame_timeout == 60
    assert args.handshake_timeout == 10
    assert args.max_buffered_bytes == 256 * 1024 * 1024
    server = serve_command._bind(args, serve_command.parse_address(args.address), reuse_port=False)
    try:
        settings = server._settings
        assert settings.idle_timeout == 300 and settings.frame_timeout == 60
        assert settings.max_connections == 1000
        assert settings.max_buffered_bytes == 256 * 1024 * 1024
    finally:
        server.shutdown()
