"""``recv-file`` under stray peers, many idle sockets, a SIGKILL, Ctrl-C; send-file's Ctrl-C.

The receiver runs as a real process; the peers are written by hand with the
library, so that they can send what no real sender would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

import framekit
from framekit.apps.cli import main
from framekit.apps.transfer import (
    CHUNK,
    ERROR,
    READY,
    FileInfo,
    IncomingFile,
    encode_header,
    parse_reply,
    remove_stale_parts,
)

from .conftest import WAIT, CLIProcess, error_lines

Start = Callable[..., CLIProcess]
MiB = 1024 * 1024


@pytest.fixture
def out(tmp_path: Any) -> Any:
    path = tmp_path / "out"
    path.mkdir()
    return path


def _info(name: str, data: bytes) -> FileInfo:
    return FileInfo(name, len(data), hashlib.sha256(data).hexdigest())


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line")


def _parts(directory: Any) -> List[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".part"))


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# --- issue 12 item 5 ------------------------------------------------------------------


def test_a_malformed_header_does_not_become_the_session(
    cli_process: Start, sock_dir: str, out: Any, tmp_path: Any
) -> None:
    url = f"unix://{sock_dir}/r.sock"
    recv = cli_process("recv-file", url, "--out", str(out))
    recv.listening()
    with framekit.connect(url, timeout=WAIT) as stray:
        stray.send(b"H{}")  # a header frame whose body is no header
        kind, reason = parse_reply(stray.recv())
        assert kind == ERROR and "malformed header" in reason
    recv.wait_for("dropping the connection: malformed header")
    assert recv.proc.poll() is None  # still waiting for the real sender
    source = tmp_path / "f.txt"
    source.write_bytes(b"the real file")
    assert main(["send-file", url, str(source)]) == 0
    assert recv.wait() == 0
    assert os.listdir(out) == ["f.txt"]
    assert error_lines(recv.stderr) == []


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
@pytest.mark.parametrize("limit", [None, 4])
def test_idle_sockets_cost_at_most_max_connections_threads(
    cli_process: Start, out: Any, limit: Any
) -> None:
    extra = [] if limit is None else ["--max-connections", str(limit)]
    recv = cli_process("recv-file", "tcp://127.0.0.1:0", "--out", str(out), *extra)
    host, port = recv.listening()[len("tcp://") :].rsplit(":", 1)
    before = _threads(recv.proc.pid)
    bound = 16 if limit is None else limit
    idle = []
    try:
        for _ in range(300):  # the figure: 300 idle sockets
            idle.append(socket.create_connection((host, int(port)), timeout=WAIT))
        recv.wait_for(rf"max_connections \({bound}\) reached")
        time.sleep(0.3)
        assert _threads(recv.proc.pid) <= before + bound
    finally:
        for s in idle:
            s.close()
    assert recv.interrupt() == 130


def test_a_restarted_receiver_removes_what_a_killed_one_left(
    cli_process: Start, sock_dir: str, out: Any
) -> None:
    url = f"unix://{sock_dir}/r.sock"
    recv = cli_process("recv-file", url, "--out", str(out))
    recv.listening()
    data = os.urandom(MiB)
    with framekit.connect(url, timeout=WAIT) as sender:
        sender.send(encode_header(_info("big.bin", data)))
        assert sender.recv() == READY
        sender.send(CHUNK + data[:1000])
        _wait_until(lambda: bool(_parts(out)), "no temporary file")
        (stale,) = _parts(out)
        assert stale.startswith(".big.bin.")
        recv.proc.send_signal(signal.SIGKILL)
        recv.wait()
    assert _parts(out) == [stale]  # SIGKILL: nothing could clean up

    live = IncomingFile(str(out), "live.bin")  # another receiver, writing right now
    unrelated = [".big.bin.part", ".notes.txt", ".x.1234567.part", "y.0123abcd.part"]
    for name in unrelated:
        (out / name).write_bytes(b"keep")
    try:
        again = cli_process("recv-file", url, "--out", str(out))
        again.listening()
        again.wait_for(rf"removed 1 temporary file\(s\) left by an interrupted transfer: {stale}")
        assert stale not in os.listdir(out)
        assert os.path.basename(live.temp_path) in os.listdir(out)
        for name in unrelated:
            assert (out / name).read_bytes() == b"keep"
        assert again.interrupt() == 130
    finally:
        live.discard()


def test_remove_stale_parts_spares_locked_files_and_other_names(tmp_path: Any) -> None:
    live = IncomingFile(str(tmp_path), "a")
    dead = IncomingFile(str(tmp_path), "b")
    dead_name = os.path.basename(dead.temp_path)
    dead._file.close()  # as if its process died: the lock goes with the descriptor
    os.mkfifo(tmp_path / ".fifo.0123abcd.part")  # never opened for reading: would block
    (tmp_path / ".dir.0123abcd.part").mkdir()
    os.symlink("/etc/passwd", tmp_path / ".link.0123abcd.part")
    try:
        assert remove_stale_parts(str(tmp_path)) == [dead_name]
        assert os.path.exists(live.temp_path)
        assert os.path.lexists(tmp_path / ".link.0123abcd.part")
        assert remove_stale_parts(str(tmp_path)) == []
    finally:
        live.discard()


# --- issue 16 item 10: Ctrl-C, --out -------------------------------------------------------


def test_ctrl_c_mid_file_is_reported_as_such_not_as_a_lost_connection(
    cli_process: Start, sock_dir: str, out: Any
) -> None:
    url = f"unix://{sock_dir}/r.sock"
    recv = cli_process("recv-file", url, "--out", str(out))
    recv.listening()
    data = os.urandom(MiB)
    with framekit.connect(url, timeout=WAIT) as sender:
        sender.send(encode_header(_info("big.bin", data)))
        assert sender.recv() == READY
        sender.send(CHUNK + data[:1000])
        _wait_until(lambda: bool(_parts(out)), "no temporary file")
        assert recv.interrupt() == 130
    assert "connection lost" not in recv.stderr
    assert "Traceback" not in recv.stderr
    recv.wait_for(
        r"big\.bin: recv-file was stopped \(Ctrl-C\) after 1000 of 1048576 bytes; "
        "nothing was written"
    )
    assert os.listdir(out) == []


def test_ctrl_c_on_send_file_says_what_was_cut_short(cli_process: Start, tmp_path: Any) -> None:
    ready = threading.Event()

    def stalling_receiver(conn: Any) -> None:  # says "ready", then never reads again
        conn.recv()
        conn.send(READY)
        ready.set()
        time.sleep(WAIT)

    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        f.truncate(64 * MiB)
    with framekit.serve("tcp://127.0.0.1:0", stalling_receiver).start() as server:
        send = cli_process("send-file", server.address, str(source))
        assert ready.wait(WAIT)
        time.sleep(0.5)  # blocked in sendall by now: nobody reads
        assert send.interrupt() == 130
    lines = error_lines(send.stderr)
    assert lines == [
        f"framekit send-file: error: interrupted: {source} was not received "
        "(the receiver keeps nothing of it); 0 of 1 file(s) sent"
    ], send.stderr
    assert "Traceback" not in send.stderr


def test_out_is_created_with_its_parents_and_the_log_says_so(
    cli_process: Start, sock_dir: str, tmp_path: Any
) -> None:
    nested = tmp_path / "a" / "b" / "c"
    recv = cli_process("recv-file", f"unix://{sock_dir}/r.sock", "--out", str(nested))
    recv.listening()
    recv.wait_for(f"created directory {nested}")
    assert nested.is_dir()
    assert recv.interrupt() == 130


@pytest.fixture
def read_only_dir(tmp_path: Any) -> Iterator[Any]:
    """A directory nobody can create files in: chmod 0555, or ``chattr +i`` for root."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
        pytest.skip("running as root, and chattr +i is not available here")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_read_only_out_is_refused_with_the_reason(
    read_only_dir: Any, sock_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recv-file", f"unix://{sock_dir}/r.sock", "--out", str(read_only_dir)]) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"framekit recv-file: error: cannot write to --out {read_only_dir}: ")
    assert line.endswith(("Permission denied", "Operation not permitted", "Read-only file system"))


def test_max_connections_must_be_positive(
    out: Any, sock_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"unix://{sock_dir}/r.sock"
    assert main(["recv-file", url, "--out", str(out), "--max-connections", "0"]) == 1
    assert "--max-connections must be at least 1" in capsys.readouterr().err


def test_help_documents_the_nested_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["recv-file", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "created with its parents if missing" in help_text
    assert "--max-connections" in help_text
