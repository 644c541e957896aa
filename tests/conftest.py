"""Shared fixtures: every codec test runs on both backends."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Callable

import pytest

from framekit import _codec_py

try:
    from framekit import _speedups
except ImportError:  # pragma: no cover - exercised when the build was skipped
    _speedups = None  # type: ignore[assignment]

REQUIRE_EXTENSION = os.environ.get("FRAMEKIT_REQUIRE_EXTENSION", "") not in ("", "0")

BACKENDS = [pytest.param(_codec_py, id="python")]
BACKENDS.append(
    pytest.param(
        _speedups,
        id="cython",
        marks=pytest.mark.skipif(_speedups is None, reason="framekit._speedups was not built"),
    )
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """The codec module under test: ``framekit._codec_py`` or ``framekit._speedups``."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def LP(backend: ModuleType) -> Callable[..., Any]:
    """The ``LengthPrefixed`` class of the backend under test."""
    return backend.LengthPrefixed  # type: ignore[no-any-return]


def reload_codec_selector() -> ModuleType:
    import framekit.codec

    return importlib.reload(framekit.codec)
