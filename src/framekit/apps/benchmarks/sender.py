"""The sender process of the end-to-end benchmarks: it blasts pre-encoded frames.

Design notes
------------
The sender runs in its own *process*, so on a two-core machine it has a core
to itself and the receiver's time is the receiver's work, not the sender's.
One process serves a whole benchmark run: starting one costs a fraction of a
second.  It is started as ``python -m framekit.apps.benchmarks.sender`` rather than
with ``multiprocessing``: "spawn" re-imports the caller's main module (a
script without a ``__main__`` guard would run again in the child) and "fork"
is unsafe in a process that has threads.  Commands and replies are JSON lines
on its stdin and stdout.

It listens on loopback TCP and on a Unix socket.  For each run the parent
*arms* it (transport, payload size, frames per buffer, repeats), then the
receiver under test connects.  The sender accepts, sends its pre-encoded
buffer ``repeats`` times with ``sendall``, shuts its side down, waits for the
receiver to close, and acknowledges with the byte count or the error.  The
receiver connects (rather than accepts) so that every contestant, framekit's
``connect()`` included, sets up its socket its own way.

The buffer is encoded once per (size, frames per buffer) with framekit's
codec; frame ``i`` of a buffer carries :func:`~framekit.apps.benchmarks.workloads.payload`
``(i, size)``, so the receiver knows exactly what it must get.

Two more jobs serve the benchmarks of frames too large to hold
(:mod:`~framekit.apps.benchmarks.streams`).  *Stream*: send one frame of
``length`` bytes, a 4-byte length then
:func:`~framekit.apps.benchmarks.workloads.stream_chunks`, made as it goes (a
1 GiB frame is never held).  *Drain*: the other way round, for the senders
under test: receive everything until the sender shuts its side down, as fast
as ``recv_into`` goes, counting the bytes (and, when asked, hashing them from
byte ``skip`` on, and keeping the ``skip`` bytes before), then answer with one
4-byte-length-prefixed JSON frame (``bytes``, ``sha256``, ``head``) and close.

Everything is bounded: the sender's sockets have timeouts, the parent waits
for each reply with a timeout, the sender exits when its stdin closes, and
:meth:`Sender.close` kills it if it does not stop when asked.

**Ctrl-C** at a terminal goes to the whole foreground process group.  The
sender is not in it: it starts in a session of its own, and ignores SIGINT
besides, since its parent decides when it stops.  So an interrupted run leaves
no traceback from the sender, even one that is still starting, and the parent,
which stops at once, kills it with :meth:`Sender.abort` rather than waiting
for a blast to finish.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from typing import Any, Dict, Optional, Tuple

from .workloads import make_payloads, stream_chunks

__all__ = ["Sender"]

log = logging.getLogger("framekit")

#: Seconds any single socket operation of the sender may block.
IO_TIMEOUT = 60.0
#: Seconds an armed sender waits for its receiver to connect.
ACCEPT_TIMEOUT = 10.0
#: Seconds the parent waits for the process to start or to acknowledge a run.
REPLY_TIMEOUT = 120.0


def _encode(size: int, per_buffer: int) -> bytes:
    from framekit import LengthPrefixed

    return LengthPrefixed(4).encode_many(make_payloads(size, per_buffer))


def _blast(listener: socket.socket, buffer: bytes, repeats: int) -> int:
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(IO_TIMEOUT)
        view = memoryview(buffer)
        for _ in range(repeats):
            conn.sendall(view)
        conn.shutdown(socket.SHUT_WR)
        # Wait for the receiver to close: closing first could reset the
        # connection while unread bytes are still in flight.
        while conn.recv(65536):
            pass
    return len(buffer) * repeats


def _stream(listener: socket.socket, length: int) -> int:
    """Send one ``length``-byte frame (4-byte length, then the streamed payload)."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(IO_TIMEOUT)
        conn.sendall(struct.pack(">I", length))
        for chunk in stream_chunks(length):
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):  # as in _blast
            pass
    return 4 + length


#: Bytes per ``recv_into`` of the drain.
_DRAIN_READ = 1 << 20


def _drain(listener: socket.socket, skip: int, digest: bool) -> int:
    """Receive until the peer shuts down; answer with what came (see the module notes)."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(IO_TIMEOUT)
        buffer = bytearray(_DRAIN_READ)
        view = memoryview(buffer)
        hashed = hashlib.sha256() if digest else None
        head = bytearray()
        total = 0
        recv_into = conn.recv_into
        while True:
            n = recv_into(buffer)
            if not n:
                break
            if hashed is not None:
                if total < skip:
                    head += view[: min(n, skip - total)]
                hashed.update(view[max(0, skip - total) : n])
            total += n
        answer = json.dumps(
            {
                "bytes": total - skip,
                "sha256": hashed.hexdigest() if hashed is not None else None,
                "head": head.hex() if hashed is not None else None,
            }
        ).encode()
        conn.sendall(struct.pack(">I", len(answer)) + answer)
    return total


def _serve(unix_path: str) -> None:
    """The sender process: listen, then blast on command until stdin closes or says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (module notes)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with tcp, unix:
        tcp.bind(("127.0.0.1", 0))
        unix.bind(unix_path)
        listeners = {"tcp": tcp, "unix": unix}
        for listener in listeners.values():
            listener.listen(8)
            listener.settimeout(ACCEPT_TIMEOUT)
        host, port = tcp.getsockname()[:2]
        _reply({"tcp": f"tcp://{host}:{port}", "unix": f"unix://{unix_path}"})
        buffers: Dict[Tuple[int, int], bytes] = {}
        for line in sys.stdin:
            command = json.loads(line)
            if command[0] == "stop":
                break
            try:
                if command[0] == "stream":
                    _, transport, length = command
                    _reply(["sent", _stream(listeners[transport], length)])
                    continue
                if command[0] == "drain":
                    _, transport, skip, digest = command
                    _reply(["sent", _drain(listeners[transport], skip, digest)])
                    continue
                _, transport, size, per_buffer, repeats = command
                buffer = buffers.get((size, per_buffer))
                if buffer is None:
                    buffer = buffers[size, per_buffer] = _encode(size, per_buffer)
                _reply(["sent", _blast(listeners[transport], buffer, repeats)])
            except Exception as exc:
                _reply(["error", f"{type(exc).__name__}: {exc}"])


def _reply(message: Any) -> None:
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the parent is gone: so are we, quietly
        os._exit(0)


class Sender:
    """Handle on the sender process (a session resource; see :meth:`close`).

    Attributes:
        addresses: ``{"tcp": "tcp://127.0.0.1:PORT", "unix": "unix:///..."}``,
            where receivers connect.

    Raises:
        RuntimeError: the process did not start or did not report its addresses.
    """

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="fkb-", dir="/tmp" if os.path.isdir("/tmp") else None)
        env = dict(os.environ)
        # The child must import this very framekit, wherever it was imported from.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "framekit.apps.benchmarks.sender", os.path.join(self._dir, "s")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=env,
            start_new_session=True,  # out of the terminal's reach (module notes)
        )
        self._pending = b""
        self._armed = False
        try:
            self.addresses: Dict[str, str] = self._receive("start")
        except BaseException:
            self.close()
            raise

    def _send(self, message: Any) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")

    def _receive(self, what: str) -> Any:
        """Read one JSON line from the process, waiting at most ``REPLY_TIMEOUT`` s."""
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], REPLY_TIMEOUT)
            if not ready:
                raise RuntimeError(
                    f"the sender process did not answer ({what}) in {REPLY_TIMEOUT} s"
                )
            data = os.read(fd, 65536)
            if not data:
                raise RuntimeError(f"the sender process died ({what})")
            self._pending += data
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    def arm(self, transport: str, size: int, per_buffer: int, repeats: int) -> None:
        """Have the sender blast the next connection on ``transport``.

        Args:
            transport: ``"tcp"`` or ``"unix"``.
            size: payload size.
            per_buffer: frames in the pre-encoded buffer.
            repeats: how many times the buffer is sent.
        """
        self._command(["blast", transport, size, per_buffer, repeats])

    def arm_stream(self, transport: str, length: int) -> None:
        """Have the sender send one ``length``-byte frame to the next connection."""
        self._command(["stream", transport, length])

    def arm_drain(self, transport: str, skip: int, digest: bool) -> None:
        """Have the sender drain the next connection and answer with what came.

        Args:
            skip: bytes kept apart as the ``head`` (the header), not hashed.
            digest: whether to hash the rest (the check run) or only count it.
        """
        self._command(["drain", transport, skip, digest])

    def _command(self, command: Any) -> None:
        if self._armed:  # a run whose acknowledgement was never collected
            self.wait()
        self._send(command)
        self._armed = True

    def wait(self) -> int:
        """Wait for the armed run's acknowledgement; return the bytes sent (or drained).

        Raises:
            RuntimeError: the sender failed (its error is in the message) or
                did not answer in time.
        """
        self._armed = False
        status, value = self._receive("run")
        if status != "sent":
            raise RuntimeError(f"the sender failed: {value}")
        return int(value)

    def close(self) -> None:
        """Stop the process (kill it if it does not stop) and remove its socket file."""
        try:
            if self._process.poll() is None:
                try:
                    self._send(["stop"])
                    assert self._process.stdin is not None
                    self._process.stdin.close()
                except OSError:
                    pass
                try:
                    self._process.wait(5)
                except subprocess.TimeoutExpired:
                    log.warning("framekit bench: the sender process did not stop; killing it")
                    self._process.kill()
                    self._process.wait(5)
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()
            if self._process.stdin is not None and not self._process.stdin.closed:
                self._process.stdin.close()
            shutil.rmtree(self._dir, ignore_errors=True)

    def abort(self) -> None:
        """Kill the process now (an interrupted run) and remove its socket file."""
        try:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait(5)
        finally:
            for stream in (self._process.stdout, self._process.stdin):
                if stream is not None and not stream.closed:
                    stream.close()
            shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid


if __name__ == "__main__":
    _serve(sys.argv[1])
