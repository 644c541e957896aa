"""The load generator process: many connections, frames in flight, every echo checked.

Design notes
------------
The work is done by :class:`~framekit.apps.benchmarks._loadgen.LoadGenerator`,
a C ``epoll`` loop with the GIL released (see its notes); this module opens
the connections, runs the warm-up and the measured run, and turns the counts
into a :class:`LoadResult`.

It runs in a process of its own (``python -m framekit.apps.benchmarks.loadgen
JSON``), pinned to its own CPU when asked, so that it never competes with the
server under test for a core; :func:`run_load` starts it and reads its JSON
answer.  While it runs it also reads the server's CPU time in ``/proc`` (Linux; its
threads and its worker processes), at the start and the end of the measured
run only, and its own: a server at one core and a load generator well below
one is the sign that the server, not the load generator, is what is measured.
(System calls per frame are not counted here: ``/proc/PID/io`` counts
``read``/``write`` but not ``recv``/``send``; use ``perf stat -e
'syscalls:sys_enter_*' -p PID`` for those.)
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["LoadResult", "LoadSpec", "percentile", "run_load"]

#: Seconds the parent waits beyond the run's own length for the process to answer.
_GRACE = 30.0
#: Seconds a connection attempt may take.
_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class LoadSpec:
    """One load: ``connections`` x ``window`` frames of ``size`` bytes in flight.

    Attributes:
        address: ``tcp://HOST:PORT`` of the server.
        connections: connections opened.
        window: frames in flight on each.
        size: payload bytes per frame.
        warmup: seconds run before measuring.
        duration: seconds measured.
        cpu: the CPU the load generator is pinned to (``None``: not pinned).
        server_pid: the server's process, whose CPU time and system calls
            are read over the measured run (``None``: not read).
    """

    address: str
    connections: int
    window: int
    size: int
    warmup: float
    duration: float
    cpu: Optional[int] = None
    server_pid: Optional[int] = None


@dataclass
class LoadResult:
    """What one run measured.

    Attributes:
        frames: frames echoed and verified in the measured run.
        seconds: its length.
        error: the first thing that went wrong (a wrong echo, a closed
            connection), or ``None``.
        histogram: round-trip latency counts by histogram bucket (ns).
        p50_us, p99_us, max_us: round-trip latency percentiles (microseconds).
        min_conn_frames: frames of the connection that completed fewest.
        loadgen_cpu: the load generator's CPU time over the run, per second
            of run (1.0: a whole core).
        server_cpu: the same for the server (all its threads and child
            processes), when read.
    """

    frames: int = 0
    seconds: float = 0.0
    error: Optional[str] = None
    histogram: Dict[int, int] = field(default_factory=dict)
    p50_us: float = float("nan")
    p99_us: float = float("nan")
    max_us: float = float("nan")
    min_conn_frames: int = 0
    loadgen_cpu: float = float("nan")
    server_cpu: Optional[float] = None

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def percentile(histogram: Dict[int, int], q: float) -> float:
    """The ``q``-quantile (0..1) of a latency histogram, in ns (the bucket's midpoint)."""
    from ._loadgen import bucket_value

    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank = q * total
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            low = bucket_value(index)
            high = bucket_value(index + 1)
            return float(low + high) / 2
    return float(bucket_value(max(histogram)))


def _cpu_seconds(pid: int) -> Optional[float]:
    """CPU seconds used so far by process ``pid`` and its children (worker processes), or
    ``None`` if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        try:
            with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            children = []
    except (OSError, ValueError):
        return None
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu + sum(_cpu_seconds(child) or 0.0 for child in children)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _connect(spec: LoadSpec) -> List[socket.socket]:
    from ...addresses import parse_address

    addr = parse_address(spec.address)
    socks: List[socket.socket] = []
    try:
        for _ in range(spec.connections):
            sock = socket.socket(addr.family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.settimeout(_CONNECT_TIMEOUT)
            sock.connect(addr.sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def measure(spec: LoadSpec) -> LoadResult:
    """Run ``spec`` in this process (the load generator process calls this)."""
    from ._loadgen import LoadGenerator

    if spec.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec.cpu})
    socks = _connect(spec)
    try:
        gen = LoadGenerator([s.fileno() for s in socks], spec.window, spec.size)
        if spec.warmup > 0:
            gen.run(spec.warmup)
        gen.reset()
        server_before = None if spec.server_pid is None else _cpu_seconds(spec.server_pid)
        cpu_before = _own_cpu()
        start = time.perf_counter()
        gen.run(spec.duration)
        seconds = time.perf_counter() - start
        cpu = _own_cpu() - cpu_before
        server_after = None if spec.server_pid is None else _cpu_seconds(spec.server_pid)
        hist = gen.histogram()
        result = LoadResult(
            frames=gen.frames,
            seconds=seconds,
            error=gen.error,
            histogram=hist,
            # A bucket's midpoint may lie above the largest value it holds.
            p50_us=min(percentile(hist, 0.50), gen.max_ns) / 1e3,
            p99_us=min(percentile(hist, 0.99), gen.max_ns) / 1e3,
            max_us=gen.max_ns / 1e3,
            min_conn_frames=min(gen.per_connection(), default=0),
            loadgen_cpu=cpu / seconds,
        )
        if server_before is not None and server_after is not None:
            result.server_cpu = (server_after - server_before) / seconds
        return result
    finally:
        for sock in socks:
            sock.close()


def run_load(spec: LoadSpec) -> LoadResult:
    """Run ``spec`` in a new load generator process and return what it measured.

    Raises:
        RuntimeError: the process failed (its stderr is in the message) or
            did not answer in time.
    """
    env = dict(os.environ)
    # The child must import this very framekit, wherever it was imported from.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(root), env.get("PYTHONPATH")])
    )
    proc = subprocess.run(
        [sys.executable, "-m", "framekit.apps.benchmarks.loadgen", json.dumps(asdict(spec))],
        capture_output=True,
        text=True,
        env=env,
        timeout=spec.warmup + spec.duration + _GRACE,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed: {proc.stderr.strip()[-2000:]}")
    data: Dict[str, Any] = json.loads(proc.stdout)
    data["histogram"] = {int(k): v for k, v in data["histogram"].items()}
    return LoadResult(**data)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The process: run the load given as JSON in the first argument; print the result."""
    args = sys.argv[1:] if argv is None else argv
    result = measure(LoadSpec(**json.loads(args[0])))
    sys.stdout.write(json.dumps(asdict(result)) + "\n")


if __name__ == "__main__":
    main()
