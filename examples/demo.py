"""A first look at framekit: frames survive any split, and the Cython codec is fast.

Run:  python examples/demo.py
"""

from __future__ import annotations

import random
import time

import framekit
from framekit.codecs import length_prefixed

codec = framekit.LengthPrefixed(4)
messages = [f"message {i}".encode() * random.randint(1, 5) for i in range(1000)]
stream = codec.encode_many(messages)

# Cut the stream at random points, as TCP may: the decoder still yields whole messages.
decoder = codec.decoder()
received = []
pos = 0
while pos < len(stream):
    step = random.randint(1, 100)
    received += decoder.feed(stream[pos : pos + step])
    pos += step
decoder.eof()
assert received == messages
print(f"backend: {framekit.BACKEND}; {len(messages)} messages split at random points, all intact")

# Decode the same 16-byte-payload stream with both backends, fed 64 KiB at a time.
frames = codec.encode_many([b"x" * 16] * 200_000)
chunks = [frames[i : i + 65536] for i in range(0, len(frames), 65536)]
for name, cls in [("cython", framekit.LengthPrefixed), ("python", length_prefixed.LengthPrefixed)]:
    if name == "cython" and framekit.BACKEND != "cython":
        continue
    dec = cls(4).decoder()
    start = time.perf_counter()
    n = sum(len(dec.feed(c)) for c in chunks)
    elapsed = time.perf_counter() - start
    print(f"{name:>6}: {n / elapsed / 1e6:6.1f}M frames/s (16-byte payloads)")
