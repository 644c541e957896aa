"""``framekit bench`` as a user runs it: Ctrl-C at a terminal, the exit status, MISSED."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any, List

import pytest

from framekit.apps import cli
from framekit.apps.benchmarks import targets
from framekit.apps.benchmarks.targets import Target
from framekit.apps.commands import bench

from .conftest import WAIT, Terminal

#: Runs ``framekit ARGS`` as the leader of a new session whose controlling
#: terminal is stdin (a pty), so that ^C typed on the pty is a real Ctrl-C: the
#: kernel sends SIGINT to the whole foreground process group, children included.
_ON_A_TERMINAL = (
    "import fcntl, os, sys, termios\n"
    "os.setsid()\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'framekit', *sys.argv[1:]])\n"
)


def _senders_of(pid: int) -> List[int]:
    """Pids of the benchmark sender processes that ``pid`` started."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"framekit.apps.benchmarks.sender" in cmdline and parent == pid:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("delay", [0.0, 0.7, 2.0])
def test_ctrl_c_during_the_end_to_end_rows(delay: float) -> None:
    tty = Terminal()
    argv = ["bench", "--filter", "e2e-tcp", "--repeats", "40", "--min-time", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _ON_A_TERMINAL, *argv],
        stdin=tty.slave,
        stdout=tty.slave,
        stderr=tty.slave,
        env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1"),
    )
    try:
        tty.wait_for(b"end to end, loopback TCP")
        deadline = time.monotonic() + WAIT
        while not _senders_of(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        senders = _senders_of(proc.pid)
        assert senders, tty.output
        time.sleep(delay)
        assert proc.poll() is None, f"the run ended before Ctrl-C: {tty.output!r}"
        typed = time.monotonic()
        tty.write(b"\x03")  # Ctrl-C
        try:
            status = proc.wait(WAIT)
        except subprocess.TimeoutExpired:  # show where it hangs (faulthandler on SIGABRT)
            proc.send_signal(signal.SIGABRT)
            proc.wait(WAIT)
            time.sleep(0.5)
            raise AssertionError(f"still running after Ctrl-C: {tty.output.decode()}") from None
        stopped_after = time.monotonic() - typed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tty.close()
    output = tty.output.decode("utf-8", "replace")
    assert status == 130, output
    assert stopped_after < 5, output
    assert "Traceback" not in output, output
    assert "wrong output" not in output.lower()
    assert "framekit bench: interrupted; no results" in output
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in senders) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in senders), "a sender process was left behind"


# --- what MISSED means, and --check --------------------------------------------------

_ROW = ["--quick", "--filter", "decode-64k-stream/16/", "--repeats", "1", "--scale", "0.05"]


@pytest.fixture
def impossible_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target no machine meets: the pure-Python backend 1000x faster than Cython."""
    _only_target(monkeypatch, Target("decode-64k-stream/16", "python", "cython", 1000.0))


def _only_target(monkeypatch: pytest.MonkeyPatch, target: Target) -> None:
    monkeypatch.setattr(targets, "evaluate", functools.partial(targets.evaluate, targets=[target]))


def test_a_missed_target_is_explained_and_only_fails_with_check(
    impossible_target: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", *_ROW]) == 0
    out = capsys.readouterr().out
    assert re.search(r"T1 \[MISSED\]", out)
    assert bench.MISSED_NOTE in out
    assert "shared" in bench.MISSED_NOTE and "--check" in bench.MISSED_NOTE

    assert cli.main(["bench", "--check", *_ROW]) == bench.EXIT_MISSED == 3
    captured = capsys.readouterr()
    assert "framekit bench: --check: 1 target(s) missed: T1" in captured.err


def test_no_note_when_every_target_is_met(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        targets, "TARGETS", (Target("decode-64k-stream/16", "cython", "python", 0.001),)
    )
    assert cli.main(["bench", "--check", *_ROW]) == 0
    out = capsys.readouterr().out
    assert "T1 [met" in out and "MISSED" not in out


def test_the_exit_status_rule_is_in_the_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framekit", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    flat = " ".join(proc.stdout.split())
    assert "exit status: 0 when every contestant's output was right; 1 when" in flat
    assert "3 with --check when a speed target was missed" in flat


def test_sender_ignores_sigint() -> None:
    """The sender leaves stopping to its parent (no traceback of its own on Ctrl-C)."""
    from framekit.apps.benchmarks.sender import Sender

    sender = Sender()
    try:
        assert sender.pid is not None
        os.kill(sender.pid, signal.SIGINT)
        time.sleep(0.3)
        assert _alive(sender.pid)
    finally:
        sender.abort()
    assert not _alive(sender.pid)
