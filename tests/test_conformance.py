"""framekit.testing.check_codec: every built-in codec passes it, and it catches broken ones."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from types import ModuleType
from typing import Any, Callable, List, Optional

import pytest

import framekit
from framekit.codecs.presets import PRESET_ARGS
from framekit.errors import FrameTooLarge, IncompleteFrame
from framekit.testing import CHECKS, ContractViolation, check_codec

#: Every configuration of the length-prefixed family worth telling apart: ``(id, kwargs)``.
LENGTH_CONFIGS = [
    ("default", {}),
    ("2-little", {"length_size": 2, "byteorder": "little", "max_frame_size": 4096}),
    ("1-byte", {"length_size": 1}),
    ("3-byte", {"length_size": 3, "max_frame_size": 70000}),
    ("8-byte-lazy", {"length_size": 8, "max_frame_size": 5000, "fail_fast": False}),
    ("varint", {"length_size": "varint", "max_frame_size": 1000}),
    ("offset-adjust-strip", {"length_offset": 2, "length_adjustment": -3, "strip": 1,
                             "length_size": 3, "max_frame_size": 2000}),
    ("keep-header", {"strip": 0, "max_frame_size": 3000}),
    *[(f"preset-{name}", dict(args)) for name, args in PRESET_ARGS.items()],
    *[(f"preset-{n}-small", {**a, "max_frame_size": 4096}) for n, a in PRESET_ARGS.items()],
]  # fmt: skip


def _length_prefixed(backend: ModuleType, kwargs: dict) -> Any:
    kwargs = dict(kwargs)
    return backend.LengthPrefixed(kwargs.pop("length_size", 4), **kwargs)


OTHER_CODECS: List[Any] = [
    pytest.param(lambda: framekit.Delimited(), id="lines"),
    pytest.param(lambda: framekit.Delimited(b"\n", max_frame_size=500), id="lines-small"),
    pytest.param(
        lambda: framekit.Delimited(b"\r\n", keep_delimiter=True, max_frame_size=300), id="crlf-keep"
    ),
    pytest.param(lambda: framekit.Delimited(b"\x00\x00", max_frame_size=300), id="two-nuls"),
    pytest.param(lambda: framekit.Netstring(), id="netstring"),
    pytest.param(lambda: framekit.Netstring(max_frame_size=1000), id="netstring-small"),
]

_EXAMPLES = 20


@pytest.mark.parametrize(("config", "kwargs"), LENGTH_CONFIGS, ids=[c for c, _ in LENGTH_CONFIGS])
def test_length_prefixed_keeps_the_contract(backend: ModuleType, config: str, kwargs: dict) -> None:
    report = check_codec(
        _length_prefixed(backend, kwargs), skip=["encode_limit"], max_examples=_EXAMPLES
    )
    assert {"round_trip", "receive_paths", "hostile_headers", "eof"} <= set(report.ran)


@pytest.mark.parametrize("make", OTHER_CODECS)
def test_delimited_and_netstring_keep_the_contract(make: Callable[[], Any]) -> None:
    report = check_codec(make(), skip=["encode_limit"], max_examples=_EXAMPLES)
    assert {"round_trip", "receive_paths", "hostile_headers", "eof"} <= set(report.ran)


def _refuses_oversized(codec: Any) -> bool:
    try:
        codec.encode_parts(b"\x00" * (codec.max_frame_size + 1))
    except FrameTooLarge:
        return True
    except (ValueError, TypeError):
        return False
    return False


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda b: b.LengthPrefixed(4, max_frame_size=100), id="length"),
        pytest.param(lambda b: b.LengthPrefixed("varint", max_frame_size=100), id="varint"),
        pytest.param(lambda b: framekit.Delimited(max_frame_size=100), id="lines"),
        pytest.param(lambda b: framekit.Netstring(max_frame_size=100), id="netstring"),
    ],
)
def test_the_encode_side_refuses_oversized_frames(backend: ModuleType, make: Any) -> None:
    codec = make(backend)
    assert _refuses_oversized(codec)
    check_codec(codec, checks=["encode_limit"])


def test_encode_limit_is_a_violation_where_it_is_missing() -> None:
    class Unchecked(framekit.CodecBase):
        max_frame_size = 10

        def encode(self, payload: Any) -> bytes:
            return len(payload).to_bytes(4, "big") + bytes(payload)

        def decoder(self) -> Any:
            return framekit.LengthPrefixed(4, max_frame_size=10).decoder()

    with pytest.raises(ContractViolation, match=r"encode_limit: .* accepted a 11-byte payload"):
        check_codec(Unchecked(), checks=["encode_limit"])


# --- the kit catches broken codecs ----------------------------------------------------------


class Fixed(framekit.CodecBase):
    """Fixed-size records, as in the README; subclasses break it in one way each."""

    size = 4

    def encode(self, payload: Any) -> bytes:
        if len(payload) != self.size:
            raise ValueError("wrong size")
        return bytes(payload)

    def decoder(self) -> Any:
        return FixedDecoder(self.size)


class FixedDecoder(framekit.DecoderBase):
    def __init__(self, size: int) -> None:
        self.size, self.buffer, self.pending = size, bytearray(), 0

    def feed(self, data: Any) -> List[bytes]:
        self.buffer += data
        end = len(self.buffer) - len(self.buffer) % self.size
        frames = [bytes(self.buffer[i : i + self.size]) for i in range(0, end, self.size)]
        del self.buffer[:end]
        self.pending = len(self.buffer)
        return frames

    def eof(self) -> None:
        if self.pending:
            raise IncompleteFrame("cut", pending=self.pending)


def test_a_correct_user_codec_passes_and_the_report_says_what_was_skipped() -> None:
    report = check_codec(Fixed(), max_examples=_EXAMPLES)
    assert report.ran == ["round_trip", "receive_paths", "hostile_headers", "eof"]
    assert set(report.skipped) == {"error_frames", "encode_limit", "switching"}
    assert "no invalid input known" in report.skipped["error_frames"]


def test_a_decoder_that_keeps_views_of_its_input_is_caught() -> None:
    class KeepsViews(FixedDecoder):
        """Holds on to the caller's buffers instead of copying a partial record."""

        def __init__(self, size: int) -> None:
            super().__init__(size)
            self.views: List[Any] = []

        def feed(self, data: Any) -> List[bytes]:
            self.views.append(data)  # a view of a buffer the caller will reuse: the bug
            if sum(len(v) for v in self.views) < self.size:
                self.pending = sum(len(v) for v in self.views)
                return []  # read later, when the caller has overwritten it
            available = b"".join(bytes(v) for v in self.views)
            end = len(available) - len(available) % self.size
            frames = [available[i : i + self.size] for i in range(0, end, self.size)]
            self.views = [available[end:]]
            self.pending = len(available) - end
            return frames

    class Codec(Fixed):
        def decoder(self) -> Any:
            return KeepsViews(self.size)

    with pytest.raises(ContractViolation, match=r"round_trip: .* cut at"):
        check_codec(Codec(), checks=["round_trip"], max_examples=100)


def test_importing_the_kit_does_not_import_hypothesis() -> None:
    code = (
        "import sys, framekit, framekit.testing\n"
        "assert 'hypothesis' not in sys.modules, sorted(m for m in sys.modules if 'hypo' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_lost_frames_at_a_split_are_caught() -> None:
    class Forgetful(FixedDecoder):
        def feed(self, data: Any) -> List[bytes]:
            frames = super().feed(data)
            if self.pending and frames:
                return frames[:-1]  # drops a frame when a record is cut after it
            return frames

    class Codec(Fixed):
        def decoder(self) -> Any:
            return Forgetful(self.size)

    with pytest.raises(ContractViolation, match="round_trip"):
        check_codec(Codec(), checks=["round_trip"], max_examples=_EXAMPLES)


def test_a_wrong_get_buffer_path_is_caught() -> None:
    class OffByOne(FixedDecoder):
        def buffer_updated(self, nbytes: int) -> List[bytes]:
            return super().buffer_updated(max(0, nbytes - 1) if nbytes > 5 else nbytes)

    class Codec(Fixed):
        def decoder(self) -> Any:
            return OffByOne(self.size)

    with pytest.raises(ContractViolation, match="receive_paths"):
        check_codec(Codec(), checks=["receive_paths"], max_examples=_EXAMPLES)


def test_errors_without_their_frames_are_caught() -> None:
    class NoFrames(FixedDecoder):
        def feed(self, data: Any) -> List[bytes]:
            frames = super().feed(data)
            if any(f == b"BAD!" for f in frames):
                raise framekit.CorruptedFrame("bad record")  # .frames left empty
            return frames

    class Codec(Fixed):
        def decoder(self) -> Any:
            return NoFrames(self.size)

    payloads = __import__("hypothesis").strategies.binary(min_size=4, max_size=4)
    with pytest.raises(ContractViolation, match="error_frames"):
        check_codec(
            Codec(),
            checks=["error_frames"],
            payloads=payloads.filter(lambda p: p != b"BAD!"),
            invalid=[b"BAD!"],
            max_examples=_EXAMPLES,
        )


def test_a_decoder_that_trusts_the_announced_length_is_caught() -> None:
    class Trusting(framekit.DecoderBase):
        """Allocates the whole announced frame on reading its header (up to 64 MiB)."""

        def __init__(self) -> None:
            self.buffer = bytearray()
            self.frame: Optional[bytearray] = None
            self.pending = 0

        def feed(self, data: Any) -> List[bytes]:
            self.buffer += data
            if self.frame is None and len(self.buffer) >= 4:
                self.frame = bytearray(min(int.from_bytes(self.buffer[:4], "big"), 64 << 20))
            self.pending = len(self.buffer)
            return []

        def eof(self) -> None:
            pass

    class Codec(framekit.CodecBase):
        max_frame_size = 1 << 30

        def encode(self, payload: Any) -> bytes:
            return len(payload).to_bytes(4, "big") + bytes(payload)

        def decoder(self) -> Any:
            return Trusting()

    with pytest.raises(ContractViolation, match=r"hostile_headers: .* allocated"):
        check_codec(Codec(), checks=["hostile_headers"], hostile=[b"\x03\xff\xff\xff"])
    assert not tracemalloc.is_tracing()  # the kit stopped what it started


def test_a_silent_eof_is_caught() -> None:
    class Silent(FixedDecoder):
        def eof(self) -> None:
            pass

    class Codec(Fixed):
        def decoder(self) -> Any:
            return Silent(self.size)

    with pytest.raises(ContractViolation, match=r"eof: .* raised nothing"):
        check_codec(Codec(), checks=["eof"], max_examples=_EXAMPLES)


def test_unknown_check_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown check"):
        check_codec(Fixed(), checks=["round_trip", "speed"])
    assert CHECKS[0] == "round_trip"


# --- switching: a decoder that declares it ------------------------------------------------


class Switchable(framekit.CodecBase):
    """A 2-byte length prefix whose decoder implements ``max_frames`` and ``detach``."""

    def __init__(self, forget_unused: bool = False, ignore_limit: bool = False) -> None:
        self.forget_unused = forget_unused
        self.ignore_limit = ignore_limit

    def encode(self, payload: Any) -> bytes:
        return len(payload).to_bytes(2, "big") + bytes(payload)

    def decoder(self) -> Any:
        return SwitchableDecoder(self)


class SwitchableDecoder(framekit.DecoderBase):
    def __init__(self, codec: Switchable) -> None:
        self.codec = codec
        self.buffer = bytearray()
        self.last: List[bytes] = []  # wire bytes of the frames of the most recent call
        self.detached = False

    @property
    def pending(self) -> int:
        return len(self.buffer)

    def _check(self) -> None:
        if self.detached:
            raise ValueError("detached")

    def feed(self, data: Any, max_frames: int = -1) -> List[bytes]:
        self._check()
        self.buffer += data
        frames: List[bytes] = []
        wires: List[bytes] = []
        limit = -1 if self.codec.ignore_limit else max_frames
        while (limit < 0 or len(frames) < limit) and len(self.buffer) >= 2:
            n = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + n:
                break
            wires.append(bytes(self.buffer[: 2 + n]))
            frames.append(bytes(self.buffer[2 : 2 + n]))
            del self.buffer[: 2 + n]
        self.last = wires
        return frames

    def buffer_updated(self, nbytes: int, max_frames: int = -1) -> List[bytes]:
        self._check()
        view = memoryview(self._scratch)[:nbytes]
        return self.feed(view, max_frames)

    def detach(self, unused: int = 0) -> bytes:
        self._check()
        if not 0 <= unused <= len(self.last):
            raise ValueError(f"unused={unused}")
        self.detached = True
        kept = [] if self.codec.forget_unused else self.last[len(self.last) - unused :]
        return b"".join(kept) + bytes(self.buffer)

    def eof(self) -> None:
        self._check()
        if self.buffer:
            raise IncompleteFrame("cut", pending=len(self.buffer))


def test_switching_is_checked_where_the_decoder_declares_it() -> None:
    report = check_codec(Switchable(), checks=["switching"], max_examples=_EXAMPLES)
    assert report.ran == ["switching"]


@pytest.mark.parametrize("broken", ["forget_unused", "ignore_limit"])
def test_broken_switching_is_caught(broken: str) -> None:
    with pytest.raises(ContractViolation, match="switching"):
        check_codec(Switchable(**{broken: True}), checks=["switching"], max_examples=50)


def test_switching_is_skipped_for_the_built_in_codecs_today(backend: ModuleType) -> None:
    report = check_codec(backend.LengthPrefixed(4), checks=["switching"])
    if report.ran:  # the built-in decoders gained it: then it was checked, and passed
        return
    assert "does not declare switching" in report.skipped["switching"]
