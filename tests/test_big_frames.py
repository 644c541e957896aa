"""A frame too large to hold goes through ``recv_stream`` with the receiver's memory bounded.

A 1 GiB frame (``FRAMEKIT_BIG_FRAME_GIB=4`` for 4 GiB, or any other size in GiB) is generated
on the fly by the test's server and sent with ``send_stream`` from a generator, so no one holds
it whole; a receiver *process* (``tests/big_frame_receiver.py``) reads it with ``recv_stream``,
hashing each chunk and dropping it.  On the blocking and the asyncio transport, over TCP and a
Unix socket: the sha256 must match, the small frame sent after it must arrive intact (the
stream ended exactly at the frame's end), and the receiver's peak resident memory (``VmHWM``,
which the kernel keeps for the whole life of the process) must stay below 64 MiB.  Both ends
set ``max_stream_size``; the codec has an 8-byte length, since 4 GiB does not fit in 4 bytes.

The frames are large on purpose, so these tests are ``slow`` (``pytest -m "not slow"`` skips
them; ``.ci/run`` runs them): each 1 GiB case takes a few seconds, mostly hashing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import threading
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import framekit
import framekit.asyncio

RECEIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "big_frame_receiver.py")
GiB = 1 << 30
MiB = 1 << 20

#: The frame's size in GiB: 1 in CI, more on request (FRAMEKIT_BIG_FRAME_GIB=4).
SIZE_GIB = float(os.environ.get("FRAMEKIT_BIG_FRAME_GIB", "1") or "1")
SIZE = int(SIZE_GIB * GiB)
HEADER_SIZE = 8
#: ``max_stream_size`` counts the header too; the codec's ``max_frame_size`` stays its default.
MAX_STREAM_SIZE = SIZE + HEADER_SIZE
#: The receiver's peak resident memory must stay below this.
PEAK_RSS_LIMIT = 64 * MiB
#: Seconds the receiver may take: generous on a busy 2-core machine (it runs at ~0.5 GB/s there).
WAIT = 60 + 30 * SIZE_GIB

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.timeout(int(WAIT) + 60)]

_CHUNK = MiB
_BASE = random.Random(14).randbytes(_CHUNK)


def generate(size: int, digest: Any) -> Iterator[bytes]:
    """``size`` bytes in 1 MiB chunks, made as they are asked for and hashed into ``digest``.

    Chunk ``i`` is a fixed random block that starts with ``i``, so a receiver that drops,
    repeats or reorders a chunk gets another hash.
    """
    base = _BASE[8:]
    index = 0
    while size > 0:
        chunk = (struct.pack(">Q", index) + base)[:size]
        digest.update(chunk)
        yield chunk
        size -= len(chunk)
        index += 1


def address(transport: str, sock_dir: str) -> str:
    return "tcp://127.0.0.1:0" if transport == "tcp" else f"unix://{sock_dir}/big.sock"


def receiver(kind: str, where: str, limit: int = MAX_STREAM_SIZE) -> List[str]:
    # -I: the receiver's directory (tests/, with its anyio/ package) stays off sys.path.
    return [sys.executable, "-I", RECEIVER, kind, where, str(limit)]


def check(result: Dict[str, Any], sent: Any, errors: List[BaseException]) -> None:
    assert not errors, errors
    mib_s = SIZE / MiB / result["seconds"]
    print(
        f"\n{SIZE_GIB:g} GiB in {result['seconds']:.2f} s ({mib_s:.0f} MiB/s), "
        f"{result['chunks']} chunks, peak RSS {result['hwm_kib'] / 1024:.1f} MiB "
        f"({result['hwm_before_kib'] / 1024:.1f} MiB before the frame)"
    )
    assert result["length"] == SIZE
    assert result["sha256"] == sent.hexdigest()
    assert result["after"] == "after"  # the stream ended exactly at the frame's end
    assert 1 < result["largest_chunk"] <= 256 * 1024
    assert result["hwm_kib"] * 1024 < PEAK_RSS_LIMIT, result


def serve_blocking(
    transport: str, sock_dir: str, kind: str, size: int = SIZE
) -> Tuple[Dict[str, Any], Any, List[BaseException]]:
    """Serve one frame of ``size`` bytes to a receiver process of ``kind``; its result."""
    sent = hashlib.sha256()
    errors: List[BaseException] = []
    done = threading.Event()
    limit = size + HEADER_SIZE

    def handler(conn: framekit.FramedSocket) -> None:
        try:
            conn.send_stream(size, generate(size, sent))
            conn.send(b"after")
        except BaseException as exc:
            errors.append(exc)
            raise
        finally:
            done.set()

    codec = framekit.LengthPrefixed(HEADER_SIZE)
    with framekit.serve(address(transport, sock_dir), handler, codec, max_stream_size=limit) as s:
        s.start()
        proc = subprocess.run(
            receiver(kind, str(s.address), limit), capture_output=True, text=True, timeout=WAIT
        )
        assert done.wait(10)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), sent, errors


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_blocking(transport: str, sock_dir: str) -> None:
    check(*serve_blocking(transport, sock_dir, "blocking"))


def test_the_peak_rss_shows_a_frame_held_whole(sock_dir: str) -> None:
    """The control: the same measure sees a 96 MiB frame received whole with ``recv()``."""
    result, sent, errors = serve_blocking("tcp", sock_dir, "held", 96 * MiB)
    assert not errors, errors
    assert result["sha256"] == sent.hexdigest()
    assert result["after"] == "after"
    assert result["hwm_kib"] - result["hwm_before_kib"] > 96 * 1024, result


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_asyncio(transport: str, sock_dir: str) -> None:
    sent = hashlib.sha256()
    errors: List[BaseException] = []

    async def handler(conn: framekit.asyncio.Connection) -> None:
        try:
            await conn.send_stream(SIZE, generate(SIZE, sent))
            await conn.send(b"after")
            async for _ in conn:  # until the receiver closes
                pass
        except BaseException as exc:
            errors.append(exc)
            raise

    async def main() -> Dict[str, Any]:
        codec = framekit.LengthPrefixed(HEADER_SIZE)
        server = await framekit.asyncio.serve(
            address(transport, sock_dir), handler, codec, max_stream_size=MAX_STREAM_SIZE
        )
        async with server:
            proc = await asyncio.create_subprocess_exec(
                *receiver("asyncio", str(server.address)),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(proc.communicate(), WAIT)
            except BaseException:
                proc.kill()
                await proc.wait()
                raise
        assert proc.returncode == 0, err.decode()[-3000:]
        return json.loads(out)  # type: ignore[no-any-return]

    check(asyncio.run(main()), sent, errors)
