"""Leaks: millions of frames down every decode path and error path of LengthPrefixed,
in a subprocess, with RSS and tracemalloc flat (issue 12, "Leaks")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

FRAMES = int(os.environ.get("FRAMEKIT_LEAK_FRAMES", str(10_000_000)))

SCRIPT = textwrap.dedent(
    """
    import sys, tracemalloc
    import {module} as m
    from framekit import FramingError
    FRAMES = {frames}

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    codec = m.LengthPrefixed(4, max_frame_size=1 << 20)
    small = codec.encode_many([b"s" * 12] * 4096)  # 4096 frames of 16 bytes
    big = codec.encode(b"B" * 200_000)
    bad = codec.header(5000, max_frame_size=1 << 30) + b"x" * 5000

    def feed(dec, n):
        for _ in range(n // 4096):
            for i in range(0, len(small), 7000):
                dec.feed(small[i : i + 7000])

    def buffered(dec, n):
        for _ in range(n // 4096):
            pos = 0
            while pos < len(small):
                view = dec.get_buffer(8192)
                k = min(len(view), len(small) - pos, 8192)
                view[:k] = small[pos : pos + k]
                del view
                dec.buffer_updated(k)
                pos += k

    def in_place(dec, n):
        for _ in range(max(1, n // 4096)):
            dec.feed(big[:40_000])
            pos = 40_000
            while pos < len(big):
                view = dec.get_buffer()
                k = min(len(view), len(big) - pos)
                view[:k] = big[pos : pos + k]
                del view
                dec.buffer_updated(k)
                pos += k

    def streamed(dec, n):
        dec.stream_limit = 1 << 30
        for _ in range(max(1, n // 4096)):
            dec.feed(bad[:100])
            dec.stream_begin()
            dec.stream_read(50)
            dec.feed(bad[100:])
            while dec.stream_remaining:
                dec.stream_read(1000)
        dec.stream_limit = 0

    def errors(dec, n):
        for _ in range(max(1, n // 4096)):
            try:
                dec.feed(small[:64] + bad[:300])
            except FramingError:
                pass
            dec.feed(bad[300:])
            dec.feed(small[:40], max_frames=1)
            dec.feed(b"")
        broken = codec.decoder()
        try:
            broken.feed(b"\\x00\\x00\\x00\\x01a" + b"\\xff" * 0)
            m.LengthPrefixed(8).decoder().feed(b"\\xff" * 8)
        except FramingError:
            pass

    def switched(dec, n):
        for _ in range(max(1, n // 4096)):
            d = codec.decoder()
            d.feed(small[:200])
            d.detach(3)

    paths = [feed, buffered, in_place, streamed, errors, switched]
    for path in paths:
        dec = codec.decoder()
        path(dec, FRAMES // 20)  # warm up
        tracemalloc.start()
        base_traced = tracemalloc.get_traced_memory()[0]
        base_rss = rss()
        path(dec, FRAMES)
        traced = tracemalloc.get_traced_memory()[0] - base_traced
        grown = rss() - base_rss
        tracemalloc.stop()
        print(path.__name__, traced, grown)
        assert traced < 512 * 1024, (path.__name__, traced)
        assert grown < 16 << 20, (path.__name__, grown)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("module", ["framekit._speedups", "framekit.codecs.length_prefixed"])
def test_no_leaks_down_every_path(module: str) -> None:
    if module.endswith("_speedups"):
        pytest.importorskip("framekit._speedups")
    # The pure twin is ~30x slower: a tenth of the frames proves as much for it.
    frames = FRAMES if module.endswith("_speedups") else FRAMES // 10
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(module=module, frames=frames)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
