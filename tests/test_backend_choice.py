"""Why the backend was chosen, and the one warning when the extension was expected."""

from __future__ import annotations

import json
import typing
import warnings
from typing import Any, Literal, Optional

import pytest

import framekit
from framekit.codecs import backend


def test_backend_is_typed_as_its_two_values() -> None:
    hints = typing.get_type_hints(backend)
    assert hints["BACKEND"] == Literal["cython", "python"]
    assert framekit.BACKEND in typing.get_args(hints["BACKEND"])
    assert backend.BACKEND_REASON


@pytest.mark.parametrize(
    ("record", "warns", "reason"),
    [
        ({"extension": "built"}, True, "was built at install time but does not import (gone)"),
        (
            {"extension": "failed", "reason": "the compiler cc failed with exit status 1"},
            True,
            "could not be compiled at install time (the compiler cc failed",
        ),
        ({"extension": "skipped", "reason": "FRAMEKIT_BUILD_EXTENSION=no"}, False, "skipped"),
        (None, False, "a source tree that was not built"),
    ],
    ids=["built-but-missing", "failed", "skipped", "no-record"],
)
def test_a_missing_extension_warns_only_when_it_was_expected(
    record: Optional[dict], warns: bool, reason: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "_build_info.json"
    if record is not None:
        path.write_text(json.dumps({"mode": "auto", **record}))
    monkeypatch.setattr(backend, "BUILD_INFO_FILE", str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        said = backend._say_missing(
            [
                backend._missing("framekit._speedups", ImportError("gone")),
                backend._missing("framekit._speedups_text", ImportError("gone")),
            ]
        )
    assert reason in "; ".join(said)
    assert len(caught) == (1 if warns else 0)  # one warning for both extensions
    if warns:
        assert caught[0].category is RuntimeWarning
        assert "FRAMEKIT_PURE_PYTHON=1" in str(caught[0].message)


def test_an_unreadable_record_counts_as_none(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "_build_info.json"
    path.write_text("{not json")
    monkeypatch.setattr(backend, "BUILD_INFO_FILE", str(path))
    assert backend.build_info() is None
