"""The server benchmark: echo servers under many connections with frames in flight.

Design notes
------------
A request/response server's job is different from decoding a stream: every
frame in gets a frame out, on many connections at once.  A comparison here is
one *load* (``connections`` x ``window`` frames of ``size`` bytes in flight)
and its contestants are echo servers (:mod:`.echo_servers`, and Netty).

Each server runs in a process of its own, started on first use and kept for
the whole session (a session resource), so that the three loads share one
start-up.  A JIT needs load before it compiles the hot path: Netty, measured
first under 100 x 16 straight after its start, ran at 303k frames/s where the
same process gave 627k to 727k a few seconds later.  So a server that says it
needs it (``ServerSpec.jit_warmup``: Netty's JVM) gets that many seconds of
load (:data:`JIT_WARMUP_LOAD`) once, when it starts, before any run; the
Python servers have no JIT and need none.  With two CPUs or
more the server is pinned to the first and the load generator (a process
too, :mod:`.loadgen`) to the second, so neither takes the other's core.

A run is the load generator's warm-up, then its measured run; it reports its
own rate and latencies (the harness's :class:`~.harness.SelfTimed`), because
it is the load generator, not the parent, that knows when frames came back.
Every echoed frame is compared byte for byte with the frame sent, in every
run, timed or not: a server that gets one byte wrong fails its row.  The
check run before the timed ones is short (:data:`CHECK_SECONDS`).

The loads: 100 connections x 16 frames in flight (many busy clients), 10 x 64
(few clients, deep pipelines) and 100 x 1 (ping-pong: each client waits for
its answer, so latency is the limit), 64-byte payloads.

The floor echoes raw bytes as they arrive, in C (no framing): the load
generator must reach several times the fastest framed server against it, or
the table would measure the load generator.  Netty 4.1 (NIO, one event loop,
its own ``LengthFieldBasedFrameDecoder``/``LengthFieldPrepender``) runs when
``java``, ``javac`` and Debian's netty jars (``apt install libnetty-java``)
are there; its source ships in ``netty/`` and is compiled once into a cache
directory.

Multi-core: ``framekit serve --workers N`` (N processes sharing the port with
``SO_REUSEPORT``), for N = 1 and 2, neither it nor the load generator pinned,
so on a 2-core machine they share both cores.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .echo_servers import SERVERS
from .harness import ROLE_FRAMEKIT, ROLE_PEER, Contestant, SelfTimed, Session
from .loadgen import LoadResult, LoadSpec, run_load

__all__ = [
    "CHECK_SECONDS",
    "FLOOR",
    "LOADS",
    "NETTY",
    "PAYLOAD_SIZE",
    "ServerProcess",
    "ServerSpec",
    "ServerWorkload",
    "netty_unavailable",
    "server_contestants",
    "worker_contestants",
]

#: (connections, frames in flight on each): the loads of the benchmark.
LOADS: Tuple[Tuple[int, int], ...] = ((100, 16), (10, 64), (100, 1))
PAYLOAD_SIZE = 64
#: Seconds of the check run, whatever the run length (every run is verified; this one only
#: has to be short, and long enough for a cold server to accept its clients and answer).
CHECK_SECONDS = 0.25
#: The load a server with a JIT is given once when it starts (``ServerSpec.jit_warmup``).
JIT_WARMUP_LOAD = (100, 16)
#: Seconds of it for Netty: its JVM reached its steady rate after about three.
NETTY_JIT_WARMUP = 4.0
#: Seconds a server process has to print its address (javac and a JVM included).
START_TIMEOUT = 60.0

FLOOR = "floor"
NETTY = "netty"

_ADDRESS = re.compile(r"tcp://[0-9.]+:[0-9]+")
_NETTY_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netty")
_NETTY_CLASS = "FramekitNettyEcho"
#: The jars the Netty server needs, as Debian's libnetty-java installs them.
_NETTY_JARS = ("netty-common", "netty-buffer", "netty-transport", "netty-codec", "netty-resolver")
_JAVA_DIR = "/usr/share/java"


def _cpus() -> List[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def placement(pinned: bool) -> Tuple[Optional[int], Optional[int]]:
    """(server CPU, load generator CPU): different CPUs when there are two, else ``None``."""
    cpus = _cpus()
    if pinned and len(cpus) >= 2:
        return cpus[0], cpus[1]
    return None, None


# --- server processes -----------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """How to start one contestant's server process.

    Attributes:
        name: the contestant's id.
        argv: ``argv()`` is its command line (it may build things first: javac).
        pinned: pin the server and the load generator to different CPUs.
        jit_warmup: seconds of :data:`JIT_WARMUP_LOAD` to give it once when it
            starts, before any run (a JIT compiles its hot path under load).
    """

    name: str
    argv: Callable[[], List[str]]
    pinned: bool = True
    jit_warmup: float = 0.0


def _pinned(argv: List[str], cpu: Optional[int]) -> List[str]:
    """``argv`` run with its affinity set to ``cpu`` first (inherited by every thread it makes)."""
    if cpu is None:
        return argv
    trampoline = (
        "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); "
        "os.execvp(sys.argv[2], sys.argv[2:])"
    )
    return [sys.executable, "-c", trampoline, str(cpu), *argv]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The child must import this very framekit, wherever it was imported from.
    src = os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


class ServerProcess:
    """A running server (a session resource: :meth:`close` stops it).

    Attributes:
        address: where it listens (``tcp://127.0.0.1:PORT``).
        pid: its process id.
        cpu: the CPU it is pinned to, or ``None``.

    Raises:
        RuntimeError: it exited, or did not say where it listens in time
            (the message ends with its output).
    """

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.cpu, self.loadgen_cpu = placement(spec.pinned)
        self._log = tempfile.TemporaryFile(mode="w+", prefix="fkb-server-")  # noqa: SIM115
        self._process = subprocess.Popen(
            _pinned(spec.argv(), self.cpu),
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
        )
        self.pid = self._process.pid
        try:
            self.address = self._wait_for_address()
            self._probe()
            if spec.jit_warmup > 0:
                self._warm_up(spec.jit_warmup)
        except BaseException:
            self.close()
            raise

    def _probe(self) -> None:
        """One frame there and back: the server is up, classes loaded, before any run."""
        from ...addresses import parse_address

        addr = parse_address(self.address)
        frame = b"\0\0\0\5probe"
        with socket.create_connection(addr.sockaddr[:2], timeout=START_TIMEOUT) as sock:
            sock.sendall(frame)
            echo = b""
            while len(echo) < len(frame):
                data = sock.recv(len(frame) - len(echo))
                if not data:
                    break
                echo += data
        if echo != frame:
            raise RuntimeError(f"the {self.spec.name} server echoed {echo!r} to {frame!r}")

    def _warm_up(self, seconds: float) -> None:
        """Load it for ``seconds`` (unmeasured, but verified) so that its JIT compiles."""
        connections, window = JIT_WARMUP_LOAD
        result = run_load(
            LoadSpec(
                address=self.address,
                connections=connections,
                window=window,
                size=PAYLOAD_SIZE,
                warmup=0.0,
                duration=seconds,
                cpu=self.loadgen_cpu,
                server_pid=self.pid,
            )
        )
        if result.error is not None:
            raise RuntimeError(f"the {self.spec.name} server failed its warm-up: {result.error}")

    def output(self) -> str:
        """What the process has printed so far (its last 2000 characters)."""
        self._log.seek(0)
        return self._log.read()[-2000:]

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = _ADDRESS.search(self.output())
            if found:
                return found.group(0)
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the {self.spec.name} server exited with status {self._process.returncode}: "
                    f"{self.output().strip()}"
                )
            time.sleep(0.02)
        raise RuntimeError(f"the {self.spec.name} server did not start: {self.output().strip()}")

    def check_alive(self) -> None:
        """Raise ``RuntimeError`` if the process has exited."""
        if self._process.poll() is not None:
            raise RuntimeError(
                f"the {self.spec.name} server died (status {self._process.returncode}): "
                f"{self.output().strip()}"
            )

    def close(self) -> None:
        """Stop the process (stdin closed and Ctrl-C; killed if it lingers); drop its log."""
        try:
            if self._process.poll() is None:
                try:
                    assert self._process.stdin is not None
                    self._process.stdin.close()
                    self._process.send_signal(signal.SIGINT)  # framekit serve stops its workers
                    self._process.wait(5.0)
                except (OSError, subprocess.TimeoutExpired):
                    self._process.kill()
                    self._process.wait(5.0)
        finally:
            if self._process.stdin is not None and not self._process.stdin.closed:
                self._process.stdin.close()
            self._log.close()


# --- the workload and its runs -------------------------------------------------------------


class ServerWorkload:
    """One load: ``connections`` x ``window`` frames of ``size`` bytes in flight, for
    ``duration`` s after ``warmup`` s.

    The harness times runs per frame (``frames`` is 1): a run reports its own
    rate (see :class:`~.harness.SelfTimed`).
    """

    frames = 1

    def __init__(
        self,
        session: Session,
        connections: int,
        window: int,
        size: int,
        duration: float,
        warmup: float,
    ) -> None:
        self.session = session
        self.connections = connections
        self.window = window
        self.size = size
        self.payload_bytes = size
        self.duration = duration
        self.warmup = warmup

    def server(self, spec: ServerSpec) -> ServerProcess:
        """The session's server process for ``spec``, started on first use."""
        return self.session.resource(f"server:{spec.name}", lambda: ServerProcess(spec))

    def verify(self, output: Any) -> Optional[str]:
        """``None`` if the run was right: no wrong echo, no lost connection, frames echoed."""
        if not isinstance(output, SelfTimed) or not isinstance(output.detail, LoadResult):
            return f"unexpected output {type(output).__name__}: a run returns what it measured"
        result = output.detail
        if result.error is not None:
            return result.error
        if result.frames <= 0:
            return "no frame came back in the run"
        return None


def _metrics(result: LoadResult) -> dict[str, float]:
    metrics = {
        "frames": float(result.frames),
        "seconds": result.seconds,
        "p50_us": result.p50_us,
        "p99_us": result.p99_us,
        "max_us": result.max_us,
        "min_conn_frames": float(result.min_conn_frames),
        "loadgen_cpu": result.loadgen_cpu,
    }
    if result.server_cpu is not None:
        metrics["server_cpu"] = result.server_cpu
    return metrics


class _ServerRun:
    """One run of the load against one server: start it (outside the timer), then load it."""

    def __init__(self, w: ServerWorkload, spec: ServerSpec, keep: bool) -> None:
        self._w = w
        self._spec = spec
        self._check = keep
        self._server: Optional[ServerProcess] = None

    def before(self) -> None:
        self._server = self._w.server(self._spec)

    def __call__(self) -> SelfTimed:
        server = self._server or self._w.server(self._spec)
        w = self._w
        spec = LoadSpec(
            address=server.address,
            connections=w.connections,
            window=w.window,
            size=w.size,
            warmup=0.0 if self._check else w.warmup,
            duration=CHECK_SECONDS if self._check else w.duration,
            cpu=server.loadgen_cpu,
            server_pid=server.pid,
        )
        result = run_load(spec)
        return SelfTimed(result.frames, result.seconds, _metrics(result), result)

    def after(self) -> None:
        if self._server is not None:
            self._server.check_alive()


def _make(spec: ServerSpec) -> Callable[[ServerWorkload, bool], _ServerRun]:
    def make(w: ServerWorkload, keep: bool) -> _ServerRun:
        return _ServerRun(w, spec, keep)

    return make


# --- the contestants ------------------------------------------------------------------------


def _python_server(name: str) -> ServerSpec:
    return ServerSpec(
        name, lambda: [sys.executable, "-m", "framekit.apps.benchmarks.echo_servers", name]
    )


def _netty_jars() -> List[str]:
    jars = [os.path.join(_JAVA_DIR, f"{jar}.jar") for jar in _NETTY_JARS]
    jctools = os.path.join(_JAVA_DIR, "jctools-core.jar")  # Debian's netty uses it unshaded
    return jars + ([jctools] if os.path.exists(jctools) else [])


def netty_unavailable() -> Optional[str]:
    """Why the Netty server cannot run here, or ``None`` if it can."""
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return f"needs {tool} (a JDK) and Debian's libnetty-java"
    missing = [jar for jar in _netty_jars() if not os.path.exists(jar)]
    if missing:
        return f"needs Netty 4.1 jars (apt install libnetty-java): {', '.join(missing)} not found"
    return None


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "framekit", "netty-echo")


def _netty_argv() -> List[str]:
    """Compile the Netty server (once per source and jars) and return its command line."""
    source = os.path.join(_NETTY_SOURCE, f"{_NETTY_CLASS}.java")
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read())
    classpath = os.pathsep.join(_netty_jars())
    digest.update(classpath.encode())
    out = os.path.join(_cache_dir(), digest.hexdigest()[:16])
    if not os.path.exists(os.path.join(out, f"{_NETTY_CLASS}.class")):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        staging = tempfile.mkdtemp(prefix="build-", dir=os.path.dirname(out))
        proc = subprocess.run(
            ["javac", "-nowarn", "-cp", classpath, "-d", staging, source],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"javac failed: {proc.stderr.strip()[-2000:]}")
        try:
            os.rename(staging, out)
        except OSError:  # another run compiled it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return ["java", "-cp", os.pathsep.join([out, classpath]), _NETTY_CLASS]


def _netty_contestant() -> Contestant:
    spec = ServerSpec(NETTY, _netty_argv, jit_warmup=NETTY_JIT_WARMUP)
    return Contestant(
        NETTY,
        "Netty 4.1 NIO (1 event loop)",
        ROLE_PEER,
        _make(spec),
        available=netty_unavailable,
    )


def server_contestants(names: Optional[Sequence[str]] = None) -> List[Contestant]:
    """The echo servers of :mod:`.echo_servers` that are listed, then Netty, then the floor.

    Args:
        names: only these (in this order of definition), if given.
    """
    out = []
    for s in SERVERS.values():
        if s.listed and s.name != FLOOR:
            out.append(Contestant(s.name, s.label, s.role, _make(_python_server(s.name)), s.needs))
    out.append(_netty_contestant())
    floor = SERVERS[FLOOR]
    out.append(
        Contestant(floor.name, floor.label, floor.role, _make(_python_server(FLOOR)), floor.needs)
    )
    return [c for c in out if names is None or c.name in names]


def _cli_workers(workers: int) -> ServerSpec:
    argv = [
        sys.executable,
        "-m",
        "framekit",
        "serve",
        "tcp://127.0.0.1:0",
        "--workers",
        str(workers),
    ]
    return ServerSpec(f"serve-{workers}w", lambda: list(argv), pinned=False)


def worker_contestants() -> List[Contestant]:
    """``framekit serve --workers 1`` and ``--workers 2``, unpinned (they share every CPU)."""
    return [
        Contestant(
            f"serve-{n}w",
            f"framekit serve --workers {n}",
            ROLE_FRAMEKIT,
            _make(_cli_workers(n)),
            needs=("framekit._speedups",),
        )
        for n in (1, 2)
    ]


def load_title(connections: int, window: int) -> str:
    """``100 connections x 16 in flight``; ``(ping-pong)`` when one frame is in flight."""
    pong = " (ping-pong)" if window == 1 else ""
    return f"{connections} connections x {window} in flight{pong}"


def scaled(seconds: float, scale: float, least: float = 0.05) -> float:
    """A run length times the session's scale, never below ``least``."""
    return max(least, seconds * scale) if math.isfinite(scale) else seconds
