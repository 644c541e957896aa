"""ruff and mypy, configured in pyproject.toml, run as part of the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _tool(name: str) -> str:
    path = os.path.join(BIN, name)
    if os.path.exists(path):
        return path
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def _run(*args: str) -> None:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_check() -> None:
    _run(_tool("ruff"), "check", "src", "tests", "bench", "examples")


def test_ruff_format() -> None:
    _run(_tool("ruff"), "format", "--check", "src", "tests", "bench", "examples")


def test_mypy_strict() -> None:
    _run(sys.executable, "-m", "mypy")
