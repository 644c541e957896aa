"""Selects the codec implementation: the Cython extension, or the pure-Python reference.

Design notes
------------
This is the one place that decides.  ``FRAMEKIT_PURE_PYTHON=1`` (read once, at
import) forces the reference implementation; otherwise the compiled
``framekit._speedups`` is used when it imports, and the reference when it does
not.  ``BACKEND`` says which one was picked.  Type checkers always see the
reference module, which is the documented specification.

Both stay importable by name for tests and benchmarks:
``framekit.codecs.length_prefixed`` always, ``framekit._speedups`` when it was built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__all__ = ["BACKEND", "LengthPrefixed", "LengthPrefixedDecoder"]

BACKEND: str

if TYPE_CHECKING or os.environ.get("FRAMEKIT_PURE_PYTHON", "") not in ("", "0"):
    from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder

    BACKEND = "python"
else:
    try:
        from .._speedups import LengthPrefixed, LengthPrefixedDecoder

        BACKEND = "cython"
    except ImportError:
        from .length_prefixed import LengthPrefixed, LengthPrefixedDecoder

        BACKEND = "python"
