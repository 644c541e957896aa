"""The progress bar: drawn for a terminal only, throttled, and never wider than it."""

from __future__ import annotations

import io
from typing import List

import pytest

from framekit.apps.commands.progress import Progress, format_bytes, format_duration, render


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB")],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(("s", "text"), [(0, "0:00"), (75, "1:15"), (3725, "1:02:05")])
def test_format_duration(s: float, text: str) -> None:
    assert format_duration(s) == text


def test_render_shows_bytes_rate_and_eta() -> None:
    line = render("big.iso", 16 << 20, 64 << 20, 2.0, width=100)
    assert line.startswith("big.iso [")
    for part in (" 25% ", "16.0 MiB/64.0 MiB", "8.0 MiB/s", "ETA 0:06"):
        assert part in line


def test_render_when_done_and_before_any_rate() -> None:
    assert render("f", 10, 10, 1.0).endswith("done")
    assert "ETA --:--" in render("f", 0, 10, 0.0)
    assert "100%" in render("empty", 0, 0, 0.0)


@pytest.mark.parametrize("width", [1, 10, 20, 40, 60, 80, 200])
def test_render_never_exceeds_the_terminal(width: int) -> None:
    assert len(render("a-very-long-file-name-" * 5, 123456, 9876543, 3.0, width)) < max(width, 2)


def test_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("f", 100, stream=stream) as bar:
        bar.update(50)
    assert not bar.enabled
    assert stream.getvalue() == ""


def test_draws_on_a_terminal_throttled_by_the_clock() -> None:
    stream, clock = FakeTTY(), Clock()
    bar = Progress("f", 100, stream=stream, clock=clock, interval=0.5)
    assert bar.enabled
    draws: List[int] = []
    for done in range(0, 101, 10):
        bar.update(done)
        draws.append(stream.getvalue().count("\r"))
        clock.now += 0.2
    assert draws[0] == 1  # the first update draws
    assert draws[-1] < 11  # but not every one
    assert draws[-1] >= 4  # 2 s of updates at most every 0.5 s
    bar.close()
    text = stream.getvalue()
    assert text.endswith("\n")
    assert "100%" in text.splitlines()[-1].rsplit("\r", 1)[-1]
