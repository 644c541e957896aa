"""LengthPrefixed's optional capabilities (switching, streaming), the encode-side
limit, the defects of issue 12 and introspection: on both backends."""

from __future__ import annotations

import array
import inspect
import pydoc
import subprocess
import sys
import textwrap
import tracemalloc
from typing import Any, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framekit import CorruptedFrame, FrameTooLarge, IncompleteFrame
from framekit.codecs import length_prefixed as _codec_py

from .test_codec_properties import DIRECT, configs, direct_sizes, make

try:
    from framekit import _speedups
except ImportError:  # pragma: no cover
    _speedups = None  # type: ignore[assignment]

needs_both = pytest.mark.skipif(_speedups is None, reason="framekit._speedups was not built")
BACKENDS = [_codec_py] if _speedups is None else [_codec_py, _speedups]

# --- switching ----------------------------------------------------------------


def test_max_frames_holds_the_rest(LP: Any) -> None:
    codec = LP(2)
    dec = codec.decoder()
    wire = codec.encode_many([b"a", b"b", b"c"]) + codec.encode(b"dd")[:3]
    assert dec.feed(wire, max_frames=1) == [b"a"]
    assert dec.feed(b"", max_frames=0) == []
    assert dec.feed(b"", max_frames=-1) == [b"b", b"c"]
    assert dec.feed(b"d") == [b"dd"]


def test_max_frames_zero_then_detach_returns_everything(LP: Any) -> None:
    codec = LP(2)
    dec = codec.decoder()
    assert dec.feed(codec.encode(b"x") + b"\x00", max_frames=0) == []
    assert dec.detach() == codec.encode(b"x") + b"\x00"
    with pytest.raises(ValueError, match="detached"):
        dec.feed(b"")
    assert dec.pending == 0


def test_detach_unused_frames_across_buffer_and_feed(LP: Any) -> None:
    codec = LP(2)
    wire = codec.encode_many([b"one", b"two", b"three", b"four"]) + b"TAIL"
    dec = codec.decoder()
    assert dec.feed(wire[:4]) == []  # frame 1 starts in the buffer...
    frames = dec.feed(wire[4:])  # ...is completed from it, the rest straight from data
    assert frames == [b"one", b"two", b"three", b"four"]
    assert dec.detach(3) == wire[len(codec.encode(b"one")) :]


def test_detach_after_errors_forgets_them(LP: Any) -> None:
    codec = LP(1, max_frame_size=8)
    ok = codec.encode(b"ok")
    dec = codec.decoder()
    bad = b"\x30" + b"z" * 10  # 49 bytes announced: too large, being skipped
    with pytest.raises(FrameTooLarge) as info:
        dec.feed(ok + ok + bad)
    assert info.value.frames == [b"ok", b"ok"]
    assert dec.feed(b"more", max_frames=0) == []
    assert dec.detach(1) == ok + bad + b"more"
    dec = LP(8).decoder()
    with pytest.raises(CorruptedFrame):
        dec.feed(LP(8).encode(b"a") + b"\xff" * 8 + b"rest")
    assert dec.detach(1) == LP(8).encode(b"a") + b"\xff" * 8 + b"rest"


def test_detach_refuses_what_it_cannot_give_back(LP: Any) -> None:
    codec = LP(1, max_frame_size=8, fail_fast=False)
    dec = codec.decoder()
    dec.feed(b"\x30abc")  # skipping a 49-byte frame
    dec.feed(b"def")  # a call that began mid-skip and returned nothing
    with pytest.raises(ValueError, match="cannot go back"):
        dec.detach()
    with pytest.raises(ValueError, match="returned 0 frames"):
        dec.detach(1)
    dec = LP(8).decoder()
    with pytest.raises(CorruptedFrame):
        dec.feed(b"\xff" * 8)
    with pytest.raises(CorruptedFrame):
        dec.feed(b"x")
    with pytest.raises(ValueError, match="broken"):
        dec.detach()


def test_detach_in_place_frame_whose_header_came_earlier(LP: Any) -> None:
    codec = LP(4, strip=2)
    big = codec.encode(b"p" * 100_000)
    dec = codec.decoder()
    assert dec.feed(big[:20_000]) == []  # assembled in place from here
    frames = dec.feed(big[20_000:] + codec.encode(b"next") + b"\x00")
    assert [len(f) for f in frames] == [100_002, 6]
    assert dec.detach(2) == big + codec.encode(b"next") + b"\x00"


def _small_reads(module: Any, wire: bytes, step: int, stop: int, via_buffer: bool) -> Any:
    dec = make(module, {"length_size": 2}).decoder()
    offered = []
    last: List[bytes] = []
    for i in range(0, stop, step):
        chunk = wire[i : min(i + step, stop)]
        if via_buffer:
            view = dec.get_buffer()
            offered.append(len(view))
            view[: len(chunk)] = chunk
            last = dec.buffer_updated(len(chunk))
        else:
            last = dec.feed(chunk)
    pending = dec.pending
    rest: List[Any] = []
    for unused in (len(last) + 1, len(last)):  # one too many is refused
        try:
            rest.append(dec.detach(unused))
            break
        except ValueError as exc:
            rest.append(str(exc))
    return offered, len(last), pending, rest


@needs_both
@pytest.mark.parametrize("via_buffer", [False, True])
@pytest.mark.parametrize("step", [1, 3, 7])
def test_detach_after_a_read_that_finished_no_frame(step: int, via_buffer: bool) -> None:
    # Reads too small to finish the frame in the buffer take a shortcut in the
    # Cython twin; the state it leaves must be the reference's, whatever came last.
    codec = _codec_py.LengthPrefixed(2)
    wire = codec.encode_many([b"a" * 30, b"b", b"c" * 40, b"", b"d" * 9]) + b"\x00"
    ends = [0, 32, 35, 77, 79, 90]
    for stop in range(len(wire) + 1):
        py, cy = (_small_reads(m, wire, step, stop, via_buffer) for m in BACKENDS)
        assert py == cy
        _, returned, pending, rest = py
        assert len(rest) == 2, rest
        used = sum(1 for end in ends[1:] if end <= stop) - returned
        assert rest[1] == wire[ends[used] : stop]
        assert pending == stop - ends[used + returned]


@st.composite
def switching_cases(draw: st.DrawFn) -> Any:
    cfg = draw(configs())
    payloads = draw(st.lists(st.binary(max_size=300), max_size=8))
    tail = draw(st.binary(max_size=40))
    cuts = draw(st.lists(st.integers(0, 4000), max_size=12))
    plan = draw(st.lists(st.tuples(st.booleans(), st.sampled_from([-1, -1, 1, 2, 3])), max_size=30))
    used = draw(st.integers(0, 8))
    return cfg, payloads, tail, cuts, plan, used


def _switch(module: Any, cfg: Any, wire: bytes, chunks: List[bytes], plan: Any, k: int) -> Any:
    """Decode like the connection core (a batch only once the last was used up,
    max_frames=0 for reads before that), stop once the caller used ``k``
    frames, and detach the unused ones."""
    dec = make(module, cfg).decoder()
    batch: List[bytes] = []
    used = received = 0
    steps = iter(plan)
    for chunk in [*chunks, *([b""] * 4)]:
        via_buffer, max_frames = next(steps, (False, -1))
        if batch:
            max_frames = 0
        try:
            if via_buffer and chunk:
                view = dec.get_buffer(len(chunk))
                n = min(len(view), len(chunk))
                view[:n] = chunk[:n]
                out = dec.buffer_updated(n, max_frames=max_frames)
                if n < len(chunk):
                    out += dec.feed(chunk[n:], max_frames=0 if out else max_frames)
            else:
                out = dec.feed(chunk, max_frames=max_frames)
            broken = False
        except (FrameTooLarge, CorruptedFrame) as exc:
            out = exc.frames
            broken = isinstance(exc, CorruptedFrame)
        received += len(chunk)
        if max_frames != 0:
            batch = list(out)
        if batch and used < k:
            batch.pop(0)
            used += 1
        if used == k or broken:
            break
    try:
        return used, received, dec.detach(len(batch))
    except ValueError as exc:
        return used, received, str(exc)


@needs_both
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=switching_cases(), direct=DIRECT)
def test_detach_gives_back_the_stream_after_the_last_frame_used(case: Any, direct: Any) -> None:
    cfg, payloads, tail, cuts, plan, k = case
    py = make(_codec_py, cfg)
    prefix = b"\x05" * cfg["length_offset"]
    frames = []
    for p in payloads:
        try:
            frames.append(py.encode(p, prefix=prefix))
        except ValueError:
            pass
    wire = b"".join(frames) + tail
    ends = [0]
    for f in frames:
        ends.append(ends[-1] + len(f))
    k = min(k, len(frames))
    from .codec_helpers import split

    chunks = split(wire, cuts)
    with direct_sizes(direct):
        results = [_switch(m, cfg, wire, chunks, plan, k) for m in BACKENDS]
    assert results[0] == results[1]
    used, received, rest = results[0]
    if isinstance(rest, bytes):
        if used <= len(frames) and all(len(f) for f in frames):
            assert rest == wire[ends[used] : received]
    else:  # only once in the raw tail: skipping or broken since before the last call
        assert used == len(frames), rest


# --- streaming ----------------------------------------------------------------


def test_stream_a_held_frame(LP: Any) -> None:
    codec = LP(4, max_frame_size=64)
    dec = codec.decoder()
    dec.stream_limit = 1 << 20
    big = b"s" * 1000
    wire = (
        codec.encode(b"a") + codec.header(1000, max_frame_size=1 << 20) + big + codec.encode(b"z")
    )
    assert dec.feed(wire[:600]) == [b"a"]  # held at its header
    assert dec.stream_begin() == 1000
    got = dec.stream_read(10_000)
    assert dec.feed(wire[600:]) == []  # payload first
    while dec.stream_remaining:
        got += dec.stream_read(333)
    assert got == big
    assert dec.feed(b"") == [b"z"]
    with pytest.raises(ValueError, match="no stream"):
        dec.stream_read(1)


def test_stream_refusals_and_discard(LP: Any) -> None:
    codec = LP(2, max_frame_size=16)
    dec = codec.decoder()
    dec.stream_limit = 100
    assert dec.stream_begin() == -1
    dec.feed(codec.header(200, max_frame_size=1000) + b"x" * 10, max_frames=0)
    with pytest.raises(FrameTooLarge, match="stream_limit"):
        dec.stream_begin()  # skipped, before a byte of the payload is read
    assert dec.feed(b"x" * 190 + codec.encode(b"ok")) == [b"ok"]
    dec.feed(codec.header(50, max_frame_size=1000) + b"y" * 20)
    assert dec.stream_begin() == 50
    with pytest.raises(ValueError, match="already open"):
        dec.stream_begin()
    with pytest.raises(ValueError, match="buffered"):
        dec.stream_advance(1)
    assert dec.stream_read(5) == b"yyyyy"
    with pytest.raises(IncompleteFrame):
        dec.eof()
    dec.stream_discard()
    assert dec.stream_remaining == 0
    assert dec.feed(b"y" * 30 + codec.encode(b"after")) == [b"after"]


def test_stream_advance_and_get_buffer_stop_at_the_payload(LP: Any) -> None:
    codec = LP(4)
    dec = codec.decoder()
    dec.feed(codec.encode(b"q" * 1000)[:4])
    assert dec.stream_begin() == 1000
    assert len(dec.get_buffer(1 << 20)) == 1000
    dec.stream_advance(900)
    view = dec.get_buffer()
    assert len(view) == 100
    view[:100] = b"r" * 100
    assert dec.buffer_updated(100) == []
    assert dec.stream_read(1000) == b"r" * 100 and dec.stream_remaining == 0


def _stream_peak(module_name: str) -> int:
    """Stream a 4 GiB announced frame through get_buffer and feed, in 256 KiB pieces."""
    code = textwrap.dedent(
        f"""
        import tracemalloc
        import {module_name} as m
        codec = m.LengthPrefixed(8)
        dec = codec.decoder()
        dec.stream_limit = 1 << 40
        total = 4 << 30
        dec.feed(codec.header(total, max_frame_size=1 << 40))
        assert dec.stream_begin() == total
        piece = b"p" * (256 << 10)
        tracemalloc.start()
        left, i = total, 0
        while left:
            if i % 2:
                view = dec.get_buffer(256 << 10)
                n = min(len(view), left)
                view[:n] = piece[:n]
                del view
                dec.buffer_updated(n)
            else:
                n = min(len(piece), left)
                dec.feed(piece[:n] if n < len(piece) else piece)
            left -= n
            assert len(dec.stream_read(1 << 30)) == n
            i += 1
            if i == 2000:
                break
        print(tracemalloc.get_traced_memory()[1])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.parametrize("module_name", ["framekit.codecs.length_prefixed", "framekit._speedups"])
def test_streaming_memory_is_bounded_by_a_read(module_name: str) -> None:
    if module_name.endswith("_speedups") and _speedups is None:
        pytest.skip("not built")
    assert _stream_peak(module_name) < 3 * (256 << 10)


# --- encode side: issue 16 item 3 ------------------------------------------------


def test_encode_refuses_frames_above_max_frame_size(LP: Any) -> None:
    codec = LP(4, max_frame_size=10)
    assert codec.encode(b"x" * 6) == b"\x00\x00\x00\x06xxxxxx"
    for call in (
        lambda: codec.encode(b"x" * 7),
        lambda: codec.encode_many([b"a", b"x" * 7]),
        lambda: codec.encode_parts(b"x" * 7),
        lambda: codec.header(7),
    ):
        with pytest.raises(FrameTooLarge, match=r"11 bytes .*max_frame_size 10") as info:
            call()
        assert info.value.frame_length == 11 and info.value.max_frame_size == 10
    assert codec.header(7, max_frame_size=11) == b"\x00\x00\x00\x07"
    with pytest.raises(FrameTooLarge):
        codec.header(8, max_frame_size=11)


# --- issue 12, defect 2: the twins behave alike -------------------------------------


def test_lying_count_gives_zeros_not_heap_memory(LP: Any) -> None:
    codec = LP(4)
    dec = codec.decoder()
    view = dec.get_buffer()
    view[:4] = (100).to_bytes(4, "big")
    del view
    assert dec.buffer_updated(104) == [bytes(100)]  # claimed, never written
    dec = codec.decoder()
    dec.feed(codec.encode(b"w" * 80_000)[:20_000])  # assembled in place from here
    view = dec.get_buffer()
    n = len(view)
    del view
    assert dec.buffer_updated(n) == [b"w" * 19_996 + bytes(60_004)]


def test_non_contiguous_buffer_is_a_buffer_error(LP: Any) -> None:
    with pytest.raises(BufferError, match="C-contiguous"):
        LP(4).decoder().feed(memoryview(b"abcdef")[::2])
    assert LP(1).decoder().feed(memoryview(array.array("B", b"\x01a"))) == [b"a"]


def test_huge_update_count_is_a_value_error(LP: Any) -> None:
    dec = LP(4).decoder()
    dec.get_buffer()
    with pytest.raises(ValueError, match="offered"):
        dec.buffer_updated(2**70)


def test_header_checks_the_prefix_first(LP: Any) -> None:
    with pytest.raises(ValueError, match="prefix must be exactly length_offset=0"):
        LP(8).header(2**63, prefix=b"x")


def test_spent_view_cannot_rewrite_a_frame_being_assembled(LP: Any) -> None:
    codec = LP(4)
    wire = codec.encode(b"v" * 80_000)
    dec = codec.decoder()
    dec.feed(wire[:20_000])
    view = dec.get_buffer()
    view[:1000] = wire[20_000:21_000]
    dec.buffer_updated(1000)
    with pytest.raises(ValueError, match="released"):
        view[:3] = b"zzz"
    assert dec.feed(wire[21_000:]) == [b"v" * 80_000]


# --- issue 12, item 7: memory --------------------------------------------------------


def test_buffer_is_shrunk_once_a_large_frame_is_done(LP: Any) -> None:
    codec = LP(4)
    wire = codec.encode(b"x" * (2 << 20)) + codec.encode(b"y" * 10)
    dec = codec.decoder()
    tracemalloc.start()
    try:
        pos, frames = 0, []
        while pos < len(wire):
            view = dec.get_buffer(256 << 10)
            n = min(len(view), len(wire) - pos, 256 << 10)
            view[:n] = wire[pos : pos + n]
            del view
            frames += dec.buffer_updated(n)
            pos += n
        del frames
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 600 << 10, held  # was ~1 MiB: room for another 1 MiB frame


def _rss_after_hostile_frames(module_name: str) -> float:
    """RSS growth per byte sent: 50 decoders each announce 16 MiB and send 2.5 MiB."""
    code = textwrap.dedent(
        f"""
        import {module_name} as m
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        codec = m.LengthPrefixed(4)
        piece = b"h" * (256 << 10)
        before = rss()
        decs = []
        for _ in range(50):
            dec = codec.decoder()
            dec.feed(codec.header((16 << 20) - 4))
            for _ in range(10):
                view = dec.get_buffer(256 << 10)
                view[: len(piece)] = piece
                del view
                dec.buffer_updated(len(piece))
            decs.append(dec)
        print((rss() - before) / (50 * 10 * len(piece)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("module_name", ["framekit.codecs.length_prefixed", "framekit._speedups"])
def test_partial_large_frames_cost_what_was_sent(module_name: str) -> None:
    if module_name.endswith("_speedups") and _speedups is None:
        pytest.skip("not built")
    assert _rss_after_hostile_frames(module_name) < 2.5  # was ~6.4 (pure: the whole frame)


# --- issue 16, item 8: introspection ---------------------------------------------------

PUBLIC = {
    "LengthPrefixed": ["header", "encode", "encode_many", "encode_parts", "decoder"],
    "LengthPrefixedDecoder": [
        "feed", "get_buffer", "buffer_updated", "eof", "detach", "stream_begin",
        "stream_read", "stream_advance", "stream_discard", "pending", "stream_limit",
        "stream_remaining",
    ],
}  # fmt: skip


@needs_both
@pytest.mark.parametrize("cls", sorted(PUBLIC))
def test_cython_docstrings_are_the_pure_ones(cls: str) -> None:
    py, cy = getattr(_codec_py, cls), getattr(_speedups, cls)
    assert inspect.getdoc(cy) == inspect.getdoc(py)
    for name in PUBLIC[cls]:
        assert inspect.getdoc(getattr(cy, name)) == inspect.getdoc(getattr(py, name)), name


def _shape(sig: inspect.Signature) -> list:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("module", BACKENDS, ids=lambda m: m.__name__)
def test_signatures(module: Any) -> None:
    sig = inspect.signature(module.LengthPrefixed)
    assert _shape(sig) == _shape(inspect.signature(_codec_py.LengthPrefixed))
    assert sig.parameters["byteorder"].kind is inspect.Parameter.KEYWORD_ONLY
    for cls, names in PUBLIC.items():
        for name in names:
            member = getattr(getattr(module, cls), name)
            if callable(member):
                want = inspect.signature(getattr(getattr(_codec_py, cls), name))
                assert _shape(inspect.signature(member)) == _shape(want), name


@pytest.mark.parametrize("module", BACKENDS, ids=lambda m: m.__name__)
def test_help_page(module: Any) -> None:
    page = pydoc.render_doc(module.LengthPrefixed, renderer=pydoc.plaintext)
    assert "Args:" in page and "max_frame_size" in page
    assert "_cython" not in page and "see it for" not in page
