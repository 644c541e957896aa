"""Different framing at the two ends, and messages above the maximum: said in words."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from typing import Any, Callable, Iterator

import pytest

import framekit
from framekit.apps.cli import main
from framekit.apps.commands.send import check_size
from framekit.apps.errors import CommandError
from framekit.apps.hints import COMPARE, decoding_hint
from framekit.errors import FrameTooLarge

from .conftest import WAIT, CLIProcess, error_lines

Start = Callable[..., CLIProcess]


@pytest.fixture
def server(cli_process: Start) -> CLIProcess:
    """``framekit serve`` with the default framing (4-byte big-endian length)."""
    process = cli_process("serve", "tcp://127.0.0.1:0")
    process.url = process.listening()  # type: ignore[attr-defined]
    return process


def _one_error(text: str) -> str:
    assert "Traceback" not in text
    (line,) = error_lines(text)
    return line


def test_a_lines_client_against_a_length_server(
    server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", "--codec", "lines", server.url, "hello"]) == 1
    line = _one_error(capsys.readouterr().err)
    assert "closed the connection without replying right after our first message" in line
    assert COMPARE in line
    server.wait_for(
        r"bad client .*: frame of 1751477360 bytes exceeds max_frame_size 16777216; .*"
        r"its length field 'hell' looks like text, not a length prefix"
    )
    server.wait_for("the two ends' framing may differ: compare --codec")


def test_a_two_byte_length_client_waits_then_says_why(
    server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", "--length-size", "2", "--timeout", "0.5", server.url, "hello"]) == 1
    line = _one_error(capsys.readouterr().err)
    assert "no reply from " in line and "within 0.5 s (--timeout)" in line
    assert f"if the server is waiting for the rest of a frame, {COMPARE}" in line


def test_the_other_byte_order_is_named(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "--byteorder", "little", server.url, "hello"]) == 1
    capsys.readouterr()
    server.wait_for(r"read little-endian it would be a 9-byte frame")


@pytest.fixture
def text_server() -> Iterator[str]:
    """A server that answers anything with a line of text, as a line protocol would."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(WAIT)
            conn.recv(100)
            conn.sendall(b"hello, this is a line protocol\n")
            conn.recv(100)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    thread.join(WAIT)


def test_a_text_reply_is_named_as_text(
    text_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", text_server, "hi"]) == 1
    line = _one_error(capsys.readouterr().err)
    assert "bad reply from " in line and "frame of 1751477360 bytes" in line
    assert "its length field 'hell' looks like text, not a length prefix" in line
    assert COMPARE in line


def test_hints_stay_quiet_when_nothing_suggests_a_mismatch() -> None:
    codec = framekit.LengthPrefixed(4, max_frame_size=1000)
    exc = FrameTooLarge("x", frame_length=2000, max_frame_size=1000)  # \0\0\7\314: binary
    assert decoding_hint(exc, codec, first=False) == ""
    assert decoding_hint(exc, codec, first=True) == COMPARE
    assert decoding_hint(ValueError("x"), codec, first=True) == ""
    huge = FrameTooLarge("x", frame_length=3 << 30, max_frame_size=1000)
    assert COMPARE in decoding_hint(huge, codec, first=False)  # absurd: always


# --- above the maximum frame size (issue 16 item 3, the command line's part) -----------------


def test_send_raw_above_the_maximum_says_so_in_words(server: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framekit", "send", "--raw", server.url],
        input=b"x" * 20_000_000,
        capture_output=True,
        timeout=60,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert _one_error(err) == (
        "framekit send: error: message 1 is 19.1 MiB (20000000 bytes): too large for the maximum "
        "frame size, 16.0 MiB (16777216 bytes, --max-frame-size); the receiver would refuse it, "
        "so nothing was sent. Raise --max-frame-size on both ends to send it"
    )
    assert "Broken pipe" not in err


@pytest.mark.parametrize(
    ("codec", "fits", "too_large"),
    [
        (framekit.LengthPrefixed(4, max_frame_size=10), 6, 7),  # the header counts
        (framekit.Delimited(b"\n", max_frame_size=10), 10, 11),  # the delimiter does not
        (framekit.Netstring(max_frame_size=10), 10, 11),
    ],
    ids=["length", "lines", "netstring"],
)
def test_check_size_agrees_with_the_decoder(codec: Any, fits: int, too_large: int) -> None:
    check_size(codec, b"x" * fits)
    with pytest.raises(CommandError, match=r"message 3 is 11 B|message 3 is 7 B"):
        check_size(codec, b"x" * too_large, 3)
