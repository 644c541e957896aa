"""Decoding: both backends, the naive decoder, Delimited and Netstring, msgpack, hiredis,
Twisted and the floors, at every payload size, fed in 64 KiB chunks, 7-byte chunks and
whole, keeping ("list") or dropping ("stream") the frames.  And the text codecs on their
own wire formats: Lines (against its pure twin, the bytes.split floor, Twisted's
LineReceiver and asyncio's StreamReader.readuntil), Delimited(b"\r\n", b"\n") and
Netstring (against their pure twins).

The comparisons come from :mod:`framekit.apps.benchmarks.catalogue`; see conftest.py.
"""

from __future__ import annotations

from typing import Any, Callable

KIND = "decode"


def test_decode(measure: Callable[[Any], None], case: Any) -> None:
    measure(case)
