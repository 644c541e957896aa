"""Property tests: both backends agree on any configuration, any bytes, any splits."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framekit.codecs import _limits as _common
from framekit.codecs import length_prefixed as _codec_py

from .codec_helpers import buffer_events, feed_events, split

try:
    from framekit import _speedups
except ImportError:  # pragma: no cover
    _speedups = None  # type: ignore[assignment]

needs_both = pytest.mark.skipif(_speedups is None, reason="framekit._speedups was not built")

SETTINGS = settings(
    max_examples=int(os.environ.get("FRAMEKIT_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def configs(draw: st.DrawFn) -> Dict[str, Any]:
    size = draw(st.sampled_from([1, 2, 3, 4, 8, "varint"]))
    offset = draw(st.integers(0, 3))
    cfg: Dict[str, Any] = {
        "length_size": size,
        "byteorder": draw(st.sampled_from(["big", "little"])),
        "length_offset": offset,
        "length_adjustment": draw(st.integers(-6, 6)),
        "strip": draw(st.one_of(st.none(), st.integers(0, offset + 10))),
        "max_frame_size": draw(st.integers(offset + 8 + 6, 400)),
        "fail_fast": draw(st.booleans()),
        "varint_max_bytes": draw(st.integers(1, 10)),
    }
    return cfg


#: (DIRECT_MIN, DIRECT_RATIO) overrides, so that small frames take the
#: assemble-in-place path too; None keeps the defaults.
DIRECT = st.sampled_from([None, (1, 10**9), (1, 2), (8, 8), (30, 3)])


@contextlib.contextmanager
def direct_sizes(sizes: Optional[Tuple[int, int]]) -> Iterator[None]:
    saved = _common.DIRECT_MIN, _common.DIRECT_RATIO
    if sizes is not None:
        _common.DIRECT_MIN, _common.DIRECT_RATIO = sizes
    try:
        yield
    finally:
        _common.DIRECT_MIN, _common.DIRECT_RATIO = saved


def make(module: Any, cfg: Dict[str, Any]) -> Any:
    cfg = dict(cfg)
    return module.LengthPrefixed(cfg.pop("length_size"), **cfg)


@needs_both
@SETTINGS
@given(
    cfg=configs(),
    payloads=st.lists(st.binary(max_size=300), max_size=8),
    prefix_byte=st.integers(0, 255),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
    direct=DIRECT,
)
def test_roundtrip_and_backends_agree(
    cfg: Dict[str, Any], payloads: list, prefix_byte: int, cuts: list, direct: Any
) -> None:
    py = make(_codec_py, cfg)
    cy = make(_speedups, cfg)
    prefix = bytes([prefix_byte]) * cfg["length_offset"]
    wire = b""
    encoded = []
    for payload in payloads:
        try:
            frame = py.encode(payload, prefix=prefix)
        except ValueError as exc:
            with pytest.raises(ValueError) as cy_exc:
                cy.encode(payload, prefix=prefix)
            assert str(cy_exc.value) == str(exc)
            continue
        assert cy.encode(payload, prefix=prefix) == frame
        assert py.header(len(payload), prefix=prefix) == cy.header(len(payload), prefix=prefix)
        wire += frame
        encoded.append((payload, frame))
    chunks = split(wire, cuts)
    with direct_sizes(direct):
        results = [
            feed_events(py.decoder(), chunks),
            feed_events(cy.decoder(), chunks),
            buffer_events(py.decoder(), chunks),
            buffer_events(cy.decoder(), chunks),
        ]
    assert all(r == results[0] for r in results[1:])
    # When every frame decoded cleanly, each equals the encoded frame after strip.
    events = results[0]
    if all(e[0] == "frame" for e in events):
        strip = cfg["strip"]
        want = [frame[len(frame) - len(p) if strip is None else strip :] for p, frame in encoded]
        assert [e[1] for e in events] == want


@needs_both
@SETTINGS
@given(
    cfg=configs(),
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(0, 600), max_size=10),
    direct=DIRECT,
)
def test_backends_agree_on_garbage(
    cfg: Dict[str, Any], data: bytes, cuts: list, direct: Any
) -> None:
    chunks = split(data, cuts)
    py = make(_codec_py, cfg)
    cy = make(_speedups, cfg)
    with direct_sizes(direct):
        a = feed_events(py.decoder(), chunks)
        assert feed_events(cy.decoder(), chunks) == a
        assert buffer_events(py.decoder(), chunks) == a
        assert buffer_events(cy.decoder(), chunks) == a


@needs_both
@SETTINGS
@given(
    cfg=configs(),
    payloads=st.lists(st.binary(max_size=50), min_size=1, max_size=6),
    garbage=st.binary(min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 800), max_size=8),
)
def test_frames_before_bad_bytes_are_delivered(
    cfg: Dict[str, Any], payloads: list, garbage: bytes, cuts: list
) -> None:
    py = make(_codec_py, cfg)
    cy = make(_speedups, cfg)
    prefix = b"\x07" * cfg["length_offset"]
    try:
        good = py.encode_many(payloads, prefix=prefix)
    except ValueError:
        return
    chunks = split(good + garbage, cuts)
    a = feed_events(py.decoder(), chunks)
    assert feed_events(cy.decoder(), chunks) == a
    clean = feed_events(py.decoder(), [good])
    if all(e[0] == "frame" for e in clean):
        # Every frame that arrived whole before the garbage comes out first, in order.
        assert a[: len(clean)] == clean
