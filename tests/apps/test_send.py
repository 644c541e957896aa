"""``framekit send`` against real servers (the library's, with each codec backend)."""

from __future__ import annotations

import io
import ssl
from typing import Any, Callable, Iterator, List

import pytest

import framekit
from framekit.apps.cli import main

from .conftest import CLIProcess, Terminal, error_lines

Capture = pytest.CaptureFixture[bytes]


def upper(conn: Any) -> None:
    for frame in conn:
        conn.send(frame.upper())


@pytest.fixture
def start_server(LP: Any) -> Iterator[Callable[..., str]]:
    """Serve ``handler`` with the backend under test; return the address URL."""
    servers: List[Any] = []

    def start(address: str, handler: Any = upper, **kwargs: Any) -> str:
        server = framekit.serve(address, handler, LP(4), **kwargs).start()
        servers.append(server)
        return str(server.address)

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def tcp(start_server: Callable[..., str]) -> str:
    return start_server("tcp://127.0.0.1:0")


class Stdin:
    """A stand-in for ``sys.stdin``: bytes in ``buffer``, a terminal or not."""

    def __init__(self, data: bytes, tty: bool) -> None:
        self.buffer = io.BytesIO(data)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_messages_from_the_command_line(tcp: str, capsysbinary: Capture) -> None:
    assert main(["send", tcp, "hello", "wörld", ""]) == 0
    out, err = capsysbinary.readouterr()
    assert out == "HELLO\nWöRLD\n\n".encode()  # bytes.upper() is ASCII only
    assert err == b""


def test_unix_socket(
    start_server: Callable[..., str], sock_dir: str, capsysbinary: Capture
) -> None:
    address = start_server(f"unix://{sock_dir}/s.sock")
    assert main(["send", address, "over unix"]) == 0
    assert capsysbinary.readouterr().out == b"OVER UNIX\n"


def test_lines_from_a_pipe(
    tcp: str, capsysbinary: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", Stdin(b"one\ntwo\r\n\nlast", tty=False))
    assert main(["send", tcp]) == 0
    out, err = capsysbinary.readouterr()
    assert out == b"ONE\nTWO\n\nLAST\n"
    assert err == b""  # no prompt in a pipe


def test_interactive_terminal_prompts_on_stderr(
    tcp: str, capsysbinary: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", Stdin(b"hi\nthere\n", tty=True))
    assert main(["send", tcp]) == 0
    out, err = capsysbinary.readouterr()
    assert out == b"HI\nTHERE\n"
    assert err == b"> > > \n"  # a prompt per line, and one answered by Ctrl-D


def test_interactive_on_a_real_terminal(
    tcp: str, cli_process: Callable[..., CLIProcess], terminal: Terminal
) -> None:
    client = cli_process("send", tcp, terminal=terminal.slave)
    terminal.wait_for(b"> ")
    terminal.write(b"hello\n")
    terminal.wait_for(b"hello\r\n> ")  # the next prompt comes once the reply is printed
    terminal.write(b"again\n")
    terminal.wait_for(b"again\r\n> ")
    terminal.write(b"\x04")  # Ctrl-D
    assert client.wait() == 0
    assert client.stdout == b"HELLO\nAGAIN\n"


def test_raw_sends_all_of_stdin_as_one_frame(
    start_server: Callable[..., str], capsysbinary: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def echo(conn: Any) -> None:
        for frame in conn:
            conn.send(frame)

    data = bytes(range(256)) * 300 + b"\nno newline at the end"
    monkeypatch.setattr("sys.stdin", Stdin(data, tty=False))
    assert main(["send", "--raw", start_server("tcp://127.0.0.1:0", echo)]) == 0
    assert capsysbinary.readouterr().out == data  # byte for byte, nothing added


def test_hex_shows_binary_replies(start_server: Callable[..., str], capsysbinary: Capture) -> None:
    address = start_server("tcp://127.0.0.1:0", lambda conn: conn.send(b"\x00\xff\n" + conn.recv()))
    assert main(["send", "--hex", address, "A"]) == 0
    assert capsysbinary.readouterr().out == b"00ff0a41\n"


def test_no_reply_only_sends(start_server: Callable[..., str], capsysbinary: Capture) -> None:
    received: List[bytes] = []

    def sink(conn: Any) -> None:
        received.extend(conn)

    address = start_server("tcp://127.0.0.1:0", sink)
    assert main(["send", "--no-reply", address, "a", "b"]) == 0
    assert capsysbinary.readouterr().out == b""


def test_udp(LP: Any, capsysbinary: Capture) -> None:
    server = framekit.serve("udp://127.0.0.1:0", lambda frame, peer: frame.upper(), LP(4))
    with server.start():
        assert main(["send", str(server.address), "datagram", "two"]) == 0
    assert capsysbinary.readouterr().out == b"DATAGRAM\nTWO\n"


def test_tls_with_a_ca_file(
    start_server: Callable[..., str], tmp_path: Any, capsysbinary: Capture
) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    address = start_server("tls://localhost:0", ssl=context)
    assert main(["send", "--cafile", str(tmp_path / "ca.pem"), address, "secret"]) == 0
    assert capsysbinary.readouterr().out == b"SECRET\n"
    # Without the CA the certificate is not trusted: one line, no traceback.
    assert main(["send", address, "secret"]) == 1
    (line,) = error_lines(capsysbinary.readouterr().err.decode())  # (+ the server's warning)
    assert "certificate verification failed" in line


def test_same_framing_options_on_both_ends(capsysbinary: Capture) -> None:
    codec = framekit.LengthPrefixed(2, byteorder="little", length_offset=1, strip=0)

    def echo(conn: Any) -> None:
        for frame in conn:  # the header is kept (strip=0): type, 2-byte length, body
            reply = codec.encode(frame[3:].upper(), prefix=bytes([frame[0] + 1]))
            conn.socket.sendall(reply)

    server = framekit.serve("tcp://127.0.0.1:0", echo, codec)
    with server.start():
        argv = ["send", "--length-size", "2", "--byteorder", "little", "--length-offset", "1"]
        assert main([*argv, str(server.address), "Aabc"]) == 0
    assert capsysbinary.readouterr().out == b"BABC\n"


# --- bad input: one line on stderr, non-zero exit, no traceback ------------------------


def one_error(capsysbinary: Capture) -> str:
    text = capsysbinary.readouterr().err.decode()
    assert text.count("\n") == 1 and error_lines(text) == [text.strip()], text
    assert "Traceback" not in text
    return text


def test_unreachable_address(capsysbinary: Capture) -> None:
    assert main(["send", "tcp://127.0.0.1:1", "x"]) == 1
    assert "cannot connect to tcp://127.0.0.1:1" in one_error(capsysbinary)


def test_unknown_host(capsysbinary: Capture) -> None:
    assert main(["send", "--timeout", "5", "tcp://no-such-host.invalid:1", "x"]) == 1
    assert "no-such-host.invalid" in one_error(capsysbinary)


def test_bad_address(capsysbinary: Capture) -> None:
    assert main(["send", "http://example.com", "x"]) == 1
    assert "unknown scheme 'http'" in one_error(capsysbinary)


def test_no_reply_within_the_timeout(
    start_server: Callable[..., str], capsysbinary: Capture
) -> None:
    address = start_server("tcp://127.0.0.1:0", lambda conn: list(conn))
    assert main(["send", "--timeout", "0.2", address, "anyone?"]) == 1
    assert "no reply from" in one_error(capsysbinary)


def test_server_closes_without_replying(
    start_server: Callable[..., str], capsysbinary: Capture
) -> None:
    address = start_server("tcp://127.0.0.1:0", lambda conn: conn.recv())
    assert main(["send", address, "bye?"]) == 1
    assert "closed the connection without replying" in one_error(capsysbinary)


def test_raw_and_messages_conflict(capsysbinary: Capture) -> None:
    assert main(["send", "--raw", "tcp://127.0.0.1:1", "x"]) == 1
    assert "--raw" in one_error(capsysbinary)


def test_debug_shows_the_traceback() -> None:
    with pytest.raises(ConnectionRefusedError):
        main(["--debug", "send", "tcp://127.0.0.1:1", "x"])
