"""A one-line progress bar on stderr: bytes, rate and ETA, only for a terminal.

Design notes
------------
A progress bar is for a person watching a terminal.  In a pipe or a log file
the carriage-return redraws are noise, so :class:`Progress` draws only when its
stream is a TTY (``isatty()``), and is silent otherwise; callers create one
unconditionally and never test for a terminal themselves.

Redrawing costs a write syscall and a format, so it is throttled to a few times
a second by a monotonic clock (injectable, so tests need not sleep), and the
formatting is a pure function, :func:`render`, tested on its own.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Callable, Optional, TextIO

from ..._util import Closing

__all__ = ["Progress", "format_bytes", "format_duration", "render"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; whole bytes below 1 KiB."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in _UNITS[1:]:
        n /= 1024
        if n < 1024 or unit == _UNITS[-1]:
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    total = int(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def render(label: str, done: int, total: int, elapsed: float, width: int = 80) -> str:
    """Return one progress line, at most ``width`` characters.

    Args:
        label: what is moving (a file name); shortened to fit.
        done: bytes moved so far.
        total: bytes to move in all.
        elapsed: seconds since the start.
        width: terminal columns.
    """
    rate = done / elapsed if elapsed > 0 else 0.0
    if done >= total:
        eta = "done"
    elif rate > 0:
        eta = "ETA " + format_duration((total - done) / rate)
    else:
        eta = "ETA --:--"
    percent = 100 if total <= 0 else min(100, done * 100 // total)
    stats = (
        f" {percent:3d}% {format_bytes(done)}/{format_bytes(total)} {format_bytes(rate)}/s {eta}"
    )
    room = width - 1 - len(stats)  # one column spare: writing the last one may wrap
    bar_width = min(30, room - 16)
    if bar_width >= 10:
        filled = bar_width if total <= 0 else bar_width * min(done, total) // total
        bar = " [" + "#" * filled + "-" * (bar_width - filled) + "]"
    else:
        bar = ""
    room -= len(bar)
    if room < 4:
        return stats.strip()[: max(width - 1, 0)]
    if len(label) > room:
        label = label[: room - 3] + "..."
    return f"{label}{bar}{stats}"


class Progress(Closing):
    """A progress bar for ``total`` bytes, drawn on ``stream`` if it is a terminal.

    Args:
        label: what is moving (a file name).
        total: bytes to move.
        stream: where to draw; ``sys.stderr`` (looked up at creation) by default.
        enabled: force drawing on or off; by default, draw iff ``stream.isatty()``.
        clock: monotonic seconds (tests pass a fake).
        interval: least seconds between two redraws.

    Use as a context manager, or call :meth:`close` at the end.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: Optional[TextIO] = None,
        enabled: Optional[bool] = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.done = 0
        self._clock = clock
        self._interval = interval
        self._start = clock()
        self._last_draw = -float("inf")

    def update(self, done: int) -> None:
        """Record that ``done`` bytes (in all, not an increment) have moved."""
        self.done = done
        if not self.enabled:
            return
        now = self._clock()
        if now - self._last_draw >= self._interval:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line (only if something was drawn)."""
        if self.enabled:
            self._draw(self._clock())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        width = shutil.get_terminal_size().columns
        line = render(self.label, self.done, self.total, now - self._start, width)
        self.stream.write("\r" + line + "\x1b[K")  # \x1b[K clears what a longer line left
        self.stream.flush()
