"""Fixtures for the ``framekit`` command's tests: the command run as a subprocess.

Servers (``serve``, ``recv-file``) run as real processes, as a user runs them:
that is the only honest way to test Ctrl-C, workers and exit statuses, and it
keeps their log handler apart from the in-process client's.  Every wait is
bounded, and every process is killed at the end of its test.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional, Sequence

import pytest

_MAIN = "sys.exit(main(sys.argv[1:]))"

#: Bound on any single wait for a subprocess (start-up, a log line, exit).
WAIT = 15.0


class CLIProcess:
    """A ``framekit`` subcommand running in a subprocess, stderr read line by line."""

    def __init__(
        self, argv: Sequence[str], *, code: Optional[str] = None, terminal: Optional[int] = None
    ) -> None:
        if code is None:
            cmd = [sys.executable, "-m", "framekit", *argv]
        else:  # run ``code`` first (e.g. a fault injection), then the command
            runner = (
                f"{code}\nimport sys\nfrom framekit.apps.cli import main\n"
                "sys.exit(main(sys.argv[1:]))"
            )
            cmd = [sys.executable, "-c", runner, *argv]
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        # With ``terminal`` (a pty's file descriptor), stdin and stderr are that terminal.
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL if terminal is None else terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if terminal is None else terminal,
            env=env,
        )
        self.lines: List[str] = []
        self._queue: queue.Queue[Optional[str]] = queue.Queue()
        self._stdout: List[bytes] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._stdout.append(self.proc.stdout.read())

    def _read(self) -> None:
        if self.proc.stderr is None:  # a terminal: read it through Terminal
            self._queue.put(None)
            return
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """Wait for a stderr line matching ``pattern``; return the match."""
        for line in self.lines:
            match = re.search(pattern, line)
            if match:
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no stderr line matching {pattern!r}; stderr: {self.lines}")

    def listening(self) -> str:
        """Wait until the server says it listens; return its address URL."""
        return self.wait_for(r"listening on ([^\s;]+)").group(1)

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the exit status; stdout and every stderr line are then read."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            # PYTHONFAULTHANDLER makes SIGABRT dump every thread's stack to stderr.
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout)
            for reader in self._readers:
                reader.join(timeout)
            message = f"still running after {timeout} s; stderr:\n{self.stderr}"
            raise AssertionError(message) from exc
        for reader in self._readers:
            reader.join(timeout)
        return status

    @property
    def stdout(self) -> bytes:
        return b"".join(self._stdout)

    def interrupt(self, timeout: float = WAIT) -> int:
        """Ctrl-C: send SIGINT and wait for the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


@pytest.fixture
def cli_process() -> Iterator[Callable[..., CLIProcess]]:
    """Start ``framekit ARGV...`` as a subprocess: ``cli_process("serve", url)``."""
    started: List[CLIProcess] = []

    def start(*argv: str, code: Optional[str] = None, terminal: Optional[int] = None) -> CLIProcess:
        process = CLIProcess(argv, code=code, terminal=terminal)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """A pseudo-terminal for a subprocess's stdin and stderr (``cli_process(terminal=...)``)."""
    if not hasattr(os, "openpty"):
        pytest.skip("no pseudo-terminals here")
    tty = Terminal()
    yield tty
    tty.close()


def error_lines(text: str) -> List[str]:
    """The lines of ``text`` that report an error."""
    return [line for line in text.splitlines() if "error:" in line]


class Terminal:
    """A pseudo-terminal: what a program writes to it is collected from the other end."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.output = b""
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every program holding the other end has exited
                data = b""
            with self._lock:
                self.output += data
                self._lock.notify_all()
            if not data:
                return

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_for(self, text: bytes, timeout: float = WAIT) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: text in self.output, timeout):
                raise AssertionError(f"{text!r} never appeared on the terminal: {self.output!r}")

    def close(self) -> None:
        """Close our copy of the program's end; then wait for the reader."""
        os.close(self.slave)
        self._reader.join(WAIT)
        os.close(self.master)
