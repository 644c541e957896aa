"""The README's code runs as written.

Every ```python block is run on its own, in a fresh interpreter (a fresh
namespace, and no state shared with the test process), with a time limit.
Every ``$ framekit ...`` line of a ```console block must parse with the real
command-line parser, and every ``$ python examples/...`` line must name an
example that exists: a renamed option or file breaks the test, not the reader.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from typing import List, Tuple

import pytest

from framekit.apps.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
TIMEOUT = 60

_BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> List[Tuple[int, str]]:
    """``(line number, code)`` of every fenced block in that language."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(2))
        for match in _BLOCK.finditer(text)
        if match.group(1) == language
    ]


def commands() -> List[Tuple[int, List[str]]]:
    """Each ``$ ...`` command of the console blocks, split into pipeline stages."""
    found = []
    for line_number, code in blocks("console"):
        for offset, line in enumerate(code.splitlines()):
            if line.startswith("$ "):
                for stage in line[2:].split("|"):
                    words = shlex.split(stage, comments=True)
                    for stop, word in enumerate(words):
                        if word in ("<", ">", ">>"):
                            words = words[:stop]
                            break
                    found.append((line_number + 1 + offset, words))
    return found


PYTHON = blocks("python")


def test_the_readme_has_code() -> None:
    assert len(PYTHON) >= 5
    assert any(words[:1] == ["framekit"] for _, words in commands())


@pytest.mark.parametrize(("line", "code"), PYTHON, ids=[f"line{n}" for n, _ in PYTHON])
def test_python_block_runs(line: int, code: str, tmp_path: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-"],
        input=code,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, f"README.md line {line}:\n{proc.stderr}"


def test_commands_parse() -> None:
    parser = build_parser()
    checked = 0
    for line, words in commands():
        if words[:1] == ["framekit"]:
            try:
                parser.parse_args(words[1:])
            except SystemExit:
                pytest.fail(f"README.md line {line}: {' '.join(words)} does not parse")
            checked += 1
        elif words[:1] == ["python"] and words[1].startswith("examples/"):
            assert os.path.exists(os.path.join(ROOT, words[1])), f"README.md line {line}"
    assert checked >= 5
