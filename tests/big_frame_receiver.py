"""The receiver process of ``tests/test_big_frames.py``: one huge frame through ``recv_stream``.

Run as ``python tests/big_frame_receiver.py blocking|asyncio|held ADDRESS MAX_STREAM_SIZE``: it
connects to ADDRESS (the test's server, which sends the frame), reads the next frame with
``recv_stream()``, hashing each chunk and dropping it, then one small frame after it, and
prints one JSON line: the payload's length and sha256, the chunk count and largest chunk,
the second frame, and its peak resident memory (``VmHWM``) before and after the frame.

``held`` is the control: the blocking transport with plain ``recv()`` (``max_frame_size``
raised to the frame's size), which holds the frame whole, as a receiver without streams must.

It is a process of its own, importing nothing but framekit and the standard library, so that
its peak RSS is the receiver's and nobody else's (pytest, the sender, the test's buffers).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from typing import Any, Dict

import framekit
import framekit.asyncio

#: The codec of both ends: an 8-byte length, since a 4 GiB payload does not fit 4 bytes.
HEADER_SIZE = 8


def peak_rss_kib() -> int:
    """``VmHWM`` of this process: the most resident memory it has had, in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _blocking(address: str, limit: int) -> Dict[str, Any]:
    codec = framekit.LengthPrefixed(HEADER_SIZE)
    conn = framekit.connect(address, codec, timeout=60, max_stream_size=limit)
    assert isinstance(conn, framekit.FramedSocket)
    with conn:
        before = peak_rss_kib()
        start = time.perf_counter()
        digest = hashlib.sha256()
        chunks = largest = 0
        with conn.recv_stream() as stream:
            length = stream.length
            for chunk in stream:
                digest.update(chunk)
                chunks += 1
                largest = max(largest, len(chunk))
        seconds = time.perf_counter() - start
        after = conn.recv()
    return _result(length, digest, chunks, largest, after, before, seconds)


def _held(address: str, limit: int) -> Dict[str, Any]:
    codec = framekit.LengthPrefixed(HEADER_SIZE, max_frame_size=limit)
    conn = framekit.connect(address, codec, timeout=60)
    assert isinstance(conn, framekit.FramedSocket)
    with conn:
        before = peak_rss_kib()
        start = time.perf_counter()
        frame = conn.recv()
        seconds = time.perf_counter() - start
        digest = hashlib.sha256(frame)
        length = len(frame)
        del frame
        after = conn.recv()
    return _result(length, digest, 1, length, after, before, seconds)


async def _asyncio(address: str, limit: int) -> Dict[str, Any]:
    codec = framekit.LengthPrefixed(HEADER_SIZE)
    conn = await framekit.asyncio.connect(address, codec, max_stream_size=limit)
    async with conn:
        before = peak_rss_kib()
        start = time.perf_counter()
        digest = hashlib.sha256()
        chunks = largest = 0
        async with await conn.recv_stream() as stream:
            length = stream.length
            async for chunk in stream:
                digest.update(chunk)
                chunks += 1
                largest = max(largest, len(chunk))
        seconds = time.perf_counter() - start
        after = await asyncio.wait_for(conn.recv(), 60)
    return _result(length, digest, chunks, largest, after, before, seconds)


def _result(
    length: int,
    digest: Any,
    chunks: int,
    largest: int,
    after: bytes,
    before: int,
    seconds: float,
) -> Dict[str, Any]:
    return {
        "length": length,
        "sha256": digest.hexdigest(),
        "chunks": chunks,
        "largest_chunk": largest,
        "after": after.decode("ascii", "replace"),
        "hwm_before_kib": before,
        "hwm_kib": peak_rss_kib(),
        "seconds": seconds,
    }


def main() -> None:
    transport, address, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if transport == "blocking":
        result = _blocking(address, limit)
    elif transport == "held":
        result = _held(address, limit)
    else:
        result = asyncio.run(_asyncio(address, limit))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
