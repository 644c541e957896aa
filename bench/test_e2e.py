"""End to end over loopback TCP and Unix sockets, 64 B and 64 KiB frames blasted by a sender
process: framekit blocking and asyncio receivers, the naive recv-exactly loop, asyncio
``readexactly`` and raw ``recv_into`` (the limit).

The comparisons come from :mod:`framekit.apps.benchmarks.catalogue`; see conftest.py.
"""

from __future__ import annotations

from typing import Any, Callable

KIND = "e2e"


def test_e2e(measure: Callable[[Any], None], case: Any) -> None:
    measure(case)
