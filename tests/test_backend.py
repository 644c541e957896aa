"""The selector, the twins' public surface, and the package's exports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import framekit
from framekit.codecs import length_prefixed as _codec_py

from .conftest import REQUIRE_EXTENSION, TEXT_PY, _speedups, _speedups_text


def test_extension_loaded_when_required() -> None:
    if not REQUIRE_EXTENSION:
        pytest.skip("FRAMEKIT_REQUIRE_EXTENSION is not set")
    assert _speedups is not None, "framekit._speedups was required but did not import"
    assert framekit.BACKEND == "cython"
    assert framekit.LengthPrefixed is _speedups.LengthPrefixed
    assert _speedups_text is not None, "framekit._speedups_text was required but did not import"
    for name in ("Lines", "Delimited", "Netstring", "FixedLength"):
        assert getattr(framekit, name) is getattr(_speedups_text, name), name
    assert set(framekit.codecs.backend.BACKENDS.values()) == {"cython"}


def _backend_in_subprocess(**env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import framekit; print(framekit.BACKEND)"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_pure_python_forced_by_env() -> None:
    assert _backend_in_subprocess(FRAMEKIT_PURE_PYTHON="1") == "python"
    out = subprocess.run(
        [sys.executable, "-c", "import framekit; print(framekit.Lines.__module__)"],
        env={**os.environ, "FRAMEKIT_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "framekit.codecs.lines"


#: Runs with one extension module made unimportable.
_WITHOUT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == {name!r}:
            raise ImportError(name)
sys.meta_path.insert(0, Block())
import framekit
from framekit.codecs.backend import BACKENDS
print(framekit.BACKEND, BACKENDS["LengthPrefixed"], BACKENDS["Lines"], framekit.Lines.__module__)
"""


@pytest.mark.skipif(_speedups is None, reason="framekit._speedups was not built")
@pytest.mark.skipif(_speedups_text is None, reason="framekit._speedups_text was not built")
@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("framekit._speedups_text", "python cython python framekit.codecs.lines"),
        ("framekit._speedups", "python python cython framekit._speedups_text"),
    ],
)
def test_backend_reads_python_when_one_extension_is_missing(missing: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FRAMEKIT_PURE_PYTHON"}
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT.format(name=missing)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == expected


def test_default_backend_is_cython_when_built() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FRAMEKIT_PURE_PYTHON"}
    expected = "cython" if _speedups is not None else "python"
    out = subprocess.run(
        [sys.executable, "-c", "import framekit; print(framekit.BACKEND)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == expected


def _public(cls: type) -> set:
    return {n for n in dir(cls) if not n.startswith("_")}


@pytest.mark.skipif(_speedups is None, reason="framekit._speedups was not built")
def test_twins_have_the_same_public_surface() -> None:
    for name in ("LengthPrefixed", "LengthPrefixedDecoder"):
        assert _public(getattr(_codec_py, name)) == _public(getattr(_speedups, name)), name
    assert _codec_py.__all__ == _speedups.__all__


@pytest.mark.skipif(_speedups_text is None, reason="framekit._speedups_text was not built")
def test_text_twins_have_the_same_public_surface() -> None:
    assert sorted(vars(TEXT_PY)) == sorted(_speedups_text.__all__)
    for name in _speedups_text.__all__:
        assert _public(getattr(TEXT_PY, name)) == _public(getattr(_speedups_text, name)), name


def test_exports() -> None:
    for name in framekit.__all__:
        assert hasattr(framekit, name), name
    assert framekit.BACKEND in ("cython", "python")
    assert issubclass(framekit.ConnectionClosed, ConnectionError)


def test_py_typed_shipped() -> None:
    assert os.path.exists(os.path.join(os.path.dirname(framekit.__file__), "py.typed"))
