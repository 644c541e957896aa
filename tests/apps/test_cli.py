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


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import framekit

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"framekit {framekit.__version__} ({framekit.BACKEND} backend, ")


def test_debug_after_the_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def run(args: object) -> int:
        seen.append(args.debug)
        raise RuntimeError("boom")

    monkeypatch.setattr("framekit.apps.commands.send.run", run)
    for argv in (["send", "--debug", "tcp://127.0.0.1:1"], ["--debug", "send", "tcp://x:1"]):
        with pytest.raises(RuntimeError, match="boom"):  # --debug: the traceback, not a line
            main(argv)
    assert main(["send", "tcp://127.0.0.1:1"]) == 1
    assert seen == [True, True, False]


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    import framekit
    from framekit.codecs.backend import BACKEND_REASON

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"framekit {framekit.__version__} (")
    assert f"backend: {framekit.BACKEND}: {BACKEND_REASON}\n" in out
    assert BACKEND_REASON
    assert "\nbuild: " in out and "\nPython: " in out
    for name in ("uvloop", "msgpack", "anyio", "msgspec"):
        assert f"\n  {name}: " in out


def test_info_says_why_the_pure_backend_was_chosen() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framekit", "info"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**__import__("os").environ, "FRAMEKIT_PURE_PYTHON": "1"},
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert (
        "backend: python: FRAMEKIT_PURE_PYTHON asked for the pure-Python reference" in proc.stdout
    )


def test_no_import_cycle_in_the_applications() -> None:
    """The subcommands never import cli (which imports them): no cycle anywhere in apps."""
    import ast
    import os

    import framekit.apps

    root = next(iter(framekit.apps.__path__))
    graph = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            module = ".".join(["framekit", "apps", *parts])
            package = module if is_package else module.rsplit(".", 1)[0]
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            targets = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                        target = f"{base}.{node.module}" if node.module else base
                    else:
                        target = node.module or ""
                    targets.add(target)
                    targets.update(f"{target}.{alias.name}" for alias in node.names)
                elif isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names)
            graph[module] = targets
    edges = {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}

    def cycle_from(start: str) -> list:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    return [*path, start]
                if nxt not in path:
                    stack.append((nxt, [*path, nxt]))
        return []

    assert "framekit.apps.cli" in graph and "framekit.apps.errors" in graph
    for module in graph:
        assert cycle_from(module) == [], " -> ".join(cycle_from(module))
