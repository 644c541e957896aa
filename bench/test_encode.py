"""Encoding: ``encode``, ``encode_many`` and ``header`` of both backends and the naive
``struct.pack`` encoder, against the floors, at every payload size.

The comparisons come from :mod:`framekit.apps.benchmarks.catalogue`; see conftest.py.
"""

from __future__ import annotations

from typing import Any, Callable

KIND = "encode"


def test_encode(measure: Callable[[Any], None], case: Any) -> None:
    measure(case)
