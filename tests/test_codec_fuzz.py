"""The differential fuzz target (fuzz/), under hypothesis here and atheris for a while."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "fuzz"))

import fuzz_length_prefixed  # noqa: E402

needs_both = pytest.mark.skipif(
    fuzz_length_prefixed.fast is None, reason="framekit._speedups was not built"
)


@needs_both
@settings(
    max_examples=int(os.environ.get("FRAMEKIT_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.binary(min_size=8, max_size=4000))
def test_backends_agree_on_random_operations(data: bytes) -> None:
    fuzz_length_prefixed.one_input(data)


@needs_both
@pytest.mark.slow
def test_atheris_for_thirty_seconds(tmp_path: object) -> None:
    pytest.importorskip("atheris")
    seconds = os.environ.get("FRAMEKIT_FUZZ_SECONDS", "30")
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "fuzz", "fuzz_length_prefixed.py"),
            f"-max_total_time={seconds}",
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
        ],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=int(seconds) + 120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def _atheris(target: str, tmp_path: object, *args: str) -> None:
    pytest.importorskip("atheris")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "fuzz", target), "-rss_limit_mb=4096", *args],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


needs_text = pytest.mark.skipif(
    importlib.util.find_spec("framekit._speedups_text") is None,
    reason="framekit._speedups_text was not built",
)


@needs_text
def test_text_codecs_differential_fuzz_quick(tmp_path: object) -> None:
    """The text codecs' fuzz target (Lines, Delimited, Netstring, FixedLength:
    Cython against pure) for a few thousand random call sequences."""
    _atheris("fuzz_text_codecs.py", tmp_path, "-atheris_runs=3000")


@needs_text
@pytest.mark.slow
def test_text_codecs_atheris_for_thirty_seconds(tmp_path: object) -> None:
    seconds = os.environ.get("FRAMEKIT_FUZZ_SECONDS", "30")
    _atheris("fuzz_text_codecs.py", tmp_path, f"-max_total_time={seconds}")
