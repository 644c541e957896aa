"""Frames too large to hold, on the blocking transport: recv_stream, recv_into, send_stream,
send_file."""

from __future__ import annotations

import hashlib
import socket
import threading
from typing import Any, Callable, Iterator

import pytest

import framekit

MiB = 1024 * 1024


def pair(LP: Callable[..., Any], **kw: Any) -> Any:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    codec = LP(4, max_frame_size=64 * 1024)
    return framekit.FramedSocket(a, codec, **kw), framekit.FramedSocket(b, codec, **kw)


def pattern(n: int, seed: int = 0) -> Iterator[bytes]:
    """``n`` bytes of a repeatable pattern, in 100 KiB chunks, never held whole."""
    block = hashlib.sha256(str(seed).encode()).digest() * 3200  # 100 KiB
    while n:
        chunk = block[: min(n, len(block))]
        n -= len(chunk)
        yield chunk


def digest(chunks: Any) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def in_thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_frame_larger_than_max_frame_size_streams_through(LP: Callable[..., Any]) -> None:
    sender, receiver = pair(LP, max_stream_size=64 * MiB)
    size = 5 * MiB + 123
    t = in_thread(lambda: (sender.send_stream(size, pattern(size)), sender.send(b"after")))
    with receiver.recv_stream(chunk_size=64 * 1024) as stream:
        assert stream.length == size
        chunks = list(stream)
    assert max(map(len, chunks)) <= 64 * 1024
    assert digest(chunks) == digest(pattern(size))
    assert receiver.recv() == b"after"
    t.join(10)


def test_recv_refuses_what_only_a_stream_can_read(LP: Callable[..., Any]) -> None:
    sender, receiver = pair(LP, max_stream_size=64 * MiB)
    t = in_thread(lambda: (sender.send_stream(MiB, pattern(MiB)), sender.send(b"next")))
    with pytest.raises(framekit.FrameTooLarge, match="recv_stream"):
        receiver.recv()
    assert receiver.recv() == b"next"  # the big frame was skipped, not misread
    t.join(10)


def test_leaving_a_stream_early_skips_the_rest(LP: Callable[..., Any]) -> None:
    sender, receiver = pair(LP, max_stream_size=64 * MiB)
    size = 3 * MiB
    t = in_thread(lambda: (sender.send_stream(size, pattern(size)), sender.send(b"intact")))
    with receiver.recv_stream() as stream:
        first = stream.read(1000)
        assert len(first) == 1000
    assert receiver.recv() == b"intact"
    t.join(10)


def test_streams_and_messages_mix_frame_by_frame(LP: Callable[..., Any]) -> None:
    sender, receiver = pair(LP, max_stream_size=MiB)
    sender.send_many([b"one", b"two"])
    sender.send_stream(3, [b"a", b"bc"])
    sender.send(b"three")
    assert receiver.recv() == b"one"
    with receiver.recv_stream() as small:  # already decoded whole
        assert (small.length, b"".join(small)) == (3, b"two")
    with receiver.recv_stream() as streamed:
        assert b"".join(streamed) == b"abc"
    assert receiver.recv() == b"three"


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "mmap", "numpy"])
def test_recv_into_the_callers_memory(LP: Callable[..., Any], kind: str) -> None:
    sender, receiver = pair(LP, max_stream_size=64 * MiB)
    size = 2 * MiB
    payload = b"".join(pattern(size, seed=3))
    if kind == "numpy":
        np = pytest.importorskip("numpy")
        target: Any = np.zeros(size, dtype=np.uint8)
    elif kind == "mmap":
        import mmap

        target = mmap.mmap(-1, size)
    else:
        target = bytearray(size) if kind == "bytearray" else memoryview(bytearray(size))
    t = in_thread(lambda: sender.send_stream(size, [payload]))
    assert receiver.recv_into(target) == size
    assert bytes(memoryview(target)) == payload
    t.join(10)


def test_recv_into_a_buffer_too_small_leaves_the_frame(LP: Callable[..., Any]) -> None:
    sender, receiver = pair(LP, max_stream_size=64 * MiB)
    sender.send(b"x" * 100)
    small = bytearray(10)
    with pytest.raises(framekit.FrameTooLarge, match="stays unread"):
        receiver.recv_into(small)
    assert receiver.recv() == b"x" * 100  # still there
    t = in_thread(lambda: sender.send_stream(200_000, [b"y" * 200_000]))
    with pytest.raises(framekit.FrameTooLarge):
        receiver.recv_into(small)
    big = bytearray(200_000)
    assert receiver.recv_into(big) == 200_000 and big == b"y" * 200_000
    t.join(10)
    sender.send_stream(70_000, [b"z" * 70_000])
    with pytest.raises(framekit.FrameTooLarge):
        receiver.recv_into(small)
    with pytest.raises(framekit.FrameTooLarge):  # above max_frame_size: not as a message
        receiver.recv()
    sender.send(b"after")
    assert receiver.recv() == b"after"


@pytest.mark.parametrize("wrong", [-1, +1])
def test_a_stream_of_the_wrong_length_is_never_misread(LP: Callable[..., Any], wrong: int) -> None:
    sender, receiver = pair(LP, max_stream_size=MiB)
    with pytest.raises(ValueError, match="announced"):
        sender.send_stream(1000, [b"a" * (1000 + wrong)])
    with pytest.raises(framekit.IncompleteFrame), receiver.recv_stream() as stream:
        for _ in stream:
            pass
    with pytest.raises(framekit.ConnectionClosed):
        receiver.recv()


def test_send_file(LP: Callable[..., Any], tmp_path: Any) -> None:
    sender, receiver = pair(LP, max_stream_size=64 * MiB)
    path = tmp_path / "data.bin"
    with open(path, "wb") as f:
        for chunk in pattern(3 * MiB + 7, seed=5):
            f.write(chunk)
    with open(path, "rb") as f:
        f.seek(7)
        t = in_thread(lambda: sender.send_file(f))
        with receiver.recv_stream() as stream:
            assert stream.length == 3 * MiB
            got = digest(stream)
        t.join(10)
    with open(path, "rb") as f:
        f.seek(7)
        assert got == hashlib.sha256(f.read()).hexdigest()


def test_a_stream_needs_a_length_prefixed_codec() -> None:
    a, b = socket.socketpair()
    codec = framekit.Netstring()
    with framekit.FramedSocket(a, codec) as conn, framekit.FramedSocket(b, codec) as peer:
        with pytest.raises(TypeError, match="length-prefixed"):
            conn.send_stream(3, [b"abc"])
        conn.send(b"abc")
        assert peer.recv() == b"abc"
