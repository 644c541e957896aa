"""framekit's speed targets: ratios between rows of one run that it promises to keep.

Design notes
------------
Targets are *reported*, never asserted in unit tests: a busy CI machine must
not fail a build because it was slow, and a target can be wrong (that is for
the report to say, with numbers).  Each target is a ratio between two rows of
one comparison, so both were measured side by side on the same workload and the
speed of the machine cancels out.

A target whose comparison was not run (``--quick``, ``--filter``) is left out;
one whose rows are missing (a peer not installed, a contestant that failed its
check) is reported as not measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from .harness import Result
from .receivers import RAW
from .servers import NETTY
from .streams import BIG_FRAME
from .workloads import size_label

__all__ = ["TARGETS", "Target", "Verdict", "evaluate"]


@dataclass(frozen=True)
class Target:
    """``subject`` must be at least ``minimum`` times as fast as ``reference``.

    Attributes:
        comparison: the comparison id (``decode-64k-stream/16``).
        subject, reference: contestant names in that comparison.
        minimum: the lowest acceptable throughput ratio.
        why: what the target stands for, in a sentence.
    """

    comparison: str
    subject: str
    reference: str
    minimum: float
    why: str = ""


@dataclass(frozen=True)
class Verdict:
    """How a target fared.

    Attributes:
        status: ``met``, ``missed`` or ``not measured``.
        ratio: subject / reference throughput, when both were measured.
        text: the target in words, with the rows' labels.
        number: the target's place in the list it was checked against, from 1
            (stable whatever subset was run: T4 is always the same target).
    """

    target: Target
    status: str
    ratio: Optional[float]
    text: str
    number: int = 0

    @property
    def met(self) -> bool:
        return self.status == "met"


TARGETS: Tuple[Target, ...] = (
    Target("decode-64k-stream/16", "cython", "msgpack", 1.3),
    Target("decode-64k-stream/16", "cython", "python", 7.0),
    Target("decode-64k-stream/64", "cython", "msgpack", 1.3),
    Target("decode-64k-stream/1048576", "cython", "floor-memcpy", 0.75),
    Target("decode-7b-stream/16", "cython", "hiredis", 2.0),
    Target("e2e-tcp/64", "blocking", "naive", 10.0),
    Target("e2e-tcp/64", "asyncio", "readexactly", 3.0),
    Target("e2e-tcp/64", "asyncio-uvloop", "readexactly-uvloop", 3.0),
    Target("e2e-tcp/65536", "blocking", "raw-recv-into", 0.9),
    Target("e2e-tcp/65536", "asyncio", "raw-recv-into", 0.9),
    Target("e2e-tcp/65536", "asyncio-uvloop", "raw-recv-into", 0.9),
    Target("e2e-unix/65536", "blocking", "raw-recv-into", 0.9),
    # Request/response servers, against Netty measured in the same run by the same load
    # generator.  Pipelined loads: a read brings many frames, and a server that answers
    # them with one write per read (as Netty flushes once per read) is bound by the kernel,
    # not by its language.  framekit's asyncio server on uvloop should match Netty there;
    # the blocking server (a thread per connection, the GIL between them) half of it.
    Target(
        "server-100x16/64",
        "asyncio-uvloop",
        NETTY,
        1.0,
        "many busy clients: an event loop that writes once per read keeps up with Netty",
    ),
    Target(
        "server-10x64/64",
        "asyncio-uvloop",
        NETTY,
        1.0,
        "few clients with deep pipelines: the same, with 64 frames per read to batch",
    ),
    Target(
        "server-100x16/64",
        "blocking",
        NETTY,
        0.5,
        "the thread-per-connection server gets within 2x of Netty when it batches its writes",
    ),
    Target(
        "server-10x64/64",
        "blocking",
        NETTY,
        0.5,
        "the same with deep pipelines",
    ),
    # Ping-pong: one frame in flight per client, so there is nothing to batch and every
    # frame costs a read and a write system call in any server; what is left to win is
    # the per-frame cost around them, and the flush must not wait past the handler's
    # next read, or latency suffers.
    Target(
        "server-100x1/64",
        "asyncio-uvloop",
        NETTY,
        0.9,
        "ping-pong: nothing to batch; the Python per-frame cost must stay small next to "
        "the two system calls",
    ),
    # The text codecs, on their own wire formats.
    Target("lines-64k-stream/16", "cython", "python", 10.0),
    Target("lines-64k-stream/16", "cython", "floor-split", 0.6),
    Target("lines-64k-stream/16", "cython", "twisted", 20.0),
    Target("netstring-64k-stream/16", "cython", "python", 10.0),
    Target("delimited-64k-stream/16", "cython", "python", 10.0),
    # framekit anyio against the hand-written loop anyio users write today
    # (BufferedByteReceiveStream.receive_exactly), on each of anyio's backends.
    Target("e2e-tcp/64", "anyio", "receive-exactly", 3.0),
    Target("e2e-tcp/64", "anyio-trio", "receive-exactly-trio", 3.0),
    # Frames too large to hold: one 1 GiB frame (times the scale).  Reading it as a stream
    # must cost little over reading its bytes raw, and sending a file as one frame must cost
    # no more than the loop people write to send a file.
    Target(
        f"stream-recv-tcp/{BIG_FRAME}",
        "blocking",
        RAW,
        0.9,
        "a frame read as a stream, chunk by chunk, costs little more than raw recv_into of "
        "the same bytes: memory stays bounded without a second copy",
    ),
    Target(
        f"stream-recv-tcp/{BIG_FRAME}",
        "asyncio",
        RAW,
        0.9,
        "the same on asyncio's default loop",
    ),
    Target(
        f"stream-recv-tcp/{BIG_FRAME}",
        "asyncio-uvloop",
        RAW,
        0.9,
        "the same on uvloop",
    ),
    Target(
        f"stream-recv-tcp/{BIG_FRAME}",
        "asyncio-readinto",
        RAW,
        0.9,
        "read as a stream into the caller's buffer, on asyncio: the event loop reads "
        "straight into it (no copy in framekit)",
    ),
    Target(
        f"stream-recv-tcp/{BIG_FRAME}",
        "asyncio-readinto-uvloop",
        RAW,
        0.9,
        "the same on uvloop",
    ),
    Target(
        f"send-file-tcp/{BIG_FRAME}",
        "send-file",
        "sendall-loop",
        1.0,
        "send_file hands the file to the kernel (sendfile): never slower than reading it in "
        "chunks and sending each with sendall",
    ),
    Target(
        f"send-file-tcp/{BIG_FRAME}",
        "send-file-asyncio",
        "writer-loop",
        1.0,
        "the same on asyncio's default loop, against write() and drain() per chunk",
    ),
    Target(
        f"send-file-tcp/{BIG_FRAME}",
        "send-file-asyncio-uvloop",
        "writer-loop-uvloop",
        1.0,
        "the same on uvloop (which has no loop.sendfile: framekit falls back to reads)",
    ),
    # The same servers written with batches (``async for batch in conn.batches(): await
    # conn.send_many(batch)``): one encoding call and one write per read, and no Python
    # per frame beyond the codec's loop, as Netty's handler pipeline works per read.
    Target(
        "server-100x16/64",
        "asyncio-batches-uvloop",
        NETTY,
        1.0,
        "many busy clients, answered a batch at a time: level with Netty",
    ),
    Target(
        "server-10x64/64",
        "asyncio-batches-uvloop",
        NETTY,
        1.0,
        "few clients with deep pipelines, answered a batch at a time: level with Netty",
    ),
    Target(
        "server-100x16/64",
        "blocking-batches",
        NETTY,
        0.5,
        "the thread-per-connection server, a batch at a time: within 2x of Netty",
    ),
    Target(
        "server-10x64/64",
        "blocking-batches",
        NETTY,
        0.5,
        "the same with deep pipelines",
    ),
)


def evaluate(
    results: Iterable[Result], targets: Optional[Iterable[Target]] = None
) -> List[Verdict]:
    """Check each target (default: :data:`TARGETS`) whose comparison is among ``results``.

    Returns:
        One :class:`Verdict` per target whose comparison was run, in order.
    """
    rows: Dict[Tuple[str, str], Result] = {(r.comparison, r.contestant): r for r in results}
    run = {comparison for comparison, _ in rows}
    verdicts = []
    for number, t in enumerate(TARGETS if targets is None else targets, 1):
        if t.comparison not in run:
            continue
        subject = rows.get((t.comparison, t.subject))
        reference = rows.get((t.comparison, t.reference))
        sub_label = subject.label if subject else t.subject
        ref_label = reference.label if reference else t.reference
        where = subject or reference
        place = f"{where.title} · {size_label(where.size)}" if where else t.comparison
        text = f"{place}: {sub_label} >= {t.minimum:g}x {ref_label}"
        if subject is None or reference is None or not (subject.ok and reference.ok):
            verdicts.append(Verdict(t, "not measured", None, text, number))
            continue
        ratio = reference.seconds / subject.seconds
        status = "met" if ratio >= t.minimum else "missed"
        verdicts.append(Verdict(t, status, ratio, text, number))
    return verdicts
