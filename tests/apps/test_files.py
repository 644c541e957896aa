"""``framekit send-file`` and ``recv-file``: real transfers, lying peers, faults.

The receiver runs as a real process (``recv-file`` is a server that exits with
a status); the sender runs in-process through ``main()``.  Lying or failing
peers are written here with the library, on both codec backends.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest

import framekit
from framekit.apps.cli import main
from framekit.apps.commands import files as files_module
from framekit.apps.transfer import (
    ACK,
    CHUNK,
    END,
    ERROR,
    READY,
    FileInfo,
    decode_info,
    encode_ack,
    encode_header,
    parse_reply,
)

from .conftest import WAIT, CLIProcess, Terminal, error_lines

Start = Callable[..., CLIProcess]
MiB = 1024 * 1024


@pytest.fixture
def out(tmp_path: Any) -> Any:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def files(tmp_path: Any) -> Callable[..., str]:
    """``files(name, data)`` writes a file to send; returns its path."""
    source = tmp_path / "src"
    source.mkdir()

    def make(name: str, data: bytes) -> str:
        (source / name).write_bytes(data)
        return str(source / name)

    return make


def receiver(cli_process: Start, sock_dir: str, out: Any, *extra: str, **kw: Any) -> CLIProcess:
    process = cli_process("recv-file", f"unix://{sock_dir}/r.sock", "--out", str(out), *extra, **kw)
    process.listening()
    return process


def address(sock_dir: str) -> str:
    return f"unix://{sock_dir}/r.sock"


def info_of(name: str, data: bytes) -> FileInfo:
    return FileInfo(name, len(data), hashlib.sha256(data).hexdigest())


def one_error(text: str) -> str:
    """The one error line in ``text`` (there must be exactly one, and no traceback)."""
    assert "Traceback" not in text
    (line,) = error_lines(text)
    return line


# --- transfers ------------------------------------------------------------------------


def test_several_files_over_one_connection(
    cli_process: Start,
    sock_dir: str,
    out: Any,
    files: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    contents = {
        "a.bin": os.urandom(3 * MiB + 17),  # several chunks, the last one short
        "notes.txt": b"hello\n",
        "empty": b"",
        "naïve 文件.dat": b"\x00\xff" * 100,
    }
    paths = [files(name, data) for name, data in contents.items()]
    recv = receiver(cli_process, sock_dir, out)
    assert main(["send-file", address(sock_dir), *paths]) == 0
    assert capsys.readouterr() == ("", "")  # quiet: stderr is not a terminal here
    assert recv.wait() == 0
    assert sorted(os.listdir(out)) == sorted(contents)  # and no temporary file
    for name, data in contents.items():
        assert (out / name).read_bytes() == data
    for name, data in contents.items():
        recv.wait_for(f"received {name} \\({len(data)} bytes, sha256 {info_of(name, data).sha256}")
    assert "\r" not in recv.stderr  # no progress bar in a pipe


@pytest.mark.parametrize(
    "framing",
    [["--codec", "netstring"], ["--preset", "grpc"], ["--length-size", "varint"]],
    ids=["netstring", "grpc", "varint"],
)
def test_tcp_with_other_framings(
    cli_process: Start, out: Any, files: Callable[..., str], framing: List[str]
) -> None:
    recv = cli_process("recv-file", *framing, "tcp://127.0.0.1:0", "--out", str(out))
    url = recv.listening()
    path = files("n.bin", os.urandom(2 * MiB))
    assert main(["send-file", *framing, url, path]) == 0
    assert recv.wait() == 0
    assert (out / "n.bin").read_bytes() == Path(path).read_bytes()


def test_small_max_frame_size_means_small_chunks(
    cli_process: Start, sock_dir: str, out: Any, files: Callable[..., str]
) -> None:
    data = os.urandom(100_000)
    recv = receiver(cli_process, sock_dir, out, "--max-frame-size", "8K")
    assert main(["send-file", "--max-frame-size", "8K", address(sock_dir), files("f", data)]) == 0
    assert recv.wait() == 0
    assert (out / "f").read_bytes() == data


def test_existing_files_are_kept_unless_forced(
    cli_process: Start,
    sock_dir: str,
    out: Any,
    files: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (out / "f").write_bytes(b"precious")
    path = files("f", b"new")
    recv = receiver(cli_process, sock_dir, out)
    assert main(["send-file", address(sock_dir), path]) == 1
    assert "f: file exists (use --force to overwrite)" in one_error(capsys.readouterr().err)
    assert recv.wait() == 1
    assert "file exists" in one_error(recv.stderr)
    assert (out / "f").read_bytes() == b"precious"
    recv = receiver(cli_process, sock_dir, out, "--force")
    assert main(["send-file", address(sock_dir), path]) == 0
    assert recv.wait() == 0
    assert (out / "f").read_bytes() == b"new"


def test_progress_bars_on_a_terminal(
    cli_process: Start,
    sock_dir: str,
    out: Any,
    files: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    recv = receiver(cli_process, sock_dir, out)
    assert main(["send-file", address(sock_dir), files("big.bin", os.urandom(3 * MiB))]) == 0
    assert recv.wait() == 0
    text = terminal.getvalue()
    assert text.startswith("\rbig.bin [") and text.endswith("\n")
    assert "3.0 MiB/3.0 MiB" in text and "/s done" in text


def test_receiver_progress_bar_on_a_terminal(
    cli_process: Start, terminal: Terminal, sock_dir: str, out: Any, files: Callable[..., str]
) -> None:
    argv = ("recv-file", address(sock_dir), "--out", str(out))
    recv = cli_process(*argv, terminal=terminal.slave)
    terminal.wait_for(b"listening on")
    assert main(["send-file", address(sock_dir), files("big.bin", os.urandom(3 * MiB))]) == 0
    assert recv.wait() == 0
    terminal.wait_for(b"session over")
    assert b"\rbig.bin [" in terminal.output and b"3.0 MiB/3.0 MiB" in terminal.output


def test_keep_serving_until_ctrl_c(
    cli_process: Start, sock_dir: str, out: Any, files: Callable[..., str]
) -> None:
    recv = receiver(cli_process, sock_dir, out, "--keep-serving")
    assert main(["send-file", address(sock_dir), files("one", b"1")]) == 0
    assert main(["send-file", address(sock_dir), files("two", b"2")]) == 0
    recv.wait_for("session over: 1 file\\(s\\) received, 0 failed")
    assert recv.interrupt() == 0
    assert sorted(os.listdir(out)) == ["one", "two"]
    assert not os.path.exists(f"{sock_dir}/r.sock")


def test_ctrl_c_before_any_session(cli_process: Start, sock_dir: str, out: Any) -> None:
    recv = receiver(cli_process, sock_dir, out)
    assert recv.interrupt() == 130
    assert "Traceback" not in recv.stderr
    assert not os.path.exists(f"{sock_dir}/r.sock")


def test_a_large_file_streams_through_bounded_memory(
    cli_process: Start, sock_dir: str, out: Any, tmp_path: Any
) -> None:
    size = 64 * MiB
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:  # mostly sparse: fast to make, but every byte is sent
        f.write(os.urandom(MiB))
        f.seek(size - MiB)
        f.write(os.urandom(MiB))
    # The receiver reports its peak resident memory beyond what it had ready to serve.
    measure = (
        "import atexit, resource, sys\n"
        "import framekit.apps.cli\n"
        "framekit.apps.cli.build_parser()\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "atexit.register(lambda: sys.stdout.write(\n"
        "    f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base}\\n'))\n"
    )
    recv = receiver(cli_process, sock_dir, out, code=measure)
    tracemalloc.start()
    try:
        assert main(["send-file", address(sock_dir), str(path)]) == 0
        _, sender_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert recv.wait() == 0
    receiver_growth = int(recv.stdout.decode()) * 1024  # ru_maxrss is in KiB on Linux
    assert os.path.getsize(out / "big.bin") == size
    assert sender_peak < 8 * MiB, sender_peak
    assert receiver_growth < 24 * MiB, receiver_growth


# --- lying and failing peers ---------------------------------------------------------------


@pytest.fixture
def fake_sender(LP: Any, sock_dir: str) -> Iterator[Callable[[], Any]]:
    """A connection to the receiver, driven by hand, with the backend under test."""
    conns: List[Any] = []

    def connect() -> Any:
        conn = framekit.connect(address(sock_dir), LP(4), timeout=10)
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        conn.close()


def test_unsafe_names_are_refused(
    cli_process: Start, sock_dir: str, out: Any, fake_sender: Callable[[], Any]
) -> None:
    recv = receiver(cli_process, sock_dir, out)
    with fake_sender() as conn:
        for name in ("../evil", "/tmp/evil", "a/b"):
            conn.send(encode_header(FileInfo(name, 1, "0" * 64)))
            kind, reason = parse_reply(conn.recv())
            assert kind == ERROR and "not allowed" in reason
    assert recv.wait() == 1
    assert len(error_lines(recv.stderr)) == 3
    assert os.listdir(out) == [] and sorted(os.listdir(out / "..")) == ["out"]


def test_digest_mismatch_from_a_lying_sender(
    cli_process: Start, sock_dir: str, out: Any, fake_sender: Callable[[], Any]
) -> None:
    recv = receiver(cli_process, sock_dir, out)
    with fake_sender() as conn:
        conn.send(encode_header(info_of("f", b"what I promised")))
        assert conn.recv() == READY
        conn.send(CHUNK + b"what I deliver!")
        conn.send(END)
        kind, reason = parse_reply(conn.recv())
    assert kind == ERROR and "sha256 mismatch" in reason
    assert recv.wait() == 1
    assert "f: sha256 mismatch" in one_error(recv.stderr)
    assert os.listdir(out) == []


def test_sender_closing_mid_file(
    cli_process: Start, sock_dir: str, out: Any, fake_sender: Callable[[], Any]
) -> None:
    recv = receiver(cli_process, sock_dir, out)
    with fake_sender() as conn:
        conn.send(encode_header(info_of("f", b"x" * 1000)))
        assert conn.recv() == READY
        conn.send(CHUNK + b"x" * 400)
    assert recv.wait() == 1
    line = one_error(recv.stderr)
    assert "f: connection closed after 400 of 1000 bytes; nothing was written" in line
    assert os.listdir(out) == []  # no temporary file either


def test_sender_cut_mid_frame(
    cli_process: Start, sock_dir: str, out: Any, fake_sender: Callable[[], Any]
) -> None:
    recv = receiver(cli_process, sock_dir, out)
    with fake_sender() as conn:
        conn.send(encode_header(info_of("f", b"x" * 1000)))
        assert conn.recv() == READY
        conn.socket.sendall(conn.codec.encode(CHUNK + b"x" * 400)[:-100])
    assert recv.wait() == 1
    assert "connection lost" in one_error(recv.stderr)
    assert os.listdir(out) == []


@pytest.fixture
def fake_receiver(LP: Any, sock_dir: str) -> Iterator[Callable[[Any], str]]:
    """Serve ``handler(conn)`` as the receiver, with the backend under test."""
    servers: List[Any] = []

    def start(handler: Any) -> str:
        server = framekit.serve(address(sock_dir), handler, LP(4)).start()
        servers.append(server)
        return str(server.address)

    yield start
    for server in servers:
        server.shutdown()


def lying_receiver(digest: str) -> Callable[[Any], None]:
    """Accepts everything, and acknowledges with ``digest``."""

    def handle(conn: Any) -> None:
        info: Optional[FileInfo] = None
        for frame in conn:
            if frame[:1] == b"H":
                info = decode_info(frame)
                conn.send(READY)
            elif frame[:1] == END and info is not None:
                conn.send(encode_ack(FileInfo(info.name, info.size, digest)))

    return handle


def test_digest_mismatch_from_a_lying_receiver(
    fake_receiver: Callable[[Any], str],
    files: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = fake_receiver(lying_receiver("0" * 64))
    assert main(["send-file", url, files("f", b"data")]) == 1
    line = one_error(capsys.readouterr().err)
    assert "f: the receiver acknowledged 4 bytes with sha256 0000" in line


def test_receiver_closing_mid_file(
    fake_receiver: Callable[[Any], str],
    files: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def vanish(conn: Any) -> None:
        conn.recv()
        conn.send(READY)
        conn.recv()  # one chunk, then the receiver goes away

    url = fake_receiver(vanish)
    path = files("big.bin", os.urandom(16 * MiB))  # more than the socket buffers hold
    assert main(["send-file", url, path]) == 1
    line = one_error(capsys.readouterr().err)
    assert line.startswith(f"framekit send-file: error: {path}: ")
    assert line.endswith("the file was not received")


def test_full_disk(
    cli_process: Start,
    sock_dir: str,
    out: Any,
    files: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The receiver's disk is full for any file beyond 1 MiB.
    full_disk = (
        "import errno, os\n"
        "from framekit.apps.transfer import IncomingFile\n"
        "write = IncomingFile.write\n"
        "def full(self, data):\n"
        "    self.written = getattr(self, 'written', 0) + len(data)\n"
        "    if self.written > 1024 * 1024:\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "    write(self, data)\n"
        "IncomingFile.write = full\n"
    )
    recv = receiver(cli_process, sock_dir, out, code=full_disk)
    big, small = files("big.bin", os.urandom(8 * MiB)), files("small.txt", b"fits")
    assert main(["send-file", address(sock_dir), big, small]) == 1
    line = one_error(capsys.readouterr().err)
    assert line.endswith(f"{big}: refused by the receiver: cannot write big.bin: "
                         "no space left on device")  # fmt: skip
    assert recv.wait() == 1
    assert "cannot write big.bin: no space left on device" in one_error(recv.stderr)
    assert os.listdir(out) == ["small.txt"]  # the session went on; no partial file


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["send-file", "tcp://127.0.0.1:1", "{file}"], "cannot connect to tcp://127.0.0.1:1"),
        (["send-file", "tcp://127.0.0.1:1", "{dir}/missing"], "missing: No such file"),
        (["send-file", "tcp://127.0.0.1:1", "{dir}"], "not a regular file"),
        (["send-file", "tcp://127.0.0.1:1", "{file}", "{file}"], "f is given twice"),
        (["send-file", "tcp://127.0.0.1:1", "{file}", "{dir}/./f"], "both be named f"),
        (["send-file", "--codec", "lines", "tcp://127.0.0.1:1", "{file}"], "--codec lines"),
        (["send-file", "udp://127.0.0.1:1", "{file}"], "needs a stream address"),
        (["send-file", "--max-frame-size", "100", "tcp://127.0.0.1:1", "{file}"], "too small"),
        (["recv-file", "--preset", "nope", "tcp://127.0.0.1:0", "--out", "{dir}"], "unknown pre"),
        (["recv-file", "tcp://127.0.0.1:0", "--out", "{file}"], "--out {file}: not a directory"),
        (["send-file", "--timeout", "-1", "tcp://127.0.0.1:1", "{file}"], "--timeout must be 0"),
        (["recv-file", "--timeout", "-1", "tcp://127.0.0.1:0", "--out", "{dir}"], "--timeout"),
        (["send-file", "--length-size", "1", "tcp://127.0.0.1:1", "{file}"], "cannot carry"),
        (["recv-file", "--length-size", "1", "tcp://127.0.0.1:0", "--out", "{dir}"], "1-byte"),
        (["send-file", "--length-adjustment", "4", "tcp://127.0.0.1:1", "{file}"], "ready"),
        (["send-file", "--strip", "0", "tcp://127.0.0.1:1", "{file}"], "comes back changed"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], argv: List[str], words: str
) -> None:
    (tmp_path / "f").write_bytes(b"x")
    values = {"file": str(tmp_path / "f"), "dir": str(tmp_path)}
    assert main([arg.format(**values) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words.format(**values) in one_error(err)


def test_port_in_use(
    cli_process: Start, sock_dir: str, out: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver(cli_process, sock_dir, out)
    assert main(["recv-file", address(sock_dir), "--out", str(out)]) == 1
    assert "address in use" in one_error(capsys.readouterr().err)


def _chunks(data: bytes, size: int) -> Tuple[bytes, ...]:
    return tuple(CHUNK + data[i : i + size] for i in range(0, len(data), size))


def test_the_wire_format(fake_receiver: Callable[[Any], str], files: Callable[..., str]) -> None:
    """What send-file puts on the wire, frame by frame."""
    seen: List[bytes] = []

    def record(conn: Any) -> None:
        for frame in conn:
            seen.append(frame)
            if frame[:1] == b"H":
                conn.send(READY)
            elif frame == END:
                conn.send(encode_ack(info_of("f", data)))

    data = os.urandom(MiB + 5)
    assert main(["send-file", fake_receiver(record), files("f", data)]) == 0
    assert seen == [encode_header(info_of("f", data)), *_chunks(data, MiB), END]
    assert ACK == b"A"


# --- stray connections, local file errors, framings ----------------------------------------


def test_a_port_probe_and_an_idle_connection_do_not_take_the_session(
    cli_process: Start, sock_dir: str, out: Any, files: Callable[..., str]
) -> None:
    recv = receiver(cli_process, sock_dir, out, "--timeout", "30")
    path = f"{sock_dir}/r.sock"
    with socket.socket(socket.AF_UNIX) as probe:  # connect and close: a health check
        probe.connect(path)
    recv.wait_for("closed the connection without sending a file")
    with socket.socket(socket.AF_UNIX) as idle:  # connected, silent, still open
        idle.connect(path)
        assert main(["send-file", address(sock_dir), files("f", b"data")]) == 0
        assert recv.wait() == 0
    assert os.listdir(out) == ["f"]
    assert "Traceback" not in recv.stderr and error_lines(recv.stderr) == []


def test_an_idle_connection_is_dropped_after_the_timeout(
    cli_process: Start, sock_dir: str, out: Any, files: Callable[..., str]
) -> None:
    recv = receiver(cli_process, sock_dir, out, "--timeout", "0.3")
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(f"{sock_dir}/r.sock")
        recv.wait_for("dropping the connection: timed out")
        idle.settimeout(WAIT)
        assert idle.recv(1) == b""  # recv-file closed it
    assert recv.proc.poll() is None  # still waiting for its session
    assert main(["send-file", address(sock_dir), files("f", b"data")]) == 0
    assert recv.wait() == 0
    assert os.listdir(out) == ["f"]


def test_a_silent_sender_mid_file_times_out(
    cli_process: Start, sock_dir: str, out: Any, fake_sender: Callable[[], Any]
) -> None:
    recv = receiver(cli_process, sock_dir, out, "--timeout", "0.3")
    with fake_sender() as conn:
        conn.send(encode_header(info_of("f", b"x" * 1000)))
        assert conn.recv() == READY
        conn.send(CHUNK + b"x" * 400)
        assert recv.wait() == 1  # then nothing more: recv-file gives up
    assert "f: connection lost (timed out) after 400 of 1000 bytes" in one_error(recv.stderr)
    assert os.listdir(out) == []


def test_a_file_that_cannot_be_opened_fails_alone(
    cli_process: Start,
    sock_dir: str,
    out: Any,
    files: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    offers = files_module._offers

    def vanishing(paths: List[str]) -> Any:
        checked = offers(paths)
        os.unlink(paths[0])  # gone between hashing and sending
        return checked

    monkeypatch.setattr(files_module, "_offers", vanishing)
    a, b = files("a", b"data a"), files("b", b"data b")
    recv = receiver(cli_process, sock_dir, out)
    assert main(["send-file", address(sock_dir), a, b]) == 1
    line = one_error(capsys.readouterr().err)
    assert line.endswith(f"{a}: cannot read: No such file or directory")
    assert recv.wait() == 0  # the receiver never heard of a
    assert os.listdir(out) == ["b"]


def test_a_read_error_midway_fails_that_file_and_the_session_goes_on(
    cli_process: Start,
    sock_dir: str,
    out: Any,
    files: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    class FailingFile(io.FileIO):
        def readinto(self, buffer: Any) -> int:
            if self.tell() >= MiB:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return super().readinto(buffer) or 0

    def opener(path: str, mode: str) -> Any:
        return FailingFile(path) if path == bad else open(path, mode)

    offers = files_module._offers

    def hashed_then_failing(paths: List[str]) -> Any:
        checked = offers(paths)  # hashing reads it whole; then the disk fails
        monkeypatch.setattr(files_module, "open", opener, raising=False)
        return checked

    monkeypatch.setattr(files_module, "_offers", hashed_then_failing)
    bad, good = files("bad.bin", os.urandom(3 * MiB)), files("good", b"fine")
    recv = receiver(cli_process, sock_dir, out)
    assert main(["send-file", address(sock_dir), bad, good]) == 1
    line = one_error(capsys.readouterr().err)
    assert line.endswith(f"{bad}: cannot read: Input/output error")
    assert recv.wait() == 1
    assert "bad.bin: size mismatch" in one_error(recv.stderr)
    assert os.listdir(out) == ["good"]


@pytest.mark.parametrize("extra", [b"+", b"+" * (3 * MiB)], ids=["one-byte", "more-chunks"])
def test_a_file_that_grows_while_sent_is_reported_and_not_saved(
    cli_process: Start,
    sock_dir: str,
    out: Any,
    files: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: bytes,
) -> None:
    offers = files_module._offers

    def growing(paths: List[str]) -> Any:
        checked = offers(paths)
        with open(paths[0], "ab") as f:  # grows between hashing and sending
            f.write(extra)
        return checked

    monkeypatch.setattr(files_module, "_offers", growing)
    log, other = files("log", b"x" * MiB), files("other", b"fine")  # a whole chunk, then more
    recv = receiver(cli_process, sock_dir, out)
    assert main(["send-file", address(sock_dir), log, other]) == 1
    assert one_error(capsys.readouterr().err).endswith("log changed while it was being sent")
    assert recv.wait() == 1
    assert "log: more data than the 1048576 bytes announced" in one_error(recv.stderr)
    assert os.listdir(out) == ["other"]


def test_a_two_byte_length_field_means_smaller_chunks(
    cli_process: Start, sock_dir: str, out: Any, files: Callable[..., str]
) -> None:
    data = os.urandom(300_000)
    recv = receiver(cli_process, sock_dir, out, "--length-size", "2")
    assert main(["send-file", "--length-size", "2", address(sock_dir), files("f", data)]) == 0
    assert recv.wait() == 0
    assert (out / "f").read_bytes() == data
