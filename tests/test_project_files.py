"""What the README promises about the project's own files: extras, bench modes, Netty."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(name: str) -> str:
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def test_the_bench_extra_has_what_pytest_bench_needs() -> None:
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads(_read("pyproject.toml"))["project"]["optional-dependencies"]
    names = {re.split(r"[<>=;\[ ]", req, maxsplit=1)[0] for req in extras["bench"]}
    assert {"pytest", "pytest-timeout", "pytest-benchmark"} <= names
    assert "msgspec" in extras and "build" in {r.split(">")[0] for r in extras["test"]}


def test_the_readme_lists_the_departures_from_netty() -> None:
    readme = _read("README.md")
    assert "follows Netty's" in readme and "exactly" not in readme.split("## The codec")[1][:2000]
    assert "`strip` larger than `max_frame_size` is refused when the codec is made" in readme
    assert "reported as `CorruptedFrame` as soon as its header is read" in readme
    assert "uvloop.run(main())" in readme  # a uvloop example (test_readme runs it)
    assert "pytest bench/ --bench-quick" in readme


def _collected(*args: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "bench", "--collect-only", "-q", "-p", "no:cacheprovider",
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    match = re.search(r"(\d+) tests? collected", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return int(match.group(1))


def test_pytest_bench_has_a_quick_mode() -> None:
    pytest.importorskip("pytest_benchmark")
    quick, full = _collected("--bench-quick"), _collected()
    assert 0 < quick < full / 4
