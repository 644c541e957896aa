"""The ``framekit`` command itself: subcommands, one-line errors, log lines."""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import subprocess
import sys

import pytest

from framekit.apps import cli
from framekit.apps.cli import CommandError, describe_error, main
from framekit.errors import ConnectionClosed


def test_every_subcommand_is_in_the_one_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framekit", "--help"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0
    for name in ("serve", "send", "send-file", "recv-file", "bench"):
        assert f"    {name}" in proc.stdout


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (CommandError("already\n  one line"), "already one line"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "Connection refused"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.pem"), "x.pem: No such"),
        (socket.timeout("timed out"), "timed out"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version"), "TLS error: "),
        (ConnectionClosed("connection closed by the peer"), "connection closed by the peer"),
        (ValueError(), "ValueError"),
    ],
)
def test_describe_error(exc: BaseException, text: str) -> None:
    line = describe_error(exc)
    assert line.startswith(text) and "\n" not in line and "[Errno" not in line


def test_a_tool_that_cannot_load_fails_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "broken", ("no_such_tool", "does not load"))
    assert main(["broken", "--any", "thing"]) == 1
    assert capsys.readouterr().err == (
        "framekit broken: error: this command cannot load: "
        "No module named 'framekit.apps.commands.no_such_tool'\n"
    )
    with pytest.raises(SystemExit):  # the others still parse their options strictly
        main(["send", "--no-such-option", "tcp://127.0.0.1:1"])


def test_log_lines_while_a_command_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("framekit")

    def run(args: object) -> int:
        logger.debug("hidden without --debug")
        logger.info("plain")
        logger.warning("careful")
        logger.error("broken")
        return 3

    monkeypatch.setattr("framekit.apps.commands.send.run", run)
    before = list(logger.handlers)
    assert main(["send", "tcp://127.0.0.1:1"]) == 3
    assert capsys.readouterr().err == (
        "framekit send: plain\nframekit send: warning: careful\nframekit send: error: broken\n"
    )
    assert logger.handlers == before  # removed again
    assert main(["--debug", "send", "tcp://127.0.0.1:1"]) == 3
    assert capsys.readouterr().err.startswith("framekit send: hidden without --debug\n")


def test_ctrl_c_is_status_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("framekit.apps.commands.send.run", run)
    assert main(["send", "tcp://127.0.0.1:1"]) == 130
