"""Frames too large to hold, end to end over loopback TCP: one 1 GiB frame (times the scale)
received as a stream (framekit ``recv_stream``/``recv_into`` on the blocking transport and on
asyncio, against raw ``recv_into`` of the same bytes), and a file sent as one frame (framekit
``send_file`` against a plain read + ``sendall`` loop, and ``socket.sendfile``), the sender
process draining it.

The comparisons come from :mod:`framekit.apps.benchmarks.catalogue`; see conftest.py.
"""

from __future__ import annotations

from typing import Any, Callable

KIND = "stream"


def test_stream(measure: Callable[[Any], None], case: Any) -> None:
    measure(case)
