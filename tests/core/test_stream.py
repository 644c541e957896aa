"""StreamCore without any socket: bytes in, messages out, in order; messages in, buffers out."""

from __future__ import annotations

import gc
import weakref
from typing import Any, Callable, List

import pytest

import framekit
from framekit.core import StreamCore
from framekit.core.budget import MemoryBudget
from framekit.core.options import VECTORED_MIN_SIZE
from framekit.core.stream import COALESCE_MAX
from framekit.serializers import JSON


def drain(core: StreamCore) -> List[Any]:
    """Everything the core hands out now: messages, and errors as their type names."""
    out: List[Any] = []
    while True:
        out.extend(core.messages)
        try:
            if not core.next_batch():
                return out
        except (framekit.FramingError, framekit.SerializationError, OSError) as exc:
            out.append(type(exc).__name__)
            if isinstance(exc, framekit.ConnectionClosed) or core.ended:
                return out


def feed_view(core: StreamCore, data: bytes) -> None:
    view = core.get_buffer()
    view[: len(data)] = data
    core.buffer_updated(len(data))


@pytest.fixture(params=["feed", "get_buffer"])
def receive(request: pytest.FixtureRequest) -> Callable[[StreamCore, bytes], None]:
    if request.param == "feed":
        return lambda core, data: core.receive_data(data)
    return feed_view


def test_frames_come_out_in_batches(LP: Any, receive: Any) -> None:
    codec = LP(4)
    core = StreamCore(codec)
    receive(core, codec.encode_many([b"a", b"b", b"c"]) + codec.encode(b"dd")[:3])
    assert core.queued_frames == 3
    assert list(core.messages) == [b"a", b"b", b"c"]
    assert core.next_batch() is False  # the partial frame needs more input
    receive(core, codec.encode(b"dd")[3:])
    assert drain(core) == [b"dd"]
    assert (core.frames_in, core.bytes_in) == (4, len(codec.encode_many([b"a", b"b", b"c", b"dd"])))


def test_errors_keep_their_place_and_frames_behind_them_follow(LP: Any, receive: Any) -> None:
    codec = LP(4, max_frame_size=20)
    wire = codec.encode(b"ok") + LP(4).encode(b"x" * 50) + codec.encode(b"after")
    core = StreamCore(codec)
    receive(core, wire)
    assert drain(core) == [b"ok", "FrameTooLarge", b"after"]


def test_a_corrupt_stream_ends_with_its_error_for_good(LP: Any, receive: Any) -> None:
    codec = LP(8)
    core = StreamCore(codec)
    receive(core, codec.encode(b"ok") + b"\xff" * 8)
    assert drain(core)[:2] == [b"ok", "CorruptedFrame"]
    for _ in range(3):  # every later call raises it again
        with pytest.raises(framekit.CorruptedFrame):
            core.next_batch()
    assert core.ended


def test_end_of_stream_inside_a_frame(LP: Any, receive: Any) -> None:
    codec = LP(4)
    core = StreamCore(codec)
    receive(core, codec.encode(b"whole") + codec.encode(b"cut")[:5])
    core.receive_eof()
    assert drain(core) == [b"whole", "IncompleteFrame"]
    with pytest.raises(framekit.ConnectionClosed):
        core.next_batch()


def test_a_lost_connection_is_raised_once_after_what_came_before(LP: Any) -> None:
    codec = LP(4)
    core = StreamCore(codec)
    core.receive_data(codec.encode(b"x"))
    core.connection_lost(ConnectionResetError("reset"))
    assert list(core.messages) == [b"x"]
    with pytest.raises(ConnectionResetError):
        core.next_batch()
    with pytest.raises(framekit.ConnectionClosed, match="lost"):
        core.next_batch()


def test_input_that_arrives_while_a_batch_is_in_use_waits(LP: Any) -> None:
    """The decoder is called again only once its batch is used up (for switching)."""
    codec = LP(4)
    core = StreamCore(codec)
    core.receive_data(codec.encode_many([b"1", b"2"]))
    assert next(core.messages) == b"1"
    feed_view(core, codec.encode(b"3"))  # read ahead: held, not decoded
    core.receive_data(codec.encode(b"4"))
    assert core.queued_frames == 1
    assert core.pending == 2 * len(codec.encode(b"3"))
    assert drain(core) == [b"2", b"3", b"4"]


def test_serializer_errors_cost_one_message(LP: Any) -> None:
    codec = LP(4)
    core = StreamCore(codec, JSON)
    core.receive_data(codec.encode_many([b"[1]", b"nope", b'"x"']))
    out = []
    while True:
        try:
            out.extend(core.messages)
            break
        except framekit.SerializationError as exc:
            out.append(exc.frame)
    assert out == [[1], b"nope", "x"]


def test_bounds(LP: Any) -> None:
    codec = LP(4)
    core = StreamCore(codec, max_queued_frames=4, max_queued_bytes=1000)
    core.receive_data(codec.encode_many([b"x"] * 6))
    assert core.over_limit and not core.under_half
    for _ in range(4):
        next(core.messages)
    assert not core.over_limit and core.under_half


def test_coalescing_while_a_batch_is_in_use(LP: Any) -> None:
    codec = LP(4)
    core = StreamCore(codec)
    assert not core.coalescing
    core.receive_data(codec.encode_many([b"1", b"2"]))
    next(core.messages)
    assert core.coalescing  # "2" waits: the caller comes back before waiting
    core.write(b"reply-1")
    next(core.messages)
    assert not core.coalescing
    core.write(b"reply-2")
    assert b"".join(core.take_outgoing()) == codec.encode_many([b"reply-1", b"reply-2"])
    assert core.take_outgoing() == []
    assert core.frames_out == 2


def test_large_bytes_go_out_by_reference(LP: Any) -> None:
    codec = LP(4)
    core = StreamCore(codec)
    big = b"b" * VECTORED_MIN_SIZE
    core.write(big)
    parts = core.take_outgoing()
    assert len(parts) == 2 and parts[1] is big
    core.write(bytearray(big))  # mutable: copied with its header
    assert len(core.take_outgoing()) == 1


def test_prefix_goes_to_the_codec(LP: Any) -> None:
    codec = LP(4, length_offset=1, strip=0)
    core = StreamCore(codec)
    core.write(b"body", prefix=b"Q")
    core.write_many([b"a", b"b"], prefix=b"Z")
    assert b"".join(core.take_outgoing()) == codec.encode(b"body", prefix=b"Q") + codec.encode_many(
        [b"a", b"b"], prefix=b"Z"
    )


def test_a_str_payload_says_how_to_fix_it(LP: Any) -> None:
    core = StreamCore(LP(4))
    with pytest.raises(TypeError, match=r"cannot send a str: encode it .* serializer="):
        core.write("hi")
    with pytest.raises(TypeError, match="cannot send a str"):
        core.write_many([b"ok", "hi"])
    assert core.take_outgoing() == []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_idle_timeout(LP: Any) -> None:
    clock = Clock()
    codec = LP(4)
    core = StreamCore(codec, idle_timeout=5.0, clock=clock)
    assert core.deadline() == 105.0 and core.timed_out() is None
    clock.now = 104.0
    core.receive_data(codec.encode(b"x"))
    assert core.deadline() == 109.0
    clock.now = 109.0
    error = core.timed_out()
    assert isinstance(error, TimeoutError) and "idle_timeout" in str(error)
    assert list(core.messages) == [b"x"]  # nothing received is lost


def test_frame_timeout_counts_from_a_frame_s_first_byte(LP: Any) -> None:
    clock = Clock()
    codec = LP(4)
    core = StreamCore(codec, frame_timeout=2.0, clock=clock)
    assert core.deadline() is None  # no frame begun
    wire = codec.encode(b"slow frame")
    core.receive_data(wire[:3])
    assert core.deadline() == 102.0
    clock.now = 101.5
    core.receive_data(wire[3:6])  # progress does not move the deadline
    assert core.deadline() == 102.0
    clock.now = 102.0
    assert "frame_timeout" in str(core.timed_out())
    core.receive_data(wire[6:])
    assert core.deadline() is None
    assert list(core.messages) == [b"slow frame"]


def test_switching_a_codec_that_cannot_hand_back_bytes() -> None:
    class NoDetach(framekit.CodecBase):
        def encode(self, payload: Any, *, prefix: Any = b"") -> bytes:
            return bytes(payload) + b"\n"

        def decoder(self) -> Any:
            return Plain(framekit.Delimited().decoder())

    class Plain(framekit.DecoderBase):
        """A decoder with nothing but the basics (no detach)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        @property
        def pending(self) -> int:
            return self.inner.pending  # type: ignore[no-any-return]

        def feed(self, data: Any) -> Any:
            return self.inner.feed(data)

        def eof(self) -> None:
            self.inner.eof()

    core = StreamCore(NoDetach())
    core.switch_codec(framekit.LengthPrefixed(4))  # nothing held: fine
    core = StreamCore(NoDetach())
    core.receive_data(b"a\nb\n")
    next(core.messages)
    with pytest.raises(TypeError, match="cannot switch codecs"):
        core.switch_codec(framekit.LengthPrefixed(4))


@pytest.mark.parametrize("ending", ["cut", "too-large", "corrupt", "reset"])
def test_a_dead_connection_s_decoder_is_freed_without_the_garbage_collector(
    LP: Any, ending: str
) -> None:
    """Raising an error kept in the core leaves no traceback cycle behind that would
    keep the connection's decoder (and its half-received frame) alive until a full
    collection."""
    size = 8 if ending == "corrupt" else 4

    class Tracked(framekit.CodecBase):
        """LengthPrefixed, with decoders a weakref can follow."""

        def __init__(self) -> None:
            self.inner = LP(size, max_frame_size=200_000)

        def encode(self, payload: Any, *, prefix: Any = b"") -> bytes:
            return self.inner.encode(payload)  # type: ignore[no-any-return]

        def decoder(self) -> Any:
            return TrackedDecoder(self.inner.decoder())

    class TrackedDecoder(framekit.DecoderBase):
        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.frame_bytes = bytearray(1_000_000)  # what a half-received frame holds

        @property
        def pending(self) -> int:
            return self.inner.pending  # type: ignore[no-any-return]

        def feed(self, data: Any) -> Any:
            return self.inner.feed(data)

        def eof(self) -> None:
            self.inner.eof()

    codec = LP(size)
    wire = {
        "cut": codec.encode(b"ok") + codec.encode(b"x" * 100_000)[:50_000],
        "too-large": codec.encode(b"ok") + codec.encode(b"x" * 300_000)[:50_000],
        "corrupt": codec.encode(b"ok") + b"\xff" * 8,
        "reset": codec.encode(b"ok") + codec.encode(b"x" * 100_000)[:50_000],
    }[ending]
    expected = {
        "cut": "IncompleteFrame",
        "too-large": "FrameTooLarge",
        "corrupt": "CorruptedFrame",
        "reset": "ConnectionResetError",
    }[ending]
    gc.collect()
    gc.disable()
    try:
        core = StreamCore(Tracked())
        decoder = weakref.ref(core._decoder)
        core.receive_data(wire)
        if ending == "reset":
            core.connection_lost(ConnectionResetError("reset"))
        else:
            core.receive_eof()
        caught: List[BaseException] = []
        for _ in range(4):
            try:
                list(core.messages)
                core.next_batch()
            except Exception as exc:
                caught.append(exc)
        assert expected in [type(exc).__name__ for exc in caught]
        del core, caught
        assert decoder() is None
    finally:
        gc.enable()


def test_a_server_wide_budget_refuses_the_connection_that_asks_for_more(LP: Any) -> None:
    codec = LP(4)
    budget = MemoryBudget(3000)
    a, b = StreamCore(codec), StreamCore(codec)
    a.set_budget(budget)
    b.set_budget(budget)
    a.receive_data(codec.encode(b"x" * 2000)[:700])  # an unfinished frame: 700 held
    assert budget.used == 700
    b.receive_data(codec.encode(b"ok") + codec.encode(b"y" * 5000)[:2400])  # 2402 > 2300 left
    assert b.refused and not a.refused
    assert budget.used == 700 + len(b"ok")  # b's unfinished frame was dropped at once
    assert drain(b) == [b"ok", "BudgetExceeded"]
    with pytest.raises(framekit.ConnectionClosed):
        b.next_batch()
    b.receive_data(b"more")  # a refused connection's input is dropped
    assert b.pending == 0
    b.discard_received()
    assert budget.used == 700
    a.receive_data(codec.encode(b"x" * 2000)[700:])  # a goes on
    assert drain(a) == [b"x" * 2000]
    assert budget.used == 0


def test_a_reported_timeout_starts_a_new_period(LP: Any) -> None:
    clock = Clock()
    core = StreamCore(LP(4), idle_timeout=5.0, clock=clock)
    clock.now = 105.0
    assert core.timed_out() is not None
    assert core.timed_out() is None  # caught and waited again: a whole new period
    assert core.deadline() == 110.0


def test_held_back_writes_are_capped(LP: Any) -> None:
    codec = LP(4)
    core = StreamCore(codec)
    core.receive_data(codec.encode_many([b"1", b"2", b"3"]))
    next(core.messages)
    assert core.coalescing
    core.write(b"x" * (COALESCE_MAX + 1))  # a big reply: flush now, batch or not
    assert not core.coalescing
    core.take_outgoing()
    assert core.coalescing
