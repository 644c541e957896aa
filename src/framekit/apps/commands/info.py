"""``framekit info``: what this framekit is, for a bug report or a first check.

Design notes
------------
One screen: the version; the codec backend and *why* it was chosen (the
extension loaded, ``FRAMEKIT_PURE_PYTHON`` asked for pure Python, or the
build failed or skipped it, from the record ``setup.py`` leaves, see
:mod:`framekit.codecs.backend`); the build (compiled or not, the compiler,
``FRAMEKIT_BUILD_EXTENSION``); the Python; and which optional packages are
importable (uvloop, msgpack, anyio, msgspec), with their versions.  Nothing
is imported that the answer does not need, and nothing here can fail but an
unreadable record, which is shown as missing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from typing import List, Optional, Tuple

__all__ = ["OPTIONAL", "add_arguments", "lines", "run"]

#: Optional packages framekit can use: (import name, what for).
OPTIONAL: Tuple[Tuple[str, str], ...] = (
    ("uvloop", "a faster event loop for framekit.asyncio"),
    ("msgpack", "framekit.serializers.MSGPACK"),
    ("anyio", "asyncio applications written with anyio"),
    ("msgspec", "framekit.serializers.Msgspec: typed, validated messages"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``info`` takes no options."""


def _version(module_name: str) -> Optional[str]:
    """The package's version if it imports, else ``None``."""
    try:
        module = importlib.import_module(module_name)
    except Exception:  # any failure to import means "not available"
        return None
    try:
        from importlib import metadata

        return metadata.version(module_name)
    except Exception:
        return str(getattr(module, "__version__", "?"))


def _build() -> str:
    from ...codecs.backend import build_info

    info = build_info()
    if info is None:
        return "no build record (a source tree used without building it)"
    status = info.get("extension")
    mode = f"FRAMEKIT_BUILD_EXTENSION={info.get('mode', '?')}"
    if status == "built":
        return f"extension compiled with {info.get('compiler') or '?'} ({mode})"
    if status == "failed":
        compiler = info.get("compiler")
        using = f" with {compiler}" if compiler else ""
        return f"extension FAILED to compile{using}: {info.get('reason')} ({mode})"
    return f"extension not built: {info.get('reason') or 'skipped'} ({mode})"


def lines() -> List[str]:
    """The report, one line per fact."""
    import framekit
    from framekit.codecs.backend import BACKEND_REASON

    out = [
        f"framekit {framekit.__version__} ({os.path.dirname(framekit.__file__)})",
        f"backend: {framekit.BACKEND}: {BACKEND_REASON}",
        f"build: {_build()}",
        f"Python: {platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.machine()} ({sys.executable})",
        "optional packages:",
    ]
    for name, purpose in OPTIONAL:
        version = _version(name)
        state = f"{version}" if version is not None else "not installed"
        out.append(f"  {name}: {state} ({purpose})")
    return out


def run(args: argparse.Namespace) -> int:
    """Print the report; always 0."""
    print("\n".join(lines()))
    return 0
