"""``framekit explain``: layouts as boxes, hex dumps read frame by frame."""

from __future__ import annotations

import io
from typing import Any, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import framekit
from framekit.apps.cli import main
from framekit.apps.commands.explain import box, explain_bytes, layout, parse_hex
from framekit.apps.errors import CommandError
from framekit.codecs.presets import PRESETS

#: A real PostgreSQL simple Query message: 'Q', Int32 length 13 (counting itself), "SELECT 1\0".
PG_QUERY_HEX = "510000000d53454c454354203100"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["explain", *argv]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_the_postgres_preset_explains_a_real_query_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run(capsys, "--preset", "postgres", PG_QUERY_HEX)
    assert "(--preset postgres)" in out.splitlines()[0]
    assert "frame 1 at byte 0: 14 bytes" in out
    assert "| prefix | length field | rest of frame  |" in out
    assert '| 0x51   | 0x0000000D   | "SELECT 1\\x00" |' in out
    assert "| 'Q'    | = 13         | 9 bytes        |" in out
    assert "length field 13 - 4 (length_adjustment) + 5 (header) = 14 bytes in all" in out
    assert "stripped: nothing; the decoder returns 14 bytes" in out
    assert out.rstrip().endswith("the decoder agrees: 1 frame")


def test_a_layout_in_netty_style(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "--length-size", "2", "--length-adjustment", "-2", "--strip", "2")
    assert "| length field        | rest of frame          |" in out
    assert "frame length (header included) = length field - 2 (length_adjustment) + 0 + 2" in out
    assert "the first 2 bytes of each frame are stripped (strip=2)" in out
    assert "BEFORE DECODE (14 bytes)" in out and "AFTER DECODE (12 bytes)" in out
    assert "| Length | Actual Content | -----> | Actual Content |" in out


def test_strip_and_an_incomplete_frame(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "--length-size", "2", "--strip", "2", "0005 68656c6c6f 0003 6869")
    assert 'stripped: the first 2 bytes (0x0005); the decoder returns 5 bytes: "hello"' in out
    assert "frame 2 at byte 7: 5 bytes" in out and "2 of 3 bytes" in out
    assert "incomplete: 4 bytes of 5 are here" in out
    assert "the decoder agrees: 1 frame; 4 bytes wait for the rest of a frame" in out


def test_text_where_a_length_should_be(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "68656c6c6f0a")  # "hello\n" read with the default framing
    assert "length field 1751477356 + 0 (length_adjustment) + 4 (header) = 1751477360" in out
    assert "above max_frame_size (16777216): a decoder raises FrameTooLarge" in out
    assert "hint: its length field 'hell' looks like text, not a length prefix" in out


def test_lines_and_netstrings(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "--codec", "lines", "68690a 6f6b0a 78")
    assert "frame 2 at byte 3: 3 bytes" in out and 'the decoder returns 2 bytes: "ok"' in out
    assert "incomplete: 1 byte and no delimiter yet" in out
    out = run(capsys, "--codec", "netstring", "353a68656c6c6f2c 323a6869")
    assert '| "5"    | 0x3A | "hello" | 0x2C |' in out
    assert "the decoder agrees: 1 frame" in out
    drawn = run(capsys, "--codec", "lines")
    assert "| line" in drawn and "| delimiter" in drawn
    assert "ASCII digits" in run(capsys, "--codec", "netstring")


def test_hex_on_stdin_and_bad_hex(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PG_QUERY_HEX}\n"))
    assert "the decoder agrees: 1 frame" in run(capsys, "--preset", "postgres", "-")
    assert main(["explain", "zz"]) == 1
    assert capsys.readouterr().err == (
        "framekit explain: error: HEX must be hexadecimal digits, two per byte "
        "(e.g. 51000000 0d 53)\n"
    )
    assert parse_hex(["0x51:00", "\\x0d"]) == b"\x51\x00\x0d"
    with pytest.raises(CommandError):
        parse_hex(["123"])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_has_a_layout(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "--preset", name)
    assert "length field" in out and "largest frame accepted" in out


def test_box() -> None:
    assert box([["Length", "0x000C"], ["Actual Content", '"HELLO, WORLD"']]) == [
        "+--------+----------------+",
        "| Length | Actual Content |",
        '| 0x000C | "HELLO, WORLD" |',
        "+--------+----------------+",
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([1, 2, 3, 4, 8, "varint"]),
    st.integers(0, 3),
    st.integers(-3, 3),
    st.one_of(st.none(), st.integers(0, 6)),
    st.lists(st.binary(max_size=40), max_size=4),
    st.integers(0, 10),
)
def test_explain_reads_what_the_decoder_reads(
    size: Any, offset: int, adjustment: int, strip: Any, payloads: List[bytes], cut: int
) -> None:
    try:
        codec = framekit.LengthPrefixed(
            size, length_offset=offset, length_adjustment=adjustment, strip=strip
        )
        wire = b"".join(codec.encode(p + b"x" * 6, prefix=b"P" * offset) for p in payloads)
    except ValueError:
        return
    data = wire[: max(0, len(wire) - cut)] or b"\x00"
    lines = explain_bytes(codec, data)
    assert lines[-1].startswith("the decoder agrees"), "\n".join(lines)
    assert "\n".join(layout(codec))
