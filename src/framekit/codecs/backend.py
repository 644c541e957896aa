"""Selects the codec implementation: the Cython extension, or the pure-Python reference.

Design notes
------------
This is the one place that decides.  ``FRAMEKIT_PURE_PYTHON=1`` (read once, at
import) forces the reference implementation; otherwise the compiled
``framekit._speedups`` is used when it imports, and the reference when it does
not.  ``BACKEND`` says which one was picked, and ``BACKEND_REASON`` why, in
words (``framekit info`` shows it).  Type checkers always see the reference
module, which is the documented specification.

**Was the extension expected?**  ``setup.py`` records what the build did in
``framekit/_build_info.json`` next to the package: ``"extension": "built"``,
``"failed"`` (with the compiler's error) or ``"skipped"``
(``FRAMEKIT_BUILD_EXTENSION=no``).  When the extension does not import, one
``RuntimeWarning`` is issued at import if the record says it was built (it
broke since) or that building it failed (an ``auto`` build fell back to pure
Python): the user asked for the fast path and did not get it.  There is no
warning when ``FRAMEKIT_PURE_PYTHON`` asked for the pure backend, when the
build skipped the extension on request, or when there is no record at all
(a source tree used without a build).

Both stay importable by name for tests and benchmarks:
``framekit.codecs.length_prefixed`` always, ``framekit._speedups`` when it was built.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Dict, Literal, Optional

__all__ = ["BACKEND", "BACKEND_REASON", "LengthPrefixed", "LengthPrefixedDecoder", "build_info"]

#: The file ``setup.py`` writes into the package when it builds (or skips) the extension.
BUILD_INFO_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_build_info.json")

BACKEND: Literal["cython", "python"]
#: Why ``BACKEND`` is what it is, in one sentence.
BACKEND_REASON: str


def build_info() -> Optional[Dict[str, Any]]:
    """What the build recorded about the extension, or ``None`` if it left no record.

    Keys: ``extension`` (``built``, ``failed`` or ``skipped``), ``mode`` (the
    ``FRAMEKIT_BUILD_EXTENSION`` value), ``reason`` (why it failed or was
    skipped), ``compiler`` (the compiler command and its version line).
    """
    try:
        with open(BUILD_INFO_FILE, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _missing(exc: ImportError) -> str:
    """Say why the extension is missing; warn if the build promised it."""
    info = build_info()
    status = info.get("extension") if info else None
    if status == "skipped":
        return f"the build skipped the extension ({info.get('reason') if info else ''})"
    if status == "built":
        reason = f"the extension was built at install time but does not import ({exc})"
    elif status == "failed":
        reason = (
            "the extension could not be compiled at install time "
            f"({info.get('reason') if info else ''})"
        )
    else:
        return "no compiled extension here (a source tree that was not built)"
    warnings.warn(
        f"framekit: {reason}; using the pure-Python codec, which is several times slower. "
        "Install a C compiler and reinstall (pip install --force-reinstall --no-cache-dir "
        "framekit), or set FRAMEKIT_PURE_PYTHON=1 to choose the pure backend and silence this.",
        RuntimeWarning,
        stacklevel=_outside_framekit(),
    )
    return reason


def _outside_framekit() -> int:
    """The ``stacklevel`` of the first caller outside framekit (the user's import)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 1, sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(package) or name.startswith("<frozen importlib")):
            break
        if not name.startswith("<frozen importlib"):  # warnings skips importlib's own frames
            level += 1
        frame = frame.f_back  # type: ignore[assignment]
    return level


if TYPE_CHECKING:
    from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder

    BACKEND = "python"
    BACKEND_REASON = ""
elif os.environ.get("FRAMEKIT_PURE_PYTHON", "") not in ("", "0"):
    from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder

    BACKEND = "python"
    BACKEND_REASON = "FRAMEKIT_PURE_PYTHON asked for the pure-Python reference"
else:
    try:
        from .._speedups import LengthPrefixed, LengthPrefixedDecoder

        BACKEND = "cython"
        BACKEND_REASON = "the compiled extension framekit._speedups loaded"
    except ImportError as _exc:
        from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder

        BACKEND = "python"
        BACKEND_REASON = _missing(_exc)
