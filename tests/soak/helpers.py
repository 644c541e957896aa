"""A server in a subprocess (its RSS, descriptors and threads read from /proc), and its attackers.

The server runs ``server_main.py`` (blocking, asyncio or uvloop), or the
``framekit serve`` command, in its own process: what the attacks cost it is
read from ``/proc/PID`` (``VmRSS``, ``VmHWM``, ``fd/``, ``task/``), apart from
the test's own clients.  The clients speak the default framing
(``LengthPrefixed()``: a 4-byte big-endian length, then the payload) over raw
sockets, so a hostile one can send exactly the bytes it wants.

Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_MAIN = os.path.join(HERE, "server_main.py")

#: The servers the attacks run against.
KINDS = ["blocking", "asyncio", "uvloop"]
#: Bound on a subprocess's start, stop, or one answer from it.
WAIT = 20.0
MiB = 1024 * 1024
#: The default ``max_frame_size`` of ``LengthPrefixed()`` (header included).
MAX_FRAME = 16 * MiB
#: ``SO_LINGER`` on, 0 s: ``close()`` sends an RST.
LINGER_0 = struct.pack("ii", 1, 0)

#: For a server process: glibc gives every allocation from 128 KiB up its own
#: mapping, unmapped when freed, so RSS counts what is held rather than what
#: the allocator keeps for later (a fixed threshold also turns off glibc's
#: raising it to the size of the last large block freed).
MMAP_ALWAYS = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}

_HEADER = struct.Struct(">I")


def kind_params() -> List[Any]:
    """``KINDS`` as pytest params, uvloop skipped where it is not installed."""
    try:
        import uvloop  # noqa: F401

        have_uvloop = True
    except ImportError:  # pragma: no cover - uvloop is a Linux/macOS test extra
        have_uvloop = False
    return [
        pytest.param(
            kind,
            marks=pytest.mark.skipif(
                kind == "uvloop" and not have_uvloop, reason="uvloop is not installed"
            ),
        )
        for kind in KINDS
    ]


def frame(payload: bytes) -> bytes:
    """``payload`` framed with the default codec."""
    return _HEADER.pack(len(payload)) + payload


def header(length: int) -> bytes:
    """The default codec's header announcing a ``length``-byte payload."""
    return _HEADER.pack(length)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --- the server process ---------------------------------------------------------------


class ServerProcess:
    """A server in a subprocess: ``server_main.py`` with a config, or a ``framekit`` command.

    Attributes:
        address: the URL it listens on; ``host`` and ``port`` for TCP.
        lines: its stderr (log) lines so far.
        dropped: the ``serve()`` arguments it dropped (``compat`` mode only).
    """

    def __init__(
        self,
        config: Optional[Dict[str, Any]] = None,
        *,
        command: Optional[Sequence[str]] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> None:
        if command is None:
            assert config is not None
            argv = [sys.executable, SERVER_MAIN, json.dumps(config)]
        else:
            argv = [sys.executable, "-m", "framekit", *command]
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1", **(env or {}))
        self._command = command is not None
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.pid = self.proc.pid
        self.lines: List[str] = []
        self._stdout: queue.Queue[Optional[str]] = queue.Queue()
        self._stderr: queue.Queue[Optional[str]] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.dropped: List[str] = []
        if command is None:
            first = json.loads(self._next_line(self._stdout))
            self.address: str = first["address"]
            self.dropped = first["dropped"]
        else:
            self.address = self.wait_for(r"listening on ([^\s;]+)").group(1)
        match = re.match(r"\w+://(?:\[(.*)\]|([^:/]*)):(\d+)", self.address)
        self.host = (match.group(1) or match.group(2)) if match else ""
        self.port = int(match.group(3)) if match else 0

    def _read(self, stream: Any, lines: queue.Queue[Optional[str]]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if lines is self._stderr:
                self.lines.append(line)
            lines.put(line)
        lines.put(None)

    def _next_line(self, lines: queue.Queue[Optional[str]]) -> str:
        try:
            line = lines.get(timeout=WAIT)
        except queue.Empty:
            line = None
        if line is None:
            self.kill()
            raise AssertionError(f"the server process said nothing; stderr:\n{self.log}")
        return line

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """Wait for a stderr line matching ``pattern``; return the match."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                match = re.search(pattern, line)
                if match:
                    return match
            seen = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self._stderr.empty()):
                raise AssertionError(f"no log line matching {pattern!r}; stderr:\n{self.log}")
            with contextlib.suppress(queue.Empty):
                self._stderr.get(timeout=min(remaining, 0.2))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    # -- what it costs -------------------------------------------------------------

    def _status(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")

    def rss(self) -> int:
        """Resident memory now, in bytes."""
        return self._status("VmRSS")

    def peak_rss(self) -> int:
        """The most resident memory so far (since :meth:`reset_peak`), in bytes."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        """Start :meth:`peak_rss` over from the current RSS (Linux 4.0+)."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")

    def fds(self) -> int:
        """Open file descriptors."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stats(self) -> Dict[str, Any]:
        """Ask the server for its live decoders and active connections."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        self.proc.stdin.flush()
        return json.loads(self._next_line(self._stdout))  # type: ignore[no-any-return]

    # -- stopping --------------------------------------------------------------

    def stop(self) -> int:
        """Shut the server down (its stdin ends; a command gets SIGINT); its exit status."""
        if self.proc.poll() is None:
            if self._command:
                self.proc.send_signal(signal.SIGINT)
            elif self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
        try:
            status = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack
            self.proc.wait(WAIT)
            raise AssertionError(f"the server did not stop; stderr:\n{self.log}") from None
        for reader in self._readers:
            reader.join(WAIT)
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


@contextlib.contextmanager
def server_process(
    kind: str,
    address: str = "tcp://127.0.0.1:0",
    *,
    compat: bool = False,
    env: Optional[Dict[str, str]] = None,
    **options: Any,
) -> Iterator[ServerProcess]:
    """Run a ``kind`` server in a subprocess for the ``with`` block; kill it at the end.

    ``options`` are ``server_main.py``'s config (``kwargs``, ``certfile``,
    ``nofile``, ``gc``, ``tracked``); ``env`` adds to its environment.  The
    environment variable ``FRAMEKIT_SOAK_COMPAT=1`` (or ``compat=True``) drops
    the ``serve()`` arguments the framekit under test does not take, to
    measure an older one.
    """
    compat = compat or os.environ.get("FRAMEKIT_SOAK_COMPAT", "") not in ("", "0")
    server = ServerProcess({"kind": kind, "address": address, "compat": compat, **options}, env=env)
    try:
        yield server
    finally:
        server.kill()


# --- honest clients -------------------------------------------------------------


async def open_raw(host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket connected to ``host:port``."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes; ``ConnectionError`` on EOF."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < n:
        chunk = await loop.sock_recv(sock, min(n - len(data), 1024 * 1024))
        if not chunk:
            raise ConnectionError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


async def recv_frame(sock: socket.socket) -> bytes:
    (length,) = _HEADER.unpack(await recv_exactly(sock, 4))
    return await recv_exactly(sock, length)


async def read_until_closed(sock: socket.socket, timeout: float) -> bool:
    """Read and drop everything until the server closes (True) or ``timeout`` (False)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout) if hasattr(asyncio, "timeout") else _null():
            while await loop.sock_recv(sock, 65536):
                pass
    except (ConnectionError, OSError):
        return True
    except (asyncio.TimeoutError, TimeoutError):
        return False
    return True


@contextlib.asynccontextmanager
async def _null() -> Any:  # pragma: no cover - Python < 3.11
    yield


async def echo_round_trip(host: str, port: int, payload: bytes = b"ping") -> None:
    """Connect, have one frame echoed byte-exact, close; any failure raises."""
    sock = await open_raw(host, port)
    with sock:
        await asyncio.get_running_loop().sock_sendall(sock, frame(payload))
        echoed = await recv_frame(sock)
    if echoed != payload:
        raise AssertionError(f"echoed {echoed[:20]!r}... for {payload[:20]!r}...")


async def served_within(host: str, port: int, timeout: float, retry: float = 0.1) -> float:
    """Retry an echo round trip until one succeeds; the seconds it took.

    A server at ``max_connections`` accepts and closes at once, so each try
    fails fast; a try that hangs is abandoned after ``retry`` * 10 seconds.

    Raises:
        AssertionError: nothing was served within ``timeout`` seconds.
    """
    start = time.monotonic()
    errors: List[str] = []
    while time.monotonic() - start < timeout:
        left = timeout - (time.monotonic() - start)
        try:
            await asyncio.wait_for(echo_round_trip(host, port), min(left, retry * 10))
            return time.monotonic() - start
        except (OSError, asyncio.TimeoutError) as exc:
            errors.append(type(exc).__name__)
        await asyncio.sleep(retry)
    raise AssertionError(
        f"no echo within {timeout:.1f} s ({len(errors)} tries: {sorted(set(errors))})"
    )


async def honest_client(host: str, port: int, payloads: Sequence[bytes], window: int = 8) -> int:
    """Send ``payloads`` as frames, at most ``window`` ahead of the echoes; check every echo.

    Returns:
        The frames echoed byte-exact (all of them, or it raises).
    """
    loop = asyncio.get_running_loop()
    sock = await open_raw(host, port)
    ahead = asyncio.Semaphore(window)

    async def send() -> None:
        for payload in payloads:
            await ahead.acquire()
            await loop.sock_sendall(sock, frame(payload))

    with sock:
        sender = asyncio.ensure_future(send())
        try:
            for n, payload in enumerate(payloads):
                echoed = await recv_frame(sock)
                if echoed != payload:
                    raise AssertionError(f"frame {n}: {len(echoed)} bytes back for {len(payload)}")
                ahead.release()
            await sender
        finally:
            sender.cancel()
    return len(payloads)


# --- hostile clients ---------------------------------------------------------------


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
    sock.close()


class Hostiles:
    """Hostile connections that hold on until :meth:`close` (or until the server drops them).

    Each attack coroutine opens its socket with :meth:`open`, which keeps it
    for the end: the server must drop the ones that hold on, not the test.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.socks: List[socket.socket] = []
        #: Attack name -> its sockets.
        self.by_attack: Dict[str, List[socket.socket]] = {}
        self.tasks: List[asyncio.Task[Any]] = []
        #: Attack name -> how many the server closed (seen by the attacker).
        self.dropped: Dict[str, int] = {}

    async def open(self, attack: str) -> socket.socket:
        sock = await open_raw(self.host, self.port)
        self.socks.append(sock)
        self.by_attack.setdefault(attack, []).append(sock)
        return sock

    def start(self, attack: Callable[[], Any], count: int) -> None:
        for _ in range(count):
            self.tasks.append(asyncio.ensure_future(self._run(attack)))

    async def _run(self, attack: Callable[[], Any]) -> None:
        try:
            await attack()
        except (OSError, ConnectionError):
            self.dropped[attack.__name__] = self.dropped.get(attack.__name__, 0) + 1

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for sock in self.socks:
            sock.close()

    def close_attack(self, attack: str) -> None:
        """Close the sockets of one attack (its coroutines end when they next use them)."""
        for sock in self.by_attack.get(attack, []):
            sock.close()

    # -- the attacks: each one a coroutine that holds its connection for as long as it can ---

    async def _send(self, sock: socket.socket, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(sock, data)

    async def _hold(self, sock: socket.socket) -> None:
        """Hold the connection, reading nothing, until the server closes it."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.2)
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    raise ConnectionError("closed by the server")
            except BlockingIOError:
                continue
            # Data (an echo) waits: read it so only EOF ends the hold.
            await loop.sock_recv(sock, 65536)

    async def idle(self) -> None:
        """Connect and send nothing."""
        await self._hold(await self.open("idle"))

    async def trickle(self, length: int = MiB, interval: float = 0.1) -> None:
        """Announce a frame, then send its payload one byte every ``interval`` seconds."""
        sock = await self.open("trickle")
        await self._send(sock, header(length))
        while True:
            await asyncio.sleep(interval)
            await self._send(sock, b"x")

    async def garbage(self) -> None:
        """Bytes that are no frame: a length far beyond the maximum, then noise."""
        sock = await self.open("garbage")
        await self._send(sock, b"\xff\xfe\xfd\xfc" + os.urandom(4096))
        await self._hold(sock)

    async def oversize(self) -> None:
        """A header announcing one byte more than the largest frame, then some of it."""
        sock = await self.open("oversize")
        await self._send(sock, header(MAX_FRAME) + b"x" * 65536)
        await self._hold(sock)

    async def reset_mid_frame(self) -> None:
        """Half a 256 KiB frame, then an RST."""
        sock = await self.open("reset_mid_frame")
        await self._send(sock, header(256 * 1024) + b"r" * (128 * 1024))
        await asyncio.sleep(0.05)
        self.socks.remove(sock)
        reset(sock)

    async def half_close(self) -> None:
        """A whole frame and half of another, then shutdown(SHUT_WR); keeps reading."""
        sock = await self.open("half_close")
        await self._send(sock, frame(b"h" * 1000) + header(1000) + b"h" * 500)
        sock.shutdown(socket.SHUT_WR)
        await self._hold(sock)

    async def never_read(self, total: int = 8 * MiB) -> None:
        """Send frames to be echoed and never read the echoes; then hold, idle, until
        :meth:`close_attack` (the server is stuck sending: it cannot notice)."""
        sock = await self.open("never_read")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        chunk = frame(b"n" * (64 * 1024 - 4))
        sent = 0
        loop = asyncio.get_running_loop()
        while sent < total:
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, chunk), 0.5)
            except asyncio.TimeoutError:
                break  # the server stopped reading: both directions are full
            sent += len(chunk)
        while sock.fileno() != -1:  # hold, reading nothing, until close_attack()
            await asyncio.sleep(0.2)

    async def hog(self, sent: int = 4 * MiB) -> None:
        """Announce a max-size frame, send ``sent`` bytes of it, stall."""
        sock = await self.open("hog")
        await self._send(sock, header(MAX_FRAME - 4) + b"g" * sent)
        await self._hold(sock)


def fd_limit_for(count: int) -> None:
    """Raise this process's soft descriptor limit to hold ``count`` more sockets."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(os.listdir("/proc/self/fd")) + count + 64
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"needs {want} descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run_bounded(coro: Any, timeout: float) -> Any:
    """Run the test's client side on a new asyncio loop, for at most ``timeout`` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def tls_client_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


def describe(server: ServerProcess) -> Tuple[int, int, int]:
    """(fds, threads, RSS in MiB) of the server now."""
    return server.fds(), server.threads(), server.rss() // MiB
