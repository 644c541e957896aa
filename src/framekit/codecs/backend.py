"""Selects the codec implementations: the Cython extensions, or the pure-Python references.

Design notes
------------
This is the one place that decides.  ``FRAMEKIT_PURE_PYTHON=1`` (read once, at
import) forces the reference implementations; otherwise each compiled module is
used when it imports, and its references when it does not:

* ``framekit._speedups``: :class:`LengthPrefixed`;
* ``framekit._speedups_text``: :class:`Lines`, :class:`Delimited`,
  :class:`Netstring` and :class:`FixedLength`.

``BACKEND`` is ``"cython"`` only when every codec is compiled, and ``"python"``
otherwise: a build where one extension failed is a failed build (with
``FRAMEKIT_BUILD_EXTENSION=yes`` it fails outright), and a fast path that is
quietly missing for some codecs must not read as ``"cython"``.  ``BACKENDS``
says which implementation each codec got, and ``BACKEND_REASON`` why, in
words (``framekit info`` shows it).  Type checkers always see the reference
modules, which are the documented specification.

**Was an extension expected?**  ``setup.py`` records what the build did in
``framekit/_build_info.json`` next to the package: for each codec extension
``"built"``, ``"failed"`` (with the compiler's error) or ``"skipped"``
(``FRAMEKIT_BUILD_EXTENSION=no``).  When an extension does not import, one
``RuntimeWarning`` (one, for every extension missing) is issued at import if
the record says it was built (it
broke since) or that building it failed (an ``auto`` build fell back to pure
Python): the user asked for the fast path and did not get it.  There is no
warning when ``FRAMEKIT_PURE_PYTHON`` asked for the pure backend, when the
build skipped the extensions on request, or when there is no record at all (a
source tree used without a build).

The references stay importable by name for tests and benchmarks
(``framekit.codecs.length_prefixed``, ``lines``, ``delimited``, ``netstring``,
``fixed_length``), and so do the extensions when they were built.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Literal, Optional, Tuple

__all__ = [
    "BACKEND",
    "BACKENDS",
    "BACKEND_REASON",
    "Delimited",
    "DelimitedDecoder",
    "FixedLength",
    "FixedLengthDecoder",
    "LengthPrefixed",
    "LengthPrefixedDecoder",
    "Lines",
    "LinesDecoder",
    "Netstring",
    "NetstringDecoder",
    "build_info",
]

#: The file ``setup.py`` writes into the package when it builds (or skips) the extensions.
BUILD_INFO_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_build_info.json")

BACKEND: Literal["cython", "python"]
#: Which implementation each codec got: ``"cython"`` or ``"python"``.
BACKENDS: Dict[str, str]
#: Why ``BACKEND`` is what it is, in one sentence.
BACKEND_REASON: str

_TEXT_CODECS = ("Lines", "Delimited", "Netstring", "FixedLength")


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


def _missing(module: str, exc: ImportError) -> Tuple[str, str]:
    """Why an extension is missing, and what the build record said of it
    (``built``, ``failed``, ``skipped``, or ``""`` with no record)."""
    info = build_info()
    states = info.get("extensions") if info else None
    status = states.get(module) if isinstance(states, dict) else None
    if status is None and info:
        status = info.get("extension")
    if status == "skipped":
        return f"the build skipped {module} ({info.get('reason') if info else ''})", "skipped"
    if status == "built":
        return f"{module} was built at install time but does not import ({exc})", "built"
    if status == "failed":
        return f"{module} could not be compiled at install time", "failed"
    return "no compiled extension here (a source tree that was not built)", ""


def _say_missing(missing: List[Tuple[str, str]]) -> List[str]:
    """The reasons for ``BACKEND_REASON``; one ``RuntimeWarning`` for all of them
    if the build promised an extension that is not here."""
    failed = [reason.split(" ", 1)[0] for reason, status in missing if status == "failed"]
    reasons = [reason for reason, status in missing if status != "failed"]
    if failed:
        info = build_info() or {}
        names = " and ".join(failed)
        plural = "s" if len(failed) > 1 else ""
        reasons.insert(
            0,
            f"the extension{plural} {names} could not be compiled at install time "
            f"({info.get('reason', '')})",
        )
    if not any(status in ("built", "failed") for _, status in missing):
        return list(dict.fromkeys(reasons))
    reasons = list(dict.fromkeys(reasons))
    warnings.warn(
        f"framekit: {'; '.join(reasons)}; using the pure-Python codecs, which are several "
        "times slower. Install a C compiler and reinstall (pip install --force-reinstall "
        "--no-cache-dir framekit), or set FRAMEKIT_PURE_PYTHON=1 to choose the pure backend "
        "and silence this.",
        RuntimeWarning,
        stacklevel=_outside_framekit(),
    )
    return reasons


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


_why: List[str] = []
_gone: List[Tuple[str, str]] = []  # (reason, build status) of each extension missing

if TYPE_CHECKING or os.environ.get("FRAMEKIT_PURE_PYTHON", "") not in ("", "0"):
    from .delimited import Delimited, DelimitedDecoder
    from .fixed_length import FixedLength, FixedLengthDecoder
    from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder
    from .lines import Lines, LinesDecoder
    from .netstring import Netstring, NetstringDecoder

    BACKENDS = dict.fromkeys(("LengthPrefixed", *_TEXT_CODECS), "python")
    _why.append("FRAMEKIT_PURE_PYTHON asked for the pure-Python references")
else:
    BACKENDS = {}
    try:
        from .._speedups import LengthPrefixed, LengthPrefixedDecoder

        BACKENDS["LengthPrefixed"] = "cython"
    except ImportError as _exc:
        from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder

        BACKENDS["LengthPrefixed"] = "python"
        _gone.append(_missing("framekit._speedups", _exc))
    try:
        from .._speedups_text import (
            Delimited,
            DelimitedDecoder,
            FixedLength,
            FixedLengthDecoder,
            Lines,
            LinesDecoder,
            Netstring,
            NetstringDecoder,
        )

        BACKENDS.update(dict.fromkeys(_TEXT_CODECS, "cython"))
    except ImportError as _exc:
        from .delimited import Delimited, DelimitedDecoder
        from .fixed_length import FixedLength, FixedLengthDecoder
        from .lines import Lines, LinesDecoder
        from .netstring import Netstring, NetstringDecoder

        BACKENDS.update(dict.fromkeys(_TEXT_CODECS, "python"))
        _gone.append(_missing("framekit._speedups_text", _exc))
    if _gone:
        _why.extend(_say_missing(_gone))

BACKEND = "cython" if set(BACKENDS.values()) == {"cython"} else "python"
BACKEND_REASON = (
    "; ".join(_why)
    if _why
    else "the compiled extensions framekit._speedups and framekit._speedups_text loaded"
)
