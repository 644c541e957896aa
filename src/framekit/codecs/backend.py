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
says which implementation each codec got.  Type checkers always see the
reference modules, which are the documented specification.

The references stay importable by name for tests and benchmarks
(``framekit.codecs.length_prefixed``, ``lines``, ``delimited``, ``netstring``,
``fixed_length``), and so do the extensions when they were built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict

__all__ = [
    "BACKEND",
    "BACKENDS",
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
]

BACKEND: str
#: Which implementation each codec got: ``"cython"`` or ``"python"``.
BACKENDS: Dict[str, str]

_TEXT_CODECS = ("Lines", "Delimited", "Netstring", "FixedLength")

if TYPE_CHECKING or os.environ.get("FRAMEKIT_PURE_PYTHON", "") not in ("", "0"):
    from .delimited import Delimited, DelimitedDecoder
    from .fixed_length import FixedLength, FixedLengthDecoder
    from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder
    from .lines import Lines, LinesDecoder
    from .netstring import Netstring, NetstringDecoder

    BACKENDS = dict.fromkeys(("LengthPrefixed", *_TEXT_CODECS), "python")
else:
    BACKENDS = {}
    try:
        from .._speedups import LengthPrefixed, LengthPrefixedDecoder

        BACKENDS["LengthPrefixed"] = "cython"
    except ImportError:
        from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder

        BACKENDS["LengthPrefixed"] = "python"
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
    except ImportError:
        from .delimited import Delimited, DelimitedDecoder
        from .fixed_length import FixedLength, FixedLengthDecoder
        from .lines import Lines, LinesDecoder
        from .netstring import Netstring, NetstringDecoder

        BACKENDS.update(dict.fromkeys(_TEXT_CODECS, "python"))

BACKEND = "cython" if set(BACKENDS.values()) == {"cython"} else "python"
